package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/parser"
)

// This file is the session's side of statement routing: where each
// statement goes, transactions bound to a shard, hints and route notices.

// notifyDrained wakes a session waiting for its backend's replies. Called
// with mu held.
func (s *session) notifyDrained() {
	if s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// poolFor returns the pool of a shard's primary (server 0) or replica.
func (s *session) poolFor(shard, server int) (*backendPool, error) {
	p, err := s.srv.pool(s.db, s.buser, s.bpass, shard, server)
	if err != nil {
		return nil, &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: err,
			Message: fmt.Sprintf("shard %s: %v", s.db.Shards[shard].Name, err)}
	}
	return p, nil
}

// attached reports whether the session holds a backend.
func (s *session) attached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend != nil
}

// inTx reports whether the client is in a transaction block, bound to a
// backend or not.
func (s *session) inTx() bool {
	if s.vtx != nil || s.multiTx() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend != nil && (s.inBlock || s.txStatus != 'I')
}

// use makes p's server the session's backend. A backend held from
// another pool is let go once its replies are in, unless it holds an open
// transaction or session state, which cannot move.
func (s *session) use(p *backendPool) (*serverConn, error) {
	if err := s.releaseHeld(p); err != nil {
		return nil, err
	}
	s.pool = p
	return s.attachBound(true)
}

// releaseHeld lets go of a backend the session holds that is not from
// pool p (nil: any), waiting for its replies first.
func (s *session) releaseHeld(p *backendPool) error { return s.detachHeld(p, false) }

// detachHeld is releaseHeld. A backend inside a transaction is parked for
// the transaction instead (see xact.go) where the session can hold it on
// several shards; one whose transaction failed only when parkFailed,
// else the statement is refused as PostgreSQL refuses it in a failed
// transaction.
func (s *session) detachHeld(p *backendPool, parkFailed bool) error {
	s.mu.Lock()
	c := s.backend
	if c == nil || c.p == p {
		s.mu.Unlock()
		return nil
	}
	inTx := s.inBlock || s.txStatus != 'I'
	park := inTx && s.canPark() && !s.unsynced && !s.copyIn && !s.pinned
	if park && s.db.CrossShard == CrossShardDeny && !parkFailed {
		s.mu.Unlock()
		return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
			Message: fmt.Sprintf("cross-shard transaction denied: the transaction runs on shard %s, this statement needs another, and database %q has cross_shard: deny", c.p.shard, s.db.Name),
			Hint:    "Keep each transaction on one shard key, or set cross_shard to allow."}
	}
	if (inTx && !park) || s.unsynced || s.copyIn || s.pinned || s.failedTx {
		why := "the open transaction runs"
		if s.pinned {
			why = "session state (temporary tables, LISTEN, advisory locks...) lives"
		} else if s.unsynced {
			why = "the statements sent since the last Sync run"
		}
		s.mu.Unlock()
		need := "several shards"
		if p != nil {
			need = "shard " + p.shard
		}
		return s.crossShard(fmt.Sprintf("%s on shard %s, and this statement needs %s", why, c.p.shard, need))
	}
	if s.openRound {
		// Close the round the client left open here (Parse or Describe
		// without Sync), so that its implicit transaction ends.
		s.openRound = false
		s.q.push(entry{kind: eSync, swallow: true})
		s.write(c, msgSync)
	}
	if b := s.q.back(); b != nil && b.kind == eFake && !isMarker(b) {
		// A reply of the proxy's own waits for a backend reply that
		// nothing asked for yet (an error in a batch no endBatch
		// ended): a no-op Close makes one, as endBatch does.
		s.q.push(entry{kind: eClose, swallow: true})
		s.write(c, msgTickClose)
		s.write(c, msgFlush)
	}
	var wait chan struct{}
	if s.q.len() > 0 {
		wait = make(chan struct{})
		s.drained = wait
	}
	s.mu.Unlock()
	if wait != nil {
		if err := c.bw.Flush(); err != nil {
			c.nc.Close()
		}
		select {
		case <-wait:
		case <-s.ctx.Done():
			return newFatal(codeAdminShutdown, "pgshard is shutting down")
		}
	}
	s.mu.Lock()
	var rel *serverConn
	switch {
	case s.backend != c:
	case park && (s.inBlock || s.txStatus != 'I'):
		if s.txStatus == 'E' && !parkFailed {
			s.mu.Unlock()
			return errAbortedTx
		}
		if s.db.CrossShard == CrossShardLog && len(s.parked) == 0 {
			s.log.Info("cross-shard transaction", "from_shard", c.p.shard)
		}
		s.parkLocked(c)
		s.releasePending = false
	case s.releasableLocked():
		rel = s.detachLocked()
		s.releasePending = false
	}
	s.holding = false
	failed := s.roundErr
	s.roundErr = false
	s.mu.Unlock()
	if rel != nil {
		s.giveBack(rel)
	}
	if failed {
		// The server failed a message of this round: PostgreSQL would
		// skip the rest of it, this message included.
		s.skipToSync = true
		return errHandled
	}
	return nil
}

// attachBound attaches the session's pool and sends there what waits for
// a backend: the BEGIN of a transaction not bound yet, and deferred Parses.
func (s *session) attachBound(bind bool) (*serverConn, error) {
	c, err := s.attach()
	if err != nil {
		return nil, err
	}
	if s.vtx != nil && bind {
		sql := strings.Join(s.vtx, ";")
		s.vtx = nil
		s.txBegin = sql
		s.internalQuery(c, sql, false, nil)
		s.mu.Lock()
		s.inBlock, s.vtxStatus = true, 0
		s.mu.Unlock()
	}
	for len(s.deferred) > 0 {
		// Dropped once sent: a Parse that could not be (its backend
		// lost, errBackendGone) waits for the next backend.
		if err := s.deferred[0].send(c); err != nil {
			return nil, err
		}
		s.deferred = s.deferred[1:]
	}
	s.deferred = nil
	return c, nil
}

// crossShard is the error for statements that would need several shards
// where pgshard cannot run them so.
func (s *session) crossShard(why string) error {
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
		Message: "cross-shard statement not supported: " + why,
		Hint:    "Keep each transaction on one shard: pin its statements to one shard key, or use a pgshard hint."}
}

// routeNotice queues the NOTICE that says where a statement goes: to
// each shard's primary (server 0) or a replica.
func (s *session) routeNotice(shards, servers []int) {
	if !s.db.RouteNotices {
		return
	}
	roles := make([]string, len(shards))
	for i := range shards {
		roles[i] = "primary"
		if servers[i] > 0 {
			roles[i] = "replica"
		}
	}
	mixed := slices.Contains(roles, "primary") && slices.Contains(roles, "replica")
	var b strings.Builder
	b.WriteString("routed to ")
	for i, sh := range shards {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.db.Shards[sh].Name)
		if mixed {
			b.WriteString(" (" + roles[i] + ")")
		}
	}
	if !mixed {
		b.WriteString(" (" + roles[0] + ")")
	}
	s.reply(entry{kind: eFake, fake: appendNotice(nil, "NOTICE", "00000", b.String())})
}

// settingValue returns the value a SET statement gives, unquoted.
func settingValue(text string) string {
	t := strings.TrimSpace(text)
	lower := strings.ToLower(t)
	i := strings.Index(lower, "=")
	if j := strings.Index(lower, " to "); j >= 0 && (i < 0 || j < i) {
		i = j + 3
	}
	if i < 0 {
		return ""
	}
	v := strings.TrimSpace(t[i+1:])
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		v = strings.ReplaceAll(v[1:len(v)-1], string(v[0])+string(v[0]), string(v[0]))
	}
	if strings.EqualFold(v, "default") {
		return ""
	}
	return v
}

// pgshardSetting handles SET / RESET of pgshard.shard and pgshard.key,
// which pgshard keeps itself. It reports whether st was one.
func (s *session) pgshardSetting(st parser.Statement) (bool, error) {
	name := st.Name
	if !strings.HasPrefix(name, "pgshard.") {
		return false, nil
	}
	var h *hints
	tag := "SET"
	switch st.Kind {
	case parser.Set:
		h = &s.hint
	case parser.SetLocal:
		h = &s.localHint
	case parser.Reset:
		h, tag = &s.hint, "RESET"
	default:
		return false, nil
	}
	val := ""
	if st.Kind != parser.Reset {
		val = settingValue(st.Text)
	}
	if val != "" && s.db.DenyHints {
		return true, s.refuse(s.hintsDenied())
	}
	switch name {
	case "pgshard.shard":
		if val != "" && !slices.Contains(s.rt.shards, val) {
			return true, &pgError{Severity: "ERROR", Code: codeInvalidParamValue,
				Message: fmt.Sprintf("unknown shard %q: the database has %s", val, strings.Join(s.rt.shards, ", "))}
		}
		h.shard = val
	case "pgshard.key":
		h.key = val
	default:
		return true, &pgError{Severity: "ERROR", Code: codeInvalidParamValue,
			Message: fmt.Sprintf("unrecognized configuration parameter %q", name), Hint: "pgshard knows pgshard.shard and pgshard.key."}
	}
	if st.Kind == parser.SetLocal && !s.inTx() {
		h.shard, h.key = "", ""
		s.reply(entry{kind: eFake, fake: appendNotice(nil, "WARNING", "25P01", "SET LOCAL can only be used in transaction blocks")})
	}
	if st.Kind == parser.Reset {
		s.localHint = hints{}
	}
	return true, s.replyTag(tag)
}

// appendNotice appends a NoticeResponse of pgshard's own.
func appendNotice(b []byte, severity, code, msg string) []byte {
	n := len(b)
	b = appendErrorResponse(b, &pgError{Severity: severity, Code: code, Message: msg})
	b[n] = 'N'
	return b
}

// replyTag answers a simple Query with a CommandComplete of pgshard's own.
func (s *session) replyTag(tag string) error {
	s.reply(entry{kind: eFake, fake: appendCommandComplete(nil, tag), readyAfter: true})
	return nil
}

// hintsDenied is the error for a routing hint in a database with hints:
// deny.
func (s *session) hintsDenied() error {
	return &pgError{Severity: "ERROR", Code: codeInsufficientPrivilege,
		Message: fmt.Sprintf("routing hints are not allowed in database %q (hints: deny)", s.db.Name),
		Hint:    "Remove the pgshard hint and let the shard key route the statement, or set hints: allow for the database."}
}

// currentHints are the hints in force: SET LOCAL ones over SET ones.
func (s *session) currentHints() hints {
	h := s.hint
	if s.localHint.shard != "" {
		h.shard = s.localHint.shard
	}
	if s.localHint.key != "" {
		h.key = s.localHint.key
	}
	return h
}

// endTx forgets what lasted until the end of the transaction.
func (s *session) endTx() {
	s.localHint = hints{}
	s.vtx, s.vtxFailed = nil, false
	s.setVtxStatus(0)
}

// setVtxStatus tells the backend reader whether the client is in a
// transaction no backend knows of, so that a round run on a backend
// outside it still reports the client's status.
func (s *session) setVtxStatus(status byte) {
	s.mu.Lock()
	s.vtxStatus = status
	s.mu.Unlock()
}

// vtxReadOnly reports whether the unbound transaction was opened READ ONLY.
func (s *session) vtxReadOnly() bool {
	return s.vtx != nil && strings.Contains(strings.ToUpper(s.vtx[0]), "READ ONLY")
}

// routeQuery routes a simple Query. It returns the backend to send it to,
// or nil when pgshard answered it (or ran it on several shards) itself.
func (s *session) routeQuery(body []byte, sql string, stmts []parser.Statement) (*serverConn, error) {
	// Statements about transactions and settings pgshard answers itself.
	if len(stmts) == 1 {
		st := stmts[0]
		if ok, err := s.pgshardSetting(st); ok {
			return nil, err
		}
		if done, tag, err := s.multiTxStatement(st); done {
			if err != nil {
				return nil, err
			}
			return nil, s.replyStatus(tag, s.vtxStatusNow())
		}
		if done, tag, err := s.virtualTx(st); done {
			if err != nil {
				return nil, err
			}
			return nil, s.replyStatus(tag, s.vtxStatusNow())
		}
		s.noteTxControl(st)
	} else {
		for _, st := range stmts {
			if strings.HasPrefix(st.Name, "pgshard.") {
				return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
					Message: "SET pgshard.* must be sent on its own, not with other statements"}
			}
			if s.multiTx() && txControl(st.Kind) {
				return nil, s.refuse(s.crossShard("the transaction spans shards: send " + firstWords(st.Text) + " on its own, not with other statements"))
			}
		}
	}
	if s.vtxFailed {
		return nil, errAbortedTx
	}
	as, lits, err := s.srv.cache.AnalyzeQuery(sql, &s.scratch)
	if err != nil {
		// PostgreSQL reports the syntax error in its own words.
		return s.use(s.pool)
	}
	var p *bindParams
	if lits != nil {
		s.lits.literals = lits
		p = &s.lits
	}
	d, err := s.decide(as, p, sql)
	if err != nil {
		return nil, s.refuse(err)
	}
	if len(d.shards) > 1 && len(as) > 1 {
		return nil, s.refuse(s.crossShard("a query string of several statements must stay on one shard; send them one at a time"))
	}
	return s.sendTo(d, body, false)
}

// decide routes analysed statements, learning key columns from the
// catalog when a rule needs them.
func (s *session) decide(as []parser.Analysis, p *bindParams, sql string) (decision, error) {
	r := s.rt.router.Load()
	for i := range as {
		if s.rt.needsCatalog(r, &as[i]) {
			s.rt.learn(s.ctx, s.connectShard)
			r = s.rt.router.Load()
			break
		}
	}
	h := s.currentHints()
	if s.db.DenyHints && (h != hints{} || slices.ContainsFunc(as, func(a parser.Analysis) bool { return !a.Hint.IsZero() })) {
		return decision{}, s.hintsDenied()
	}
	d, err := s.rt.decide(r, as, p, h, sql)
	if err != nil {
		return d, err
	}
	if d.reject != "" {
		return d, s.crossShard(d.reject)
	}
	return d, nil
}

// connectShard opens a plain connection to a shard's primary.
func (s *session) connectShard(ctx context.Context, shard int) (*pgconn.PgConn, error) {
	p, err := s.poolFor(shard, 0)
	if err != nil {
		return nil, err
	}
	return pgconn.ConnectConfig(ctx, p.cfg)
}

// refuse reports a statement pgshard will not run. Inside a transaction
// the transaction fails, as PostgreSQL fails it after an error.
func (s *session) refuse(err error) error { return s.refuseIn(err, false) }

// refuseIn is refuse; extended says the client is in an extended-protocol
// round, where the failure must not end the round.
func (s *session) refuseIn(err error, extended bool) error {
	if s.vtx != nil {
		s.vtxFailed = true
		s.setVtxStatus('E')
		return err
	}
	s.mu.Lock()
	c := s.backend
	inTx := c != nil && (s.inBlock || s.txStatus != 'I')
	s.mu.Unlock()
	if !inTx {
		return err
	}
	// Let the backend fail the transaction with pgshard's error, so that
	// its state and the client's agree.
	c, aerr := s.attach()
	if aerr != nil {
		return aerr
	}
	pe := toPgError(err)
	raise := fmt.Sprintf("DO $pgshard$BEGIN RAISE EXCEPTION USING ERRCODE = %s, MESSAGE = %s, HINT = %s; END$pgshard$",
		quoteLiteral(pe.Code), quoteLiteral(pe.Message), quoteLiteral(pe.Hint))
	if extended {
		// Parse, Bind, Execute of the unnamed statement; the error of the
		// Execute reaches the client and the server skips to Sync.
		for _, k := range []entryKind{eParse, eBind, eExecute} {
			if err := s.push(c, entry{kind: k, swallow: true}); err != nil {
				return err
			}
		}
		c.unnamed = 0
		s.writeMsg(c, 'P', []byte{0}, []byte(raise), []byte{0, 0, 0})
		s.writeMsg(c, 'B', []byte{0, 0, 0, 0, 0, 0, 0, 0})
		s.writeMsg(c, 'E', []byte{0, 0, 0, 0, 0})
		return errHandled
	}
	if err := s.push(c, entry{kind: eQuery}); err != nil {
		return err
	}
	s.out = appendQuery(s.out[:0], raise)
	s.write(c, s.out)
	return errHandled
}

// virtualTx answers BEGIN, and what follows it until the transaction is
// bound to a shard, without a backend: it applies st and returns the
// command tag to answer with. done reports whether it answered.
func (s *session) virtualTx(st parser.Statement) (done bool, tag string, err error) {
	if len(s.rt.shards) < 2 {
		return false, "", nil
	}
	if s.attached() {
		return false, "", nil // a transaction on a backend: it answers
	}
	switch {
	case st.Kind == parser.Begin && s.vtx == nil:
		s.vtx = []string{st.Text}
		s.setVtxStatus('T')
		tag := "BEGIN"
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(st.Text)), "START") {
			tag = "START TRANSACTION"
		}
		return true, tag, nil
	case s.vtx == nil:
		return false, "", nil
	case st.Kind == parser.Begin:
		s.reply(entry{kind: eFake, fake: appendNotice(nil, "WARNING", "25001", "there is already a transaction in progress")})
		return true, "BEGIN", nil
	case st.Kind == parser.Commit || st.Kind == parser.Rollback:
		tag := "COMMIT"
		if st.Kind == parser.Rollback || s.vtxFailed {
			tag = "ROLLBACK"
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(st.Text)), "PREPARE") {
			return false, "", nil
		}
		chain := st.Chain
		first := s.vtx[0]
		s.endTx()
		if chain {
			s.vtx = []string{first}
			s.setVtxStatus('T')
		}
		return true, tag, nil
	case s.vtxFailed:
		return false, "", nil
	case st.Kind == parser.Savepoint || st.Kind == parser.Release || st.Kind == parser.RollbackTo || st.Kind == parser.SetLocal:
		s.vtx = append(s.vtx, st.Text)
		tag := map[parser.Kind]string{parser.Savepoint: "SAVEPOINT", parser.Release: "RELEASE", parser.RollbackTo: "ROLLBACK", parser.SetLocal: "SET"}[st.Kind]
		return true, tag, nil
	}
	return false, "", nil
}

// virtualPortal is a portal bound to a statement virtualTx answered: its
// Describe has no data and its Execute the statement's tag.
type virtualPortal struct {
	name, tag string
}

// bindVirtual answers the Bind of a transaction statement that virtualTx
// answers, as PostgreSQL would answer it outside a transaction. It reports
// whether it did.
func (s *session) bindVirtual(st *clientStmt, portal []byte) (bool, error) {
	if s.rt == nil || !txControl(st.class.Kind) {
		return false, nil
	}
	if len(s.deferred) > 0 {
		// No backend is held; Parses before this Bind are answered first.
		if err := s.answerDeferred(); err != nil {
			return true, err
		}
	}
	done, tag, err := s.multiTxStatement(st.class)
	if !done {
		done, tag, err = s.virtualTx(st.class)
	}
	if !done || err != nil {
		return done, err
	}
	s.vportal = &virtualPortal{name: string(portal), tag: tag}
	s.reply(entry{kind: eFake, fake: msgBindComplete})
	return true, nil
}

// txControl reports whether virtualTx may answer statements of kind k.
func txControl(k parser.Kind) bool {
	switch k {
	case parser.Begin, parser.Commit, parser.Rollback, parser.Savepoint, parser.Release, parser.RollbackTo, parser.SetLocal:
		return true
	}
	return false
}

// answerDeferred has the Parses that wait for a backend answered by one,
// in their place, and lets the backend go.
func (s *session) answerDeferred() error {
	if len(s.deferred) > 0 {
		if _, err := s.attachAny(); err != nil {
			return err
		}
	}
	return s.letGo()
}

// vtxStatusNow is the transaction status the client is told: 'T' in an
// unbound transaction ('E' once failed), 'I' outside one.
func (s *session) vtxStatusNow() byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vtxStatus != 0 {
		return s.vtxStatus
	}
	return 'I'
}

// replyStatus answers a Query with a tag and ReadyForQuery with status.
func (s *session) replyStatus(tag string, status byte) error {
	b := appendCommandComplete(nil, tag)
	if s.vtxFailed && status == 'T' {
		status = 'E'
	}
	b = appendReadyForQuery(b, status)
	s.reply(entry{kind: eFake, fake: b})
	return nil
}

// sendTo picks the server for a decision and attaches it; several shards
// run the Query there and then (scatter).
func (s *session) sendTo(d decision, body []byte, extended bool) (*serverConn, error) {
	if d.copyIn != nil {
		if err := s.crossShardAllowed(d, extended); err != nil {
			return nil, err
		}
		if extended {
			return nil, s.refuseIn(s.crossShard("COPY FROM STDIN into a table on several shards needs the simple query protocol"), true)
		}
		return nil, s.copyInStart(d, body)
	}
	if len(d.shards) > 1 {
		if err := s.canScatter(d, extended); err != nil {
			return nil, err
		}
		return nil, s.scatter(d, body)
	}
	shard := d.shards[0]
	var p *backendPool
	if d.anywhere {
		// No table: stay where the session is, so a transaction keeps
		// its backend (primary or replica) and nothing moves for SELECT 1.
		s.mu.Lock()
		if s.backend != nil {
			p = s.backend.p
		}
		s.mu.Unlock()
		if p == nil {
			shard = s.pool.shardIdx
		}
	}
	server := 0
	if p == nil {
		server = s.pickServer(shard, d.write)
		var err error
		if p, err = s.poolFor(shard, server); err != nil {
			return nil, err
		}
	}
	shard, server = p.shardIdx, p.server
	c, err := s.use(p)
	if err != nil {
		if server > 0 {
			// The replica is unusable: the primary serves the read.
			s.srv.replicaFailed(s.db, p)
			if p, err = s.poolFor(shard, 0); err == nil {
				c, err = s.use(p)
			}
			server = 0
		}
		if err != nil {
			if err == errHandled {
				return nil, err
			}
			return nil, s.refuseIn(err, extended)
		}
	}
	if d.write {
		s.noteWrite()
	}
	s.routeNotice([]int{shard}, []int{server})
	return c, nil
}

// canScatter refuses a multi-shard statement pgshard cannot run on its
// shards at once.
func (s *session) canScatter(d decision, extended bool) error {
	if d.copyIn != nil {
		return s.refuseIn(s.crossShard("COPY FROM STDIN into a table on several shards needs the simple query protocol"), extended)
	}
	if err := s.crossShardAllowed(d, extended); err != nil {
		return err
	}
	if s.inTx() && !s.canPark() {
		return s.refuseIn(s.crossShard(fmt.Sprintf("it needs shards %s inside a transaction", s.shardNames(d.shards))), extended)
	}
	if !d.concat && d.sorted == nil && d.grouped == nil {
		why := "DISTINCT, GROUP BY, aggregates or window functions"
		if d.notMergeable != "" {
			why = d.notMergeable
		}
		return s.refuseIn(s.crossShard(fmt.Sprintf("it needs shards %s and pgshard cannot merge their rows yet (%s); pin one shard key", s.shardNames(d.shards), why)), extended)
	}
	return nil
}

// crossShardAllowed applies the database's cross_shard setting to a
// statement that needs several shards.
func (s *session) crossShardAllowed(d decision, extended bool) error {
	switch s.db.CrossShard {
	case CrossShardDeny:
		hint := "Pin the statement to one shard with its shard key or a pgshard hint, or set cross_shard to allow."
		if s.db.DenyHints {
			hint = "Pin the statement to one shard with its shard key, or set cross_shard to allow."
		}
		return s.refuseIn(&pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
			Message: fmt.Sprintf("cross-shard statement denied: it needs shards %s, and database %q has cross_shard: deny", s.shardNames(d.shards), s.db.Name),
			Hint:    hint}, extended)
	case CrossShardLog:
		s.log.Info("cross-shard statement", "shards", s.shardNames(d.shards), "write", d.write)
	}
	return nil
}

func (s *session) shardNames(shards []int) string {
	names := make([]string, len(shards))
	for i, sh := range shards {
		names[i] = s.db.Shards[sh].Name
	}
	return strings.Join(names, ", ")
}

// routeBind routes an extended-protocol statement at its Bind, when its
// parameters are known, and returns the backend to run it on. A statement
// for several shards returns none: it is held until its Execute.
func (s *session) routeBind(st *clientStmt, portal, params []byte) (*serverConn, error) {
	if s.vtxFailed {
		return nil, errAbortedTx
	}
	s.noteTxControl(st.class)
	as, err := s.srv.cache.Analyze(st.query)
	if err != nil || len(as) != 1 {
		// PostgreSQL reports the error (or refuses several statements).
		return s.use(s.pool)
	}
	p, err := parseBindParams(params)
	if err != nil {
		return nil, newFatal(codeProtocolViolation, "%v", err)
	}
	d, err := s.decide(as, p, st.query)
	if err != nil {
		return nil, s.refuseIn(err, true)
	}
	if len(d.shards) == 1 {
		return s.sendTo(d, nil, true)
	}
	if err := s.canScatter(d, true); err != nil {
		return nil, err
	}
	// Parses sent before this Bind get their answers from a server first,
	// in their place.
	if err := s.answerDeferred(); err != nil {
		return nil, err
	}
	s.xscatter = &extScatter{d: d, query: st.query, types: st.types, params: bytes.Clone(params), portal: string(portal)}
	return nil, nil
}

// deferParse records the backend half of a Parse for later, when no
// backend is held, so that it goes where the statement will run.
func (s *session) deferParse(fn func(c *serverConn) error, cs *clientStmt) bool {
	if s.rt == nil {
		return false
	}
	if s.attached() {
		return false
	}
	s.deferred = append(s.deferred, deferredParse{send: fn, cs: cs})
	return true
}

// parseAhead answers the Parse of a transaction statement (BEGIN, COMMIT,
// SAVEPOINT...) that pgshard may answer itself, when no backend is held
// and no Parse waits: the statement is parsed on a backend only if it
// ever runs on one (see resolve). It reports whether it answered.
func (s *session) parseAhead(class parser.Statement) bool {
	if s.rt == nil || !txControl(class.Kind) || len(s.deferred) > 0 {
		return false
	}
	if s.attached() {
		return false
	}
	s.reply(entry{kind: eFake, fake: msgParseComplete})
	return true
}

// attachAny attaches the session's current pool, flushing deferred
// Parses; for messages that do not choose a shard.
func (s *session) attachAny() (*serverConn, error) {
	if s.rt == nil {
		return s.attach()
	}
	// Describe, Sync and the like do not bind an open transaction to a
	// shard: only a routed statement does.
	if err := s.releaseHeld(s.pool); err != nil {
		return nil, err
	}
	return s.attachBound(false)
}

// errAbortedTx refuses statements in a transaction pgshard failed before
// it reached a backend, as PostgreSQL does in an aborted transaction.
var errAbortedTx = &pgError{Severity: "ERROR", Code: codeInFailedTx,
	Message: "current transaction is aborted, commands ignored until end of transaction block"}

// errHandled means the error reply is already on its way to the client.
var errHandled = errors.New("handled")

// pickServer chooses the server of a shard for a statement: 0 (the
// primary) or a replica.
func (s *session) pickServer(shard int, write bool) int {
	if tp := s.parked[shard]; tp != nil {
		return tp.c.p.server // the transaction's backend there
	}
	if write || !s.db.ReadWriteSplit || len(s.db.Shards[shard].Replicas) == 0 {
		return 0
	}
	if s.inTx() && !s.vtxReadOnly() {
		return 0
	}
	s.mu.Lock()
	wrote := s.lastCommit[shard]
	s.mu.Unlock()
	return s.srv.pickReplica(s, shard, wrote)
}

// noteWrite records that the client sent a write to a primary; its
// commit time is noted when the backend is next idle.
func (s *session) noteWrite() {
	s.mu.Lock()
	s.writePending = true
	s.mu.Unlock()
}
