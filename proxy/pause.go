package proxy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PAUSE and RESUME. A paused database lets the transactions running in it
// finish and holds every session that would take a backend for a new one,
// in session.acquire (waitPaused), until RESUME. A session that already
// holds a backend (a transaction in progress, a statement on several
// shards, a backend pinned by session state or pool_mode session) is not
// held: stopping it half way would keep PAUSE waiting for it forever.

// pauseState says which databases are paused. It is owned by the Server;
// mu guards all but any.
type pauseState struct {
	// any is set while something is paused, so that acquire costs one
	// atomic load otherwise.
	any atomic.Bool
	mu  sync.Mutex
	all bool
	dbs map[string]bool
	// resumed is closed, and replaced, when a database is resumed: held
	// sessions wake and look again.
	resumed chan struct{}
}

// pauseInterval is how often Pause looks whether the running transactions
// have ended.
const pauseInterval = 5 * time.Millisecond

// pausedLocked reports whether db is paused. Called with mu held.
func (p *pauseState) pausedLocked(db string) bool { return p.all || p.dbs[db] }

// Pause holds new transactions of database db (every database when db is
// empty) and waits until none of it runs: no session holds a backend of
// it other than idle, and no backend of it is in use otherwise. It then
// returns, and the hold lasts until Resume. When ctx ends first, the hold
// Pause added is lifted again and ctx's error returned. Safe for
// concurrent use; pausing what is paused waits again and is no error.
func (s *Server) Pause(ctx context.Context, db string) error {
	if db != "" && s.current().dbs[db] == nil {
		return newError(codeInvalidCatalog, "database %q does not exist", db)
	}
	p := &s.pause
	p.mu.Lock()
	added := !p.pausedLocked(db)
	if db == "" {
		p.all = true
	} else {
		if p.dbs == nil {
			p.dbs = map[string]bool{}
		}
		p.dbs[db] = true
	}
	p.any.Store(true)
	p.mu.Unlock()
	if added {
		s.log.Info("pausing", "database", db)
	}

	t := time.NewTicker(pauseInterval)
	defer t.Stop()
	quiet := 0
	for {
		// Twice in a row: a session that passed the gate just before the
		// hold may be between the gate and the pool.
		if s.quiescent(db) {
			quiet++
		} else {
			quiet = 0
		}
		if quiet == 2 {
			s.log.Info("paused", "database", db)
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			if added {
				s.unpause(db)
			}
			return ctx.Err()
		}
	}
}

// Resume lets the sessions held by Pause(db) go on; db empty resumes
// every database. Resuming a database that is not paused is an error, as
// is resuming one database while all are paused.
func (s *Server) Resume(db string) error {
	p := &s.pause
	p.mu.Lock()
	switch {
	case db != "" && s.current().dbs[db] == nil:
		p.mu.Unlock()
		return newError(codeInvalidCatalog, "database %q does not exist", db)
	case db == "" && !p.all && len(p.dbs) == 0, db != "" && !p.pausedLocked(db):
		p.mu.Unlock()
		what := "nothing is paused"
		if db != "" {
			what = fmt.Sprintf("database %q is not paused", db)
		}
		return newError(codeObjectNotInState, "%s", what)
	case db != "" && p.all && !p.dbs[db]:
		p.mu.Unlock()
		return &pgError{Severity: "ERROR", Code: codeObjectNotInState,
			Message: fmt.Sprintf("every database is paused, not %q alone", db),
			Hint:    "Send RESUME without a database name."}
	}
	p.mu.Unlock()
	s.unpause(db)
	s.log.Info("resumed", "database", db)
	return nil
}

// unpause lifts the hold on db (every database when empty) and wakes the
// held sessions.
func (s *Server) unpause(db string) {
	p := &s.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if db == "" {
		p.all = false
		clear(p.dbs)
	} else {
		delete(p.dbs, db)
	}
	p.any.Store(p.all || len(p.dbs) > 0)
	if p.resumed != nil {
		close(p.resumed)
		p.resumed = nil
	}
}

// paused returns the names of the paused databases, sorted; all says every
// database is.
func (s *Server) paused() (all bool, dbs []string) {
	p := &s.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	for db, on := range p.dbs {
		if on {
			dbs = append(dbs, db)
		}
	}
	slices.Sort(dbs)
	return p.all, dbs
}

// waitPaused holds sess while its database is paused, unless it holds a
// backend already (its transaction runs; see the top of this file). It
// returns early with the error of the session's context, which ends when
// the server shuts down.
func (s *Server) waitPaused(ctx context.Context, sess *session) error {
	p := &s.pause
	if !p.any.Load() {
		return nil
	}
	sess.mu.Lock()
	holds := sess.backend != nil || len(sess.parked) > 0 || len(sess.running) > 0
	sess.mu.Unlock()
	if holds {
		return nil
	}
	for {
		p.mu.Lock()
		if !p.pausedLocked(sess.db.Name) {
			p.mu.Unlock()
			return nil
		}
		if p.resumed == nil {
			p.resumed = make(chan struct{})
		}
		ch := p.resumed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// quiescent reports whether no transaction of db (every database when
// empty) runs: no session of it is in one, and every backend of it in use
// is one an idle session keeps (pinned, or in pool_mode session).
func (s *Server) quiescent(db string) bool {
	kept := 0
	for _, sess := range s.sessionList() {
		if db != "" && sess.db.Name != db {
			continue
		}
		sess.mu.Lock()
		busy := sess.busyLocked()
		if !busy && sess.backend != nil {
			kept++
		}
		sess.mu.Unlock()
		if busy {
			return false
		}
	}
	inUse := 0
	for name, d := range s.current().dbs {
		if db != "" && name != db {
			continue
		}
		for _, bp := range d.poolList() {
			st := bp.Stats()
			inUse += st.Total - st.Idle
		}
	}
	return inUse <= kept
}

// busyLocked reports whether the session is running a transaction or a
// statement on a backend. Called with mu held.
func (s *session) busyLocked() bool {
	if len(s.parked) > 0 || len(s.running) > 0 {
		return true
	}
	c := s.backend
	return c != nil && (s.txStatus != 'I' || s.inBlock || s.q.len() > 0 || s.holding ||
		s.copyIn || s.unsynced || s.openRound)
}

// newError is an ERROR of the proxy's own.
func newError(code, format string, args ...any) *pgError {
	return &pgError{Severity: "ERROR", Code: code, Message: fmt.Sprintf(format, args...)}
}
