package proxy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgshard/pgshard/parser"
)

// This file is the session's side of transactions that span shards. A
// client's transaction holds one backend per shard it touched. The one the
// current statement runs on is the session's backend; the others are
// parked: detached from the reader's bookkeeping, idle inside the
// transaction, until a statement needs their shard again or the
// transaction ends. COMMIT of a transaction that touched several shards
// is two-phase (see commitParts).

// txPart is one shard's backend of the client's transaction while it is
// parked, and that transaction's status there ('T', or 'E' once failed).
type txPart struct {
	c      *serverConn
	status byte
}

// multiTx reports whether the client's transaction spans shards: some of
// its backends are parked.
func (s *session) multiTx() bool { return len(s.parked) > 0 }

// canPark reports whether the session may hold its transaction on several
// shards: a routed database in transaction pooling.
func (s *session) canPark() bool {
	return s.rt != nil && s.mode == PoolTransaction
}

// parkLocked detaches the session's backend, inside a transaction, and
// keeps it for the transaction. Called with mu held, the queue empty.
func (s *session) parkLocked(c *serverConn) {
	if len(s.parked) == 0 {
		s.parked = map[int]*txPart{}
		s.txOrder = []int{c.p.shardIdx}
	}
	status := s.txStatus
	s.detachLocked()
	s.parked[c.p.shardIdx] = &txPart{c: c, status: status}
	s.noteShard(c.p.shardIdx)
	s.txStatus, s.inBlock = 'I', false
	s.vtxStatus = s.partsStatusLocked()
	s.vtxFailed = s.vtxStatus == 'E'
}

// partsStatusLocked is the client's transaction status while no backend
// is attached: 'E' when any shard failed it.
func (s *session) partsStatusLocked() byte {
	for _, tp := range s.parked {
		if tp.status == 'E' {
			return 'E'
		}
	}
	if s.failedTx {
		return 'E'
	}
	return 'T'
}

// noteShard records that the transaction touched shard: the first one is
// the coordinator of its two-phase commit.
func (s *session) noteShard(shard int) {
	if !slices.Contains(s.txOrder, shard) {
		s.txOrder = append(s.txOrder, shard)
	}
}

// unparkLocked makes the parked backend of p's shard the session's again
// and reports whether there was one. Called with mu held.
func (s *session) unparkLocked(p *backendPool) *serverConn {
	tp := s.parked[p.shardIdx]
	if tp == nil || tp.c.p != p {
		return nil
	}
	delete(s.parked, p.shardIdx)
	c := tp.c
	s.backend = c
	c.owner.Store(s)
	s.holding = true
	s.txStatus, s.inBlock = tp.status, true
	return c
}

// beginSQL opens the client's transaction on a shard it joins: the BEGIN
// the client sent (with what pgshard answered for it before it was bound).
func (s *session) beginSQL() string {
	if s.txBegin == "" {
		return "BEGIN"
	}
	return s.txBegin
}

// takeParts detaches every backend of the client's transaction, the
// session's own after its replies are in, and returns them in the order
// their shards joined.
func (s *session) takeParts() ([]*txPart, error) {
	if err := s.detachHeld(nil, true); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]*txPart, 0, len(s.parked))
	for _, sh := range s.txOrder {
		if tp := s.parked[sh]; tp != nil {
			parts = append(parts, tp)
		}
	}
	for sh, tp := range s.parked {
		if !slices.Contains(s.txOrder, sh) {
			parts = append(parts, tp)
		}
	}
	return parts, nil
}

// endMulti ends a transaction that spans shards: COMMIT (two-phase when
// configured) or ROLLBACK on every shard it touched. It returns the tag
// to answer with.
func (s *session) endMulti(st parser.Statement) (string, error) {
	parts, err := s.takeParts()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	failed := s.failedTx || s.vtxFailed
	s.failedTx = false
	lost, from := s.takeLostLocked()
	s.mu.Unlock()
	for _, tp := range parts {
		if tp.status != 'T' {
			failed = true
		}
	}
	if !failed && lost == nil {
		// A backend lost while parked told nobody: the transaction is
		// failed, and the client learns it now.
		for _, tp := range parts {
			if tp.c.closed.Load() {
				lost, from = errPartLost(tp.c), tp.c.p
				break
			}
		}
	}
	tag := "ROLLBACK"
	var cerr error
	switch {
	case st.Kind == parser.Commit && lost != nil && !st.Chain:
		s.rollbackParts(parts)
		cerr = errCommitLost(lost, from)
	case st.Kind == parser.Commit && !failed && lost == nil:
		tag = "COMMIT"
		cerr = s.commitParts(parts)
	default:
		s.rollbackParts(parts)
	}
	s.mu.Lock()
	if cerr == nil && tag == "COMMIT" {
		s.commitPending()
		if s.lastCommit == nil {
			s.lastCommit = map[int]time.Time{}
		}
		now := time.Now()
		for _, tp := range parts {
			s.lastCommit[tp.c.p.shardIdx] = now
		}
	} else {
		s.pending = s.pending[:0]
	}
	s.parked = nil
	s.txOrder = nil
	s.mu.Unlock()
	for _, tp := range parts {
		if tp.status == 'I' && !tp.c.closed.Load() {
			s.giveBack(tp.c)
		} else {
			tp.c.p.Discard(tp.c)
		}
	}
	s.multiTxDone(len(parts))
	begin := s.beginSQL()
	s.endTx()
	s.txBegin = ""
	if st.Chain {
		s.vtx = []string{begin}
		s.setVtxStatus('T')
	}
	return tag, cerr
}

// rollbackParts rolls back the transaction on each of parts.
func (s *session) rollbackParts(parts []*txPart) {
	res := s.runSimple(parts, func(*txPart) string { return "ROLLBACK" })
	for i, tp := range parts {
		tp.status = res[i].status
	}
}

// txControlMulti runs SAVEPOINT, RELEASE, ROLLBACK TO or SET LOCAL on
// every shard of a transaction that spans shards, and keeps it for shards
// that join later.
func (s *session) txControlMulti(st parser.Statement) (string, error) {
	parts, err := s.takeParts()
	if err != nil {
		return "", err
	}
	res := s.runSimple(parts, func(*txPart) string { return st.Text })
	var first error
	for i, tp := range parts {
		tp.status = res[i].status
		if res[i].err != nil && first == nil {
			first = res[i].err
		}
	}
	s.mu.Lock()
	s.vtxStatus = s.partsStatusLocked()
	s.vtxFailed = s.vtxStatus == 'E'
	s.mu.Unlock()
	if first != nil {
		return "", first
	}
	s.txBegin = s.beginSQL() + ";" + st.Text
	tag := map[parser.Kind]string{parser.Savepoint: "SAVEPOINT", parser.Release: "RELEASE", parser.RollbackTo: "ROLLBACK", parser.SetLocal: "SET"}[st.Kind]
	return tag, nil
}

// multiTxStatement answers, in a transaction that spans shards, the
// transaction-control statements that concern all its shards. It reports
// whether it answered st.
func (s *session) multiTxStatement(st parser.Statement) (bool, string, error) {
	if !s.multiTx() {
		return false, "", nil
	}
	switch st.Kind {
	case parser.Commit, parser.Rollback:
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(st.Text)), "PREPARE") {
			return true, "", s.crossShard("PREPARE TRANSACTION of a transaction that spans shards: pgshard commits it with two-phase commit itself")
		}
		tag, err := s.endMulti(st)
		return true, tag, err
	case parser.Begin:
		s.reply(entry{kind: eFake, fake: appendNotice(nil, "WARNING", "25001", "there is already a transaction in progress")})
		return true, "BEGIN", nil
	case parser.Savepoint, parser.Release, parser.RollbackTo, parser.SetLocal:
		tag, err := s.txControlMulti(st)
		return true, tag, err
	}
	return false, "", nil
}

// ownRoundTimeout bounds one round of pgshard's own queries on a
// transaction's backends (COMMIT, PREPARE TRANSACTION, COMMIT PREPARED,
// ROLLBACK).
const ownRoundTimeout = time.Minute

// partResult is how a query of pgshard's own ended on one backend.
type partResult struct {
	err    *pgError
	status byte // the transaction status of the last ReadyForQuery; 0 if lost
	lost   bool
}

// runSimple runs a simple Query of pgshard's own on each part's backend
// at once (sql gives each one's text) and waits for all of them, each for
// up to ownRoundTimeout, or query_timeout when shorter. The backends must
// be detached from any session.
func (s *session) runSimple(parts []*txPart, sql func(*txPart) string) []partResult {
	bound := ownRoundTimeout
	if qt := s.srv.current().opts.QueryTimeout; qt > 0 && qt < bound {
		bound = qt
	}
	res := make([]partResult, len(parts))
	sink := newScatterSink()
	pending := 0
	idx := map[*serverConn]int{}
	// A server that stops answering without closing the connection must
	// not hold the client's COMMIT forever: past the deadline the
	// connection counts as lost (recovery settles what was prepared).
	deadline := time.Now().Add(bound)
	for i, tp := range parts {
		c := tp.c
		c.sink.Store(sink)
		if c.closed.Load() {
			res[i] = partResult{lost: true, err: errPartLost(c)}
			c.sink.Store(nil)
			continue
		}
		c.nc.SetReadDeadline(deadline)
		idx[c] = i
		pending++
		if _, err := c.bw.Write(appendQuery(nil, sql(tp))); err == nil {
			err = c.bw.Flush()
		}
	}
	done := make([]bool, len(parts))
	for pending > 0 {
		m := sink.next()
		i, ok := idx[m.c]
		if !ok || done[i] {
			continue
		}
		switch {
		case m.err != nil:
			res[i].lost, res[i].status = true, 0
			switch {
			case res[i].err != nil:
			case timedOut(m.err) && bound < ownRoundTimeout:
				res[i].err = errQueryTimeout(m.c.p.shard, m.c.p.addr, bound, m.err)
			default:
				res[i].err = errPartLost(m.c)
			}
			done[i] = true
			pending--
		case m.typ == 'E':
			if res[i].err == nil {
				res[i].err = parseServerError(m.body)
			}
		case m.typ == 'Z':
			if len(m.body) > 0 {
				res[i].status = m.body[0]
			}
			done[i] = true
			pending--
		}
	}
	for c := range idx {
		c.sink.Store(nil)
		c.nc.SetReadDeadline(time.Time{})
	}
	close(sink.quit)
	for i, tp := range parts {
		if res[i].lost {
			tp.status = 0
		}
	}
	return res
}

func errPartLost(c *serverConn) *pgError {
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure,
		Message: fmt.Sprintf("lost connection to server %s (%s) in a transaction that spans shards", c.p.shard, c.p.addr)}
}

// dropParked rolls back the transaction on the parked backends of a
// client that leaves, and gives them back clean (or closes them).
func (s *session) dropParked() {
	s.mu.Lock()
	parts := make([]*txPart, 0, len(s.parked))
	for _, tp := range s.parked {
		parts = append(parts, tp)
	}
	s.parked = nil
	s.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	s.rollbackParts(parts)
	for _, tp := range parts {
		if tp.status == 'I' && !tp.c.closed.Load() {
			s.giveBack(tp.c)
		} else {
			tp.c.p.Discard(tp.c)
		}
	}
}

// noteTxControl records a SAVEPOINT, RELEASE, ROLLBACK TO or SET LOCAL
// that goes to the one backend of the client's transaction, so that a
// shard the transaction reaches later starts in the same state.
func (s *session) noteTxControl(st parser.Statement) {
	switch st.Kind {
	case parser.Savepoint, parser.Release, parser.RollbackTo, parser.SetLocal:
		if s.inTx() && !s.multiTx() && s.vtx == nil {
			s.txBegin = s.beginSQL() + ";" + st.Text
		}
	}
}
