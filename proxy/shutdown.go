package proxy

import (
	"time"
)

// Shutdown: a graceful one (SIGTERM) stops accepting clients, lets every
// running transaction finish, up to Options.ShutdownTimeout, and closes
// each client as soon as it is between transactions; an immediate one
// (SIGINT, or a second Shutdown) closes every client at once. Either way
// Serve then returns nil.

// DefaultShutdownTimeout bounds a graceful shutdown.
const DefaultShutdownTimeout = 30 * time.Second

// drainTick is how often a graceful shutdown looks for idle clients.
const drainTick = 50 * time.Millisecond

// errShuttingDown ends a session that is idle during a graceful shutdown.
var errShuttingDown = newFatal(codeAdminShutdown, "terminating connection due to administrator command: pgshard is shutting down")

// Shutdown stops the server: graceful lets running transactions finish
// up to Options.ShutdownTimeout, otherwise clients are closed at once. A
// second call may turn a graceful shutdown into an immediate one.
func (s *Server) Shutdown(graceful bool) {
	s.stopOnce.Do(func() {
		s.graceful.Store(graceful)
		close(s.stop)
	})
	if !graceful {
		s.forceOnce.Do(func() { close(s.force) })
	}
}

func (s *Server) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// drain waits for the sessions to end, waking those blocked reading an
// idle client so that they leave, until every one has or the shutdown
// timeout passes.
func (s *Server) drain() {
	s.draining.Store(true)
	timeout := s.current().opts.ShutdownTimeout
	s.log.Info("shutting down: waiting for running transactions", "timeout", timeout)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	for {
		s.mu.Lock()
		left := len(s.conns)
		for _, sess := range s.sessions {
			if sess.reading.Load() {
				sess.nc.SetReadDeadline(time.Now())
			}
		}
		s.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			s.log.Warn("shutdown timeout: closing the clients still connected", "clients", left)
			return
		case <-s.force:
			return
		}
	}
}

// leaveForShutdown reports whether the session should end now: the
// server drains and the client is between transactions, nothing owed.
// err is the read error that woke it, if any; a wake-up of a session
// that must go on clears the deadline that caused it.
func (s *session) leaveForShutdown(err error) bool {
	if !s.srv.draining.Load() {
		return false
	}
	if s.idleForShutdown() {
		return true
	}
	if err != nil {
		s.nc.SetReadDeadline(time.Time{})
	}
	return false
}

// idleForShutdown reports whether the client is between transactions
// with no reply owed.
func (s *session) idleForShutdown() bool {
	if s.vtx != nil || len(s.parked) > 0 || s.copyin != nil || s.xscatter != nil || len(s.deferred) > 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend == nil {
		return !s.failedTx
	}
	return s.q.len() == 0 && s.txStatus == 'I' && !s.inBlock && !s.copyIn && !s.unsynced && !s.openRound
}
