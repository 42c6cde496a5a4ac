package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/pool"
)

// session is one client connection after login.
//
// The session goroutine (serve) owns the client reader and everything not
// listed under mu or wmu. The reader goroutine of the attached backend
// writes replies to the client under wmu and updates the state under mu.
// Lock order: wmu before mu. Nobody blocks on the network while holding mu.
type session struct {
	srv  *Server
	id   uint64
	log  *slog.Logger
	nc   net.Conn
	cr   *bufio.Reader
	db   *database
	pool *backendPool // where the next statement goes unless routed elsewhere
	rt   *routes      // nil: the database has one primary and no rules
	user string
	// leaveUser gives back the user's place counted by admitUser.
	leaveUser func()
	// buser and bpass log in to backends (the database's backend user, or
	// the client's own name and password).
	buser, bpass string
	mode         PoolMode
	key          cancelKey
	ctx          context.Context
	// connected is when the client logged in. lastRequest is when its
	// last message arrived and waitSince when it started waiting for a
	// backend (0: not waiting), both in Unix nanoseconds, and waitPool
	// what it waits for: the admin console reads them (admin.go).
	connected   time.Time
	lastRequest atomic.Int64
	waitSince   atomic.Int64
	waitPool    atomic.Pointer[backendPool]

	// startup holds the SET statements that apply the client's startup
	// parameters; they are the session defaults RESET returns to.
	startup map[string]string

	// Owned by the session goroutine. typ is the type of the client's
	// message being handled, body its body.
	typ        byte
	body       []byte
	out        []byte
	stmts      map[string]*clientStmt
	unnamed    *clientStmt // the client's unnamed statement, if any
	unnamedTok uint64      // identifies it on a backend
	portals    map[string]parser.Statement
	skipToSync bool // a proxy error in the extended protocol: discard until Sync
	// xscatter is a multi-shard statement bound but not yet executed.
	xscatter *extScatter
	// vportal is the portal of a transaction statement pgshard answers.
	vportal     *virtualPortal
	wroteDirect bool
	// Routing state (rt != nil).
	scratch   parser.Scratch // for the parse cache
	lits      bindParams     // a simple Query's literals, while it is routed
	hint      hints          // SET pgshard.shard / pgshard.key
	localHint hints          // SET LOCAL pgshard.*: until the transaction ends
	// vtx holds the BEGIN (and what followed it that pgshard answered
	// itself) of a transaction not bound to a shard yet: the client was
	// told it is in a transaction block, no backend was. vtxFailed: a
	// statement of it was refused; only ROLLBACK ends it.
	vtx       []string
	vtxFailed bool
	// deferred are the backend halves of Parse messages that arrived while
	// no backend was held: they go to whichever backend the next message
	// needs, ahead of it.
	deferred []deferredParse
	// lastCommit is, by shard, when the client's last write there was
	// known committed (reads on that shard's replicas must not miss it).
	lastCommit map[int]time.Time

	// reading: the session waits for the client's next message (a
	// graceful shutdown wakes it with a read deadline).
	reading atomic.Bool

	// lostMidRound is set by backendLost when the client had sent part of
	// an extended-protocol round; the session goroutine then skips to Sync.
	lostMidRound atomic.Bool

	wmu sync.Mutex
	// cw buffers what goes to the client; use clientBuf. An idle session
	// lends it back to clientWriters (see idle), so a client that sends
	// nothing holds no write buffer.
	cw        *bufio.Writer
	clientErr error

	mu             sync.Mutex
	backend        *serverConn
	q              respQueue
	holding        bool // the session goroutine is writing to backend
	releasePending bool // backend became free while held
	txStatus       byte
	inBlock        bool // an explicit transaction block is open
	// copyIn: the server is in COPY FROM STDIN (CopyInResponse seen, its
	// CommandComplete or error not yet). copyEndQueued: the client has sent
	// CopyDone or CopyFail for it (a marker is in the queue).
	copyIn        bool
	copyEndQueued bool
	// unsynced: an Execute was sent after the last Sync. Its implicit
	// transaction is open on the backend, and a Sync by anyone would
	// commit it.
	unsynced bool
	// openRound: extended-protocol messages were sent after the last Sync
	// (a Parse alone opens an implicit transaction that holds locks).
	// roundErr: the server failed one of them; PostgreSQL skips the rest
	// of the client's round.
	openRound bool
	roundErr  bool
	pinned    bool // session state lives on this backend: keep it
	failedTx  bool // the backend died inside a transaction block
	// lostErr is why: the error of the client's next statement, when
	// the backend died while no statement of the client's was running;
	// lostFrom is that backend's pool (see errCommitLost).
	lostErr     *pgError
	lostFrom    *backendPool
	failedRound bool // the server reported an error and skips to Sync
	deathErr    *pgError
	unparsed    []unparsed // client statements whose Parse failed or was skipped
	// roundParsed are the client statements whose Parse was answered in
	// the client's extended-protocol round still open (no ReadyForQuery
	// yet): if the backend is lost before the round ends, the client sees
	// the round fail and takes them as never made, so they are forgotten.
	roundParsed []unparsed
	params      map[string]string // committed SET statements by setting
	pending     []setOp           // SETs of the open transaction
	connUnknown bool              // the backend's settings no longer match params
	fakes       []byte            // scratch for the reader
	// running are the connections of a statement running on several
	// shards (scatter, split COPY), for cancel requests; their users
	// wait for the cancels they counted before handing them on.
	running []*serverConn
	// drained, when set, is closed by the reader once the queue is empty.
	drained chan struct{}
	// waitCtx bounds the session's waits for a backend (acquire) while
	// waiting is set: a cancel request then ends it with cause
	// errCancelWait, and the statement fails without being sent, as
	// PgBouncer drops a queued query. One that ended is replaced at the
	// next wait; close ends the last one.
	waitCtx    context.Context
	waitCancel context.CancelCauseFunc
	waiting    bool
	// writePending: a write was sent and lastCommit is due at the next
	// ReadyForQuery outside a transaction.
	writePending bool
	// vtxStatus mirrors vtx for the reader: 'T' or 'E' (failed) while the
	// client is in a transaction no backend knows of yet, or whose
	// backends are all parked.
	vtxStatus byte
	// parked are the backends of the client's transaction, by shard,
	// other than the session's backend, when the transaction spans shards
	// (see xact.go); txOrder the shards in the order the transaction
	// reached them; txBegin the BEGIN that opens it on a shard it joins.
	// The session goroutine owns them; parkLocked and unparkLocked run
	// under mu.
	parked  map[int]*txPart
	txOrder []int
	txBegin string
	// copyin is a COPY FROM STDIN split over shards, in progress.
	copyin *copyIn
	// scatterTx: the scatter running is part of the client's transaction;
	// scatterFailed: it failed, and with it the transaction.
	scatterTx, scatterFailed bool
	// met counts the session's work for its database (metrics.go).
	met *sessMetrics
}

// clientStmt is a statement the client prepared under its own name.
type clientStmt struct {
	name  string // the client's name
	sn    string // name on the backends
	query string
	types []byte // the Parse message's parameter type section
	class parser.Statement
}

// deferredParse is the backend half of a Parse waiting for a backend;
// cs is the client statement it creates, nil for the unnamed one.
type deferredParse struct {
	send func(c *serverConn) error
	cs   *clientStmt
}

// unparsed is a client statement name whose Parse did not happen.
type unparsed struct {
	name string
	cs   *clientStmt
}

type setOp struct {
	kind parser.Kind
	name string
	text string
}

var errBackendGone = errors.New("backend connection lost")

// lostDetail is the detail of the error a client gets for a backend lost
// under its statement or transaction.
const lostDetail = "The statement was not retried; an open transaction was rolled back."

// lostHint says what to do about it.
const lostHint = "Run the statement, or the whole transaction, again; pgshard connects to the server again on its own."

// maxSendAttempts bounds the backends a message is tried on when each is
// lost before the message could be sent to it.
const maxSendAttempts = 3

// maxMessageLen is PostgreSQL's own limit on any message, CopyData
// included (1 GB - 1).
const maxMessageLen = 1<<30 - 1

// serve runs the session until the client leaves or the connection fails.
func (s *session) serve() error {
	for {
		if s.cr.Buffered() == 0 {
			s.endBatch()
			s.idle()
			if s.leaveForShutdown(nil) {
				return errShuttingDown
			}
			s.reading.Store(true)
		}
		typ, n, err := peekHeader(s.cr)
		s.reading.Store(false)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && s.srv.draining.Load() {
				if s.leaveForShutdown(err) {
					return errShuttingDown
				}
				continue // a transaction runs: serve it to its end
			}
			return err
		}
		if n < 0 {
			return newFatal(codeProtocolViolation, "invalid message length")
		}
		if typ == 'd' && n > maxMessageLen {
			return newFatal(codeProtocolViolation, "invalid message length %d", n)
		}
		if typ == 'd' {
			if err := s.copyData(n); err != nil {
				return err
			}
			continue
		}
		if n > s.srv.current().opts.MaxMessageSize {
			return newFatal(codeProgramLimit, "message of %d bytes exceeds max_message_size (%d bytes)", n, s.srv.current().opts.MaxMessageSize)
		}
		s.cr.Discard(headerLen)
		s.body, err = readFull(s.cr, s.body, n)
		if err != nil {
			return err
		}
		s.lastRequest.Store(time.Now().UnixNano())
		if typ == 'X' {
			return io.EOF
		}
		// A backend lost before the message went out (it died as the
		// session took it, a server restarting): the message was not
		// sent, and goes to another.
		s.typ = typ
		for attempt := 1; ; attempt++ {
			err = s.dispatch(typ, s.body)
			if !errors.Is(err, errBackendGone) {
				break
			}
			if attempt == maxSendAttempts {
				// The client must hear of it, or it waits forever.
				err = &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: err,
					Message: fmt.Sprintf("lost connection to server %s (%s) %d times before the statement could be sent", s.pool.shard, s.pool.addr, attempt),
					Detail:  "The statement was not sent.", Hint: lostHint}
				break
			}
		}
		if err != nil && err != errHandled {
			var pe *pgError
			if errors.As(err, &pe) && pe.Severity == "FATAL" {
				return err
			}
			s.replyError(typ, err)
		}
	}
}

// dispatch handles one frontend message.
func (s *session) dispatch(typ byte, body []byte) error {
	if s.lostMidRound.Swap(false) {
		s.skipToSync = true
	}
	s.forgetUnparsed()
	if typ == 'Q' || typ == 'P' || typ == 'B' || typ == 'F' {
		if pe := s.takeLostErr(typ, body); pe != nil {
			return pe
		}
	}
	if s.copyin != nil {
		switch typ {
		case 'c', 'f':
		case 'S', 'H':
			return nil // ignored during COPY FROM STDIN, as PostgreSQL does
		default:
			s.copyin.abort(&pgError{Severity: "ERROR", Code: codeProtocolViolation,
				Message: fmt.Sprintf("unexpected message type %q during COPY from stdin", typ)})
			return s.copyin.finish()
		}
	}
	if s.xscatter != nil {
		done, err := s.holdScatter(typ, body)
		if done {
			return err
		}
		if err != nil && err != errHandled {
			s.replyError('B', err) // in the Bind's place; then the Sync
		}
	}
	if s.skipToSync {
		switch typ {
		case 'S':
			s.skipToSync = false
			return s.sync(body)
		case 'P', 'B', 'D', 'E', 'C', 'H', 'c', 'f':
			return nil
		}
		s.skipToSync = false
	}
	switch typ {
	case 'Q':
		return s.query(body)
	case 'P':
		return s.parse(body)
	case 'B':
		return s.bind(body)
	case 'D':
		return s.describe(body)
	case 'E':
		return s.execute(body)
	case 'C':
		return s.closeMsg(body)
	case 'S':
		return s.sync(body)
	case 'H':
		return s.flush(body)
	case 'F':
		return s.forwardNew(typ, body, entry{kind: eFunction})
	case 'c', 'f':
		return s.copyEnd(typ, body)
	default:
		return newFatal(codeProtocolViolation, "invalid frontend message type %q", typ)
	}
}

// takeLostErr returns, once, the error of a backend lost while the
// client was idle in its transaction, for the statement message typ
// starts. COMMIT and ROLLBACK, which end the failed transaction, leave it
// to what ends it: COMMIT reports the loss (errCommitLost), ROLLBACK does
// without it.
func (s *session) takeLostErr(typ byte, body []byte) *pgError {
	s.mu.Lock()
	pe := s.lostErr
	s.mu.Unlock()
	if pe == nil {
		return nil
	}
	var kind parser.Kind
	switch typ {
	case 'Q':
		kind = parser.First(bodyString(body)).Kind
	case 'P':
		_, rest, _ := cstring(body)
		query, _, _ := cstring(rest)
		kind = parser.First(bytesString(query)).Kind
	case 'B':
		_, rest, _ := cstring(body)
		name, _, _ := cstring(rest)
		st := s.unnamed
		if len(name) > 0 {
			st = s.stmts[string(name)]
		}
		if st != nil {
			kind = st.class.Kind
		}
	}
	if kind == parser.Commit || kind == parser.Rollback {
		return nil
	}
	s.mu.Lock()
	s.lostErr, s.lostFrom = nil, nil
	s.mu.Unlock()
	return pe
}

// takeLostLocked returns and forgets the loss the client has not been
// told of, if any. Called with mu held.
func (s *session) takeLostLocked() (*pgError, *backendPool) {
	pe, p := s.lostErr, s.lostFrom
	s.lostErr, s.lostFrom = nil, nil
	return pe, p
}

// errCommitLost is the answer to COMMIT of a transaction that a backend
// lost at p (the error pe, which the client has not seen) rolled back:
// the client must learn that it did not commit, and why, rather than get
// a bare ROLLBACK tag.
func errCommitLost(pe *pgError, p *backendPool) *pgError {
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: pe,
		Message: fmt.Sprintf("the transaction was rolled back, not committed: the connection to server %s (%s) was lost during it", p.shard, p.addr),
		Detail:  fmt.Sprintf("The server's connection ended with: %s. The transaction was rolled back on every shard it touched and was not retried.", pe.Message),
		Hint:    "Run the whole transaction again; pgshard connects to the server again on its own."}
}

// endLostTx answers COMMIT or ROLLBACK of a transaction whose backend
// died, with no backend left in it: it is rolled back already, and the
// shard may still be down. It reports whether it answered st, and returns
// the error COMMIT gets when the client was not told of the loss yet.
func (s *session) endLostTx(st parser.Statement) (bool, error) {
	if (st.Kind != parser.Commit && st.Kind != parser.Rollback) || st.Chain ||
		strings.HasPrefix(strings.ToUpper(strings.TrimSpace(st.Text)), "PREPARE") {
		return false, nil
	}
	s.mu.Lock()
	if s.backend != nil || !s.failedTx || len(s.parked) > 0 {
		s.mu.Unlock()
		return false, nil
	}
	s.failedTx = false
	lost, from := s.takeLostLocked()
	s.mu.Unlock()
	if s.rt != nil {
		s.endTx()
		s.txBegin = ""
	}
	if st.Kind == parser.Commit && lost != nil {
		return true, errCommitLost(lost, from)
	}
	s.reply(entry{kind: eFake, fake: appendCommandComplete(nil, "ROLLBACK"), readyAfter: true})
	return true, nil
}

// forgetUnparsed drops the client's names for statements whose Parse the
// server failed or skipped, as PostgreSQL would not have created them.
func (s *session) forgetUnparsed() {
	s.mu.Lock()
	if len(s.unparsed) == 0 {
		s.mu.Unlock()
		return
	}
	gone := s.unparsed
	s.unparsed = nil
	s.mu.Unlock()
	for _, u := range gone {
		if s.stmts[u.name] == u.cs {
			delete(s.stmts, u.name)
		}
	}
}

// replyError reports an error of the proxy's own making for message typ, in
// its place among the replies. In the extended protocol the rest up to Sync
// is then discarded, as PostgreSQL does.
func (s *session) replyError(typ byte, err error) {
	if len(s.deferred) > 0 {
		// Parses before the failed message happened first.
		if _, aerr := s.attachAny(); aerr != nil {
			// They never reach a server: the statements they were to
			// create do not exist, as after a failed Parse.
			s.mu.Lock()
			for _, d := range s.deferred {
				if d.cs != nil {
					s.unparsed = append(s.unparsed, unparsed{name: d.cs.name, cs: d.cs})
				}
			}
			s.mu.Unlock()
			s.deferred = nil
		}
	}
	s.out = appendErrorResponse(s.out[:0], err)
	// A Sync is answered with ReadyForQuery whatever happens.
	simple := typ == 'Q' || typ == 'F' || typ == 'S'
	s.reply(entry{kind: eFake, fake: bytes.Clone(s.out), readyAfter: simple})
	s.noteError(err)
	if !simple {
		s.skipToSync = true
	}
	if pe := toPgError(err); pe.Code != codeInvalidPassword {
		s.log.Debug("statement refused", "sqlstate", pe.Code, "error", pe.Message)
	}
}

// reply queues a reply of the proxy's own, or writes it at once when no
// backend reply can come before it.
func (s *session) reply(e entry) {
	s.mu.Lock()
	if s.backend != nil {
		// Hold the backend so the reply cannot overtake queued replies.
		s.holding = true
		s.q.push(e)
		s.mu.Unlock()
		return
	}
	status := s.clientStatusLocked()
	s.mu.Unlock()
	s.wmu.Lock()
	if s.clientErr == nil {
		s.clientBuf().Write(e.fake)
		if e.readyAfter {
			var z [headerLen + 1]byte
			s.clientBuf().Write(appendReadyForQuery(z[:0], status))
		}
	}
	s.wmu.Unlock()
	s.wroteDirect = true
}

// clientStatusLocked is the transaction status to tell the client in a
// ReadyForQuery of pgshard's own. Called with mu held.
func (s *session) clientStatusLocked() byte {
	switch {
	case s.backend == nil && s.failedTx:
		return 'E'
	case s.txStatus == 'I' && s.vtxStatus != 0:
		return s.vtxStatus // a transaction no backend knows of yet
	}
	return s.txStatus
}

// attach returns the backend the session holds, acquiring one if needed, and
// marks it held until the end of the batch.
func (s *session) attach() (*serverConn, error) {
	s.mu.Lock()
	if c := s.backend; c != nil {
		s.holding = true
		s.mu.Unlock()
		return c, nil
	}
	if s.lostErr != nil {
		// The client's backend was lost in its transaction after this
		// message was checked for it (takeLostErr), or the message is
		// one that is not checked (Describe, Execute, Sync): this
		// statement is the one that says so, rather than run in the
		// failed transaction and get 25P02 for no reason the client saw.
		s.mu.Unlock()
		if pe := s.takeLostErr(s.typ, s.body); pe != nil {
			return nil, pe
		}
		s.mu.Lock()
	}
	if c := s.unparkLocked(s.pool); c != nil {
		if c.closed.Load() {
			// Lost while parked: nobody was told (it had no owner).
			s.backend, s.holding, s.txStatus, s.inBlock = nil, false, 'I', false
			c.owner.Store(nil)
			s.failedTx = true
			s.mu.Unlock()
			c.p.Discard(c)
			pe := errPartLost(c)
			pe.Detail, pe.Hint = lostDetail, lostHint
			return nil, pe
		}
		failed := s.failedTx
		s.failedTx = false
		s.takeLostLocked() // only COMMIT or ROLLBACK gets here with one
		s.mu.Unlock()
		if failed {
			// Another shard of the transaction was lost: fail the
			// transaction here too, so that PostgreSQL refuses what
			// follows and COMMIT rolls back.
			s.internalQuery(c, "SELECT 1/0", true, nil)
		}
		return c, nil
	}
	s.mu.Unlock()
	var c *serverConn
	for {
		var err error
		if c, err = s.acquire(); err != nil {
			return nil, err
		}
		if testHookAcquired != nil {
			testHookAcquired(c)
		}
		s.mu.Lock()
		s.backend = c
		c.owner.Store(s)
		if !c.closed.Load() {
			break
		}
		// Its reader ended as the pool handed it out, before it had an
		// owner to tell: the statement would wait for replies forever.
		// (A reader that ends after the Store above tells the session
		// itself.) Nothing was sent on it: take another.
		s.backend = nil
		c.owner.Store(nil)
		s.mu.Unlock()
		c.p.Discard(c)
	}
	s.holding = true
	s.txStatus = 'I'
	join := len(s.parked) > 0
	failed := s.failedTx
	s.failedTx = false
	s.takeLostLocked() // only COMMIT or ROLLBACK gets here with one
	s.mu.Unlock()
	if !maps.Equal(c.params, s.params) {
		s.syncParams(c)
	}
	if join {
		// The client's transaction spans shards and now reaches this one.
		s.noteShard(c.p.shardIdx)
		s.internalQuery(c, s.beginSQL(), false, nil)
	}
	switch {
	case failed && join:
		s.internalQuery(c, "SELECT 1/0", true, nil)
	case failed:
		// The client's transaction died with its backend. Open a failed
		// transaction here so PostgreSQL itself refuses everything but
		// ROLLBACK, in any protocol.
		s.internalQuery(c, "BEGIN; SELECT 1/0", true, nil)
	}
	if testHookAttached != nil {
		testHookAttached(c)
	}
	return c, nil
}

// errCancelWait is the cause of a wait for a backend that a cancel
// request ended.
var errCancelWait = errors.New("canceled by a cancel request while waiting for a backend")

// startWait marks the session waiting for a backend and returns the
// context of the wait, which a cancel request ends (Server.cancel).
func (s *session) startWait() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitCtx == nil || s.waitCtx.Err() != nil {
		s.waitCtx, s.waitCancel = context.WithCancelCause(s.ctx)
	}
	s.waiting = true
	return s.waitCtx
}

// endWait marks the wait for a backend over.
func (s *session) endWait() {
	s.mu.Lock()
	s.waiting = false
	s.mu.Unlock()
}

// cancelWaitLocked ends the session's wait for a backend, if it waits,
// and reports whether it did. Called with mu held.
func (s *session) cancelWaitLocked() bool {
	if !s.waiting {
		return false
	}
	s.waitCancel(errCancelWait)
	return true
}

// testHookAcquired and testHookAttached, when set by a test, are called
// with each backend attach takes from the pool: before the session owns
// it, and once it does.
var testHookAcquired, testHookAttached func(*serverConn)

// testHookBatchSent, when set by a test, is called once endBatch has sent
// the batch to backend c, before the session stops holding it;
// testHookUnflushed when the reader leaves a reply of c's (its last
// message of type typ) unflushed for the next message.
var (
	testHookBatchSent func(c *serverConn)
	testHookUnflushed func(c *serverConn, typ byte)
)

func (s *session) acquire() (*serverConn, error) {
	s.waitPool.Store(s.pool)
	s.waitSince.Store(time.Now().UnixNano())
	ctx := s.startWait()
	// PAUSE holds a session here before it takes a backend (pause.go).
	err := s.srv.waitPaused(ctx, s)
	var c *serverConn
	if err == nil {
		p, herr := s.healthyPool() // fails at once when the server is down (health.go)
		if herr != nil {
			s.endWait()
			s.waitSince.Store(0)
			s.waitPool.Store(nil)
			return nil, herr
		}
		s.pool = p
		c, err = s.acquireFrom(ctx, s.pool)
	}
	s.endWait()
	s.waitSince.Store(0)
	s.waitPool.Store(nil)
	if err == nil {
		return c, nil
	}
	switch {
	case errors.Is(context.Cause(ctx), errCancelWait):
		return nil, &pgError{Severity: "ERROR", Code: codeQueryCanceled, err: err,
			Message: "canceling statement due to user request",
			Detail:  fmt.Sprintf("The statement waited for a connection to server %s and was not sent.", s.pool.shard)}
	case errors.Is(err, pool.ErrWaitTimeout):
		return nil, &pgError{Severity: "ERROR", Code: codeTooManyConnections, err: err,
			Message: fmt.Sprintf("timed out after %s waiting for a connection to server %s (all %d in use)", s.srv.current().opts.QueryWaitTimeout, s.pool.shard, s.db.PoolSize),
			Hint:    "Raise pool_size or query_wait_timeout, or shorten transactions."}
	case errors.Is(err, context.Canceled):
		return nil, newFatal(codeAdminShutdown, "pgshard is shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		// The dial, not the wait: the server did not finish the login.
		return nil, &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: err,
			Message: fmt.Sprintf("could not connect to server %s (%s): no answer within server_connect_timeout (%s)", s.pool.shard, s.pool.addr, s.srv.current().opts.ServerConnectTimeout),
			Hint:    "Check that the backend server is running and reachable; pgshard tries again at the next statement."}
	default:
		return nil, &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: err,
			Message: fmt.Sprintf("could not connect to server %s (%s): %v", s.pool.shard, s.pool.addr, errors.Unwrap(err)),
			Hint:    "Check that the backend server is running and that pgshard's backend credentials are right."}
	}
}

// syncParams brings the backend's settings in line with the session's.
func (s *session) syncParams(c *serverConn) {
	if sql := s.paramsSQL(c); sql != "" {
		s.internalQuery(c, sql, false, nil)
	}
	c.params = maps.Clone(s.params)
}

// paramsSQL returns the statements that bring c's settings in line with
// the session's.
func (s *session) paramsSQL(c *serverConn) string {
	var b strings.Builder
	if c.params == nil {
		b.WriteString("RESET ALL;")
	} else {
		for name := range c.params {
			if _, ok := s.params[name]; !ok {
				b.WriteString("RESET ")
				b.WriteString(quoteIdent(name))
				b.WriteString(";")
			}
		}
	}
	for name, set := range s.params {
		if c.params == nil || c.params[name] != set {
			b.WriteString(set)
			b.WriteString(";")
		}
	}
	return b.String()
}

// internalQuery sends a query of the proxy's own whose replies the client
// does not see. Errors reach the client as warnings unless quiet.
func (s *session) internalQuery(c *serverConn, sql string, quiet bool, done chan struct{}) error {
	if err := s.push(c, entry{kind: eQuery, swallow: true, quiet: quiet, done: done}); err != nil {
		return err
	}
	c.unnamed = 0 // a simple Query destroys the unnamed statement
	s.out = appendQuery(s.out[:0], sql)
	return s.write(c, s.out)
}

// push appends an entry for a message about to be written to c. It fails
// when c is no longer the session's backend.
func (s *session) push(c *serverConn, e entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != c {
		return errBackendGone
	}
	switch e.kind {
	case eExecute:
		s.unsynced, s.openRound = true, true
	case eSync, eQuery:
		s.unsynced, s.openRound = false, false
	case eParse, eBind, eDescribe, eClose:
		s.openRound = true
	}
	if !e.swallow {
		s.noteSent(e.kind)
	}
	s.q.push(e)
	return nil
}

func (s *session) write(c *serverConn, b []byte) error {
	if _, err := c.bw.Write(b); err != nil {
		// The reader sees the failure too and reports it to the client.
		c.nc.Close()
	}
	return nil
}

// writeMsg writes a message with the given type and body parts to the
// backend, straight into its buffer.
func (s *session) writeMsg(c *serverConn, typ byte, body ...[]byte) error {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	if err := writeHeader(c.bw, typ, n); err != nil {
		c.nc.Close() // as in write
	}
	for _, b := range body {
		s.write(c, b)
	}
	return nil
}

// forwardNew sends a message to the backend with its entry.
func (s *session) forwardNew(typ byte, body []byte, e entry) error {
	c, err := s.attachAny()
	if err != nil {
		return err
	}
	if err := s.push(c, e); err != nil {
		return err
	}
	return s.writeMsg(c, typ, body)
}

// clientWriters holds the client write buffers idle sessions gave back.
var clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteBufSize) }}

// clientBuf returns the client's write buffer, taking one from
// clientWriters if the session gave its own back. Called with wmu held
// (or before anyone else can write to the client).
func (s *session) clientBuf() *bufio.Writer {
	if s.cw == nil {
		s.cw = clientWriters.Get().(*bufio.Writer)
		s.cw.Reset(s.nc)
	}
	return s.cw
}

// idle gives the client's write buffer back to clientWriters when nothing
// can write to the client until its next message: no backend is attached
// (its reader writes replies) and the buffer is flushed.
func (s *session) idle() {
	s.wmu.Lock()
	s.mu.Lock()
	free := s.backend == nil && s.cw != nil && s.cw.Buffered() == 0
	s.mu.Unlock()
	if free {
		s.cw.Reset(nil)
		clientWriters.Put(s.cw)
		s.cw = nil
	}
	s.wmu.Unlock()
}

// endBatch flushes what the batch wrote and lets the backend go if it
// became free meanwhile.
func (s *session) endBatch() {
	s.mu.Lock()
	c := s.backend
	held := s.holding && c != nil
	tailFake := held && s.q.back() != nil && s.q.back().kind == eFake && !isMarker(s.q.back())
	s.mu.Unlock()
	if tailFake {
		// A reply of the proxy's own waits behind the backend's; a no-op
		// Close and a Flush make the backend answer, and its answer
		// releases ours.
		if s.push(c, entry{kind: eClose, swallow: true}) == nil {
			s.write(c, msgTickClose)
			s.write(c, msgFlush)
		}
	}
	if held {
		s.armQueryTimeout(c)
		if err := c.bw.Flush(); err != nil {
			c.nc.Close()
		}
		if testHookBatchSent != nil {
			testHookBatchSent(c)
		}
	}
	s.mu.Lock()
	s.holding = false
	var rel *serverConn
	if s.releasePending {
		s.releasePending = false
		if s.releasableLocked() {
			rel = s.detachLocked()
		}
	}
	s.mu.Unlock()
	if rel != nil {
		s.giveBack(rel)
		// The reader may have left the end of its reply unflushed,
		// counting on the backend's next message: there is none for
		// this session now.
		s.wmu.Lock()
		s.flushOwed()
		s.wmu.Unlock()
	}
	if s.wroteDirect {
		s.wroteDirect = false
		s.wmu.Lock()
		if s.clientErr == nil {
			s.clientErr = s.clientBuf().Flush()
		}
		s.wmu.Unlock()
	}
}

// flushOwed sends the client what its write buffer holds. The backend
// reader flushes a reply only once its backend's buffer is drained,
// counting on the next message to flush the rest; where that next message
// does not come to this session (the backend leaves it, or dies), this
// is called instead. Called with wmu held.
func (s *session) flushOwed() {
	if s.cw != nil && s.cw.Buffered() > 0 && s.clientErr == nil {
		s.clientErr = s.cw.Flush()
	}
}

// armQueryTimeout starts query_timeout for the replies c owes the
// session, unless it runs already: the server must answer them in time.
func (s *session) armQueryTimeout(c *serverConn) {
	d := s.srv.current().opts.QueryTimeout
	if d <= 0 {
		return
	}
	s.mu.Lock()
	if s.backend == c && s.q.len() > 0 && c.qt.Load() == 0 {
		c.qt.Store(int64(d))
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	s.mu.Unlock()
}

// disarmLocked stops query_timeout on c: nothing is owed. Called with mu
// held.
func disarmLocked(c *serverConn) {
	if c.qt.Swap(0) != 0 {
		c.nc.SetReadDeadline(time.Time{})
	}
}

// releasableLocked reports whether the backend may go back to the pool.
func (s *session) releasableLocked() bool {
	return s.backend != nil && s.q.len() == 0 && s.txStatus == 'I' && !s.copyIn && !s.unsynced && !s.openRound &&
		s.mode != PoolSession && !s.pinned
}

// detachLocked unties the backend from the session and records the
// settings it is left with.
func (s *session) detachLocked() *serverConn {
	c := s.backend
	s.backend = nil
	s.unsynced = false
	s.openRound = false
	disarmLocked(c)
	c.owner.Store(nil)
	if s.connUnknown {
		c.params = nil
		s.connUnknown = false
	} else if !maps.Equal(c.params, s.params) {
		c.params = maps.Clone(s.params)
	}
	return c
}

// giveBack returns a detached backend to its pool once cancel requests
// aimed at it have been delivered.
func (s *session) giveBack(c *serverConn) {
	c.cancels.Wait()
	c.p.Release(c)
}

// query handles a simple Query message.
func (s *session) query(body []byte) error {
	s.refreshDB()
	sql := bodyString(body)
	var stmts []parser.Statement
	if s.mode != PoolSession {
		// Classify on the message buffer (sql aliases it); copy only when
		// something is kept.
		if parser.Classify(sql) != nil {
			stmts = parser.Classify(strings.Clone(sql))
		}
		if err := s.checkStatements(stmts); err != nil {
			return err
		}
		if len(stmts) == 1 && s.deallocate(stmts[0]) {
			return nil
		}
		if len(stmts) == 1 {
			if done, err := s.endLostTx(stmts[0]); done {
				return err
			}
		}
	}
	var c *serverConn
	var err error
	if s.rt != nil {
		for _, st := range stmts {
			if (st.Kind == parser.Commit || st.Kind == parser.Rollback) && !s.multiTx() {
				s.localHint = hints{}
				s.txBegin = ""
			}
		}
		c, err = s.routeQuery(body, sql, stmts)
		if c == nil {
			return err
		}
	} else if c, err = s.attach(); err != nil {
		return err
	}
	for _, st := range stmts {
		s.beforeSend(c, st)
	}
	if err := s.push(c, entry{kind: eQuery, stmts: stmts}); err != nil {
		return err
	}
	// A simple Query destroys the unnamed statement, the client's and
	// the backend's.
	s.unnamed = nil
	c.unnamed = 0
	return s.writeMsg(c, 'Q', body)
}

// checkStatements refuses what the pool mode cannot serve.
func (s *session) checkStatements(stmts []parser.Statement) error {
	if s.mode != PoolStatement {
		return nil
	}
	for _, st := range stmts {
		if st.Kind == parser.Begin || (st.Chain && (st.Kind == parser.Commit || st.Kind == parser.Rollback)) {
			return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: "transaction blocks are not allowed in statement pooling mode",
				Hint:    "Send each statement on its own, or use pool_mode: transaction."}
		}
	}
	return nil
}

// beforeSend applies what a statement does to the proxy's bookkeeping at
// the moment it is sent: pins, and the prepared statements DISCARD ALL and
// DEALLOCATE ALL drop on the backend.
func (s *session) beforeSend(c *serverConn, st parser.Statement) {
	switch st.Kind {
	case parser.SessionState:
		s.mu.Lock()
		if !s.pinned {
			s.pinned = true
			s.log.Debug("session pinned to its backend", "reason", firstWords(st.Text))
		}
		s.mu.Unlock()
	case parser.DiscardAll:
		clear(s.stmts)
		s.unnamed = nil
		s.mu.Lock()
		c.prepared.clear()
		c.unnamed = 0
		s.pinned = false
		s.mu.Unlock()
	case parser.DeallocateAll:
		s.mu.Lock()
		c.prepared.clear()
		c.unnamed = 0
		s.mu.Unlock()
		clear(s.stmts)
	}
}

// deallocate answers DEALLOCATE of a statement the client prepared through
// the protocol, which lives on the backends under another name. It reports
// whether it answered.
func (s *session) deallocate(st parser.Statement) bool {
	s.mu.Lock()
	pinned, status := s.pinned, s.txStatus
	s.mu.Unlock()
	if status == 'E' {
		return false // let the server say the transaction is aborted
	}
	tag := "DEALLOCATE"
	switch {
	case st.Kind == parser.Deallocate && s.stmts[st.Name] != nil:
		delete(s.stmts, st.Name)
	case st.Kind == parser.DeallocateAll && !pinned:
		clear(s.stmts)
		tag = "DEALLOCATE ALL"
	default:
		return false
	}
	s.reply(entry{kind: eFake, fake: appendCommandComplete(nil, tag), readyAfter: true})
	return true
}

// parse handles a Parse message.
func (s *session) parse(body []byte) error {
	s.refreshDB()
	if s.mode == PoolSession {
		return s.forwardNew('P', body, entry{kind: eParse})
	}
	name, rest, ok1 := cstring(body)
	query, types, ok2 := cstring(rest)
	if !ok1 || !ok2 {
		return newFatal(codeProtocolViolation, "malformed Parse message")
	}
	class := parser.First(bytesString(query))
	if class.Kind != parser.Other {
		class = parser.First(string(query))
	}
	if err := s.checkStatements([]parser.Statement{class}); err != nil {
		return err
	}
	if s.vtxFailed && !txControl(class.Kind) {
		return errAbortedTx // as PostgreSQL refuses a Parse there
	}
	if len(name) == 0 {
		st := &clientStmt{query: string(query), types: bytes.Clone(types), class: class}
		tok := s.srv.nextToken()
		s.unnamed, s.unnamedTok = st, tok
		send := func(c *serverConn) error {
			s.beforeSend(c, class)
			if class.Kind == parser.DiscardAll {
				// DISCARD ALL drops the statements prepared before it,
				// not itself.
				s.unnamed, s.unnamedTok = st, tok
			}
			c.unnamed = tok
			if err := s.push(c, entry{kind: eParse}); err != nil {
				return err
			}
			return s.writeMsg(c, 'P', []byte{0}, []byte(st.query), []byte{0}, st.types)
		}
		if s.parseAhead(class) {
			return nil
		}
		if s.deferParse(send, nil) {
			return nil
		}
		c, err := s.attach()
		if err != nil {
			return err
		}
		return send(c)
	}
	if _, dup := s.stmts[string(name)]; dup {
		return &pgError{Severity: "ERROR", Code: codeDuplicatePrepared,
			Message: fmt.Sprintf("prepared statement %q already exists", name)}
	}
	st := &clientStmt{name: string(name), sn: serverStmtName(query, types), query: string(query), types: bytes.Clone(types), class: class}
	send := func(c *serverConn) error {
		s.beforeSend(c, class)
		if class.Kind == parser.DiscardAll {
			s.stmts[st.name] = st // it drops the others, not itself
		}
		s.mu.Lock()
		have := c.prepared.has(st.sn)
		s.mu.Unlock()
		if have {
			s.reply(entry{kind: eFake, fake: msgParseComplete, cname: st.name, cs: st})
			return nil
		}
		return s.prepare(c, st, false)
	}
	if s.parseAhead(class) || s.deferParse(send, st) {
		s.stmts[st.name] = st
		return nil
	}
	c, err := s.attach()
	if err != nil {
		return err
	}
	s.stmts[st.name] = st
	if err := send(c); err != nil {
		if errors.Is(err, errBackendGone) {
			delete(s.stmts, st.name) // not sent: serve tries the Parse again
		}
		return err
	}
	return nil
}

// prepare creates st on backend c under its server name. Replies to an
// injected Parse are swallowed; errors still reach the client.
func (s *session) prepare(c *serverConn, st *clientStmt, injected bool) error {
	s.mu.Lock()
	evicted := c.prepared.add(st.sn)
	s.mu.Unlock()
	if evicted != "" {
		if err := s.push(c, entry{kind: eClose, swallow: true}); err != nil {
			return err
		}
		s.writeMsg(c, 'C', []byte{'S'}, []byte(evicted), []byte{0})
	}
	e := entry{kind: eParse, swallow: injected, sn: st.sn}
	if !injected {
		e.cname, e.cs = st.name, st
	}
	if err := s.push(c, e); err != nil {
		return err
	}
	return s.writeMsg(c, 'P', []byte(st.sn), []byte{0}, []byte(st.query), []byte{0}, st.types)
}

// resolve makes sure the client statement name is prepared on c and
// returns the name to use there.
func (s *session) resolve(c *serverConn, name []byte) (string, *clientStmt, error) {
	if len(name) == 0 {
		if s.unnamed == nil {
			return "", nil, &pgError{Severity: "ERROR", Code: "26000", Message: "unnamed prepared statement does not exist"}
		}
		if c.unnamed != s.unnamedTok {
			st := s.unnamed
			if err := s.push(c, entry{kind: eParse, swallow: true}); err != nil {
				return "", nil, err
			}
			s.writeMsg(c, 'P', []byte{0}, []byte(st.query), []byte{0}, st.types)
			c.unnamed = s.unnamedTok
		}
		return "", s.unnamed, nil
	}
	st := s.stmts[string(name)]
	if st == nil {
		return "", nil, &pgError{Severity: "ERROR", Code: "26000", Message: fmt.Sprintf("prepared statement %q does not exist", name)}
	}
	s.mu.Lock()
	have := c.prepared.has(st.sn)
	s.mu.Unlock()
	if !have {
		if err := s.prepare(c, st, true); err != nil {
			return "", nil, err
		}
	}
	return st.sn, st, nil
}

// bind handles a Bind message, renaming the statement to its server name.
func (s *session) bind(body []byte) error {
	if s.mode == PoolSession {
		return s.forwardNew('B', body, entry{kind: eBind})
	}
	portal, rest, ok1 := cstring(body)
	name, params, ok2 := cstring(rest)
	if !ok1 || !ok2 {
		return newFatal(codeProtocolViolation, "malformed Bind message")
	}
	var c *serverConn
	var err error
	if s.rt != nil {
		st := s.unnamed
		if len(name) > 0 {
			st = s.stmts[string(name)]
		}
		if st == nil {
			_, _, err := s.resolve(nil, name)
			return err
		}
		s.vportal = nil
		if done, err := s.bindVirtual(st, portal); done {
			return err
		}
		if c, err = s.routeBind(st, portal, params); c == nil {
			return err
		}
	} else if c, err = s.attach(); err != nil {
		return err
	}
	sn, st, err := s.resolve(c, name)
	if err != nil {
		return err
	}
	if st.class.Kind != parser.Other {
		if s.portals == nil {
			s.portals = map[string]parser.Statement{}
		}
		s.portals[string(portal)] = st.class
	} else if len(s.portals) > 0 {
		delete(s.portals, string(portal))
	}
	if err := s.push(c, entry{kind: eBind}); err != nil {
		return err
	}
	return s.writeMsg(c, 'B', portal, []byte{0}, []byte(sn), []byte{0}, params)
}

// describe handles Describe of a statement or portal.
func (s *session) describe(body []byte) error {
	if s.vportal != nil && len(body) > 1 && body[0] == 'P' && string(body[1:len(body)-1]) == s.vportal.name {
		s.reply(entry{kind: eFake, fake: msgNoData})
		return nil
	}
	if s.mode == PoolSession || len(body) < 2 || body[0] != 'S' {
		return s.forwardNew('D', body, entry{kind: eDescribe})
	}
	name, _, ok := cstring(body[1:])
	if !ok {
		return newFatal(codeProtocolViolation, "malformed Describe message")
	}
	c, err := s.attachAny()
	if err != nil {
		return err
	}
	sn, _, err := s.resolve(c, name)
	if err != nil {
		return err
	}
	if err := s.push(c, entry{kind: eDescribe}); err != nil {
		return err
	}
	return s.writeMsg(c, 'D', []byte{'S'}, []byte(sn), []byte{0})
}

// execute handles Execute, remembering what the portal's statement does.
func (s *session) execute(body []byte) error {
	if p := s.vportal; p != nil {
		if portal, _, ok := cstring(body); ok && string(portal) == p.name {
			s.reply(entry{kind: eFake, fake: appendCommandComplete(nil, p.tag)})
			return nil
		}
	}
	e := entry{kind: eExecute}
	if s.mode != PoolSession && len(s.portals) > 0 {
		if portal, _, ok := cstring(body); ok {
			if st, ok := s.portals[string(portal)]; ok {
				e.stmts = []parser.Statement{st}
			}
		}
	}
	c, err := s.attachAny()
	if err != nil {
		return err
	}
	for _, st := range e.stmts {
		s.beforeSend(c, st)
	}
	if err := s.push(c, e); err != nil {
		return err
	}
	return s.writeMsg(c, 'E', body)
}

// closeMsg handles Close. Client statements stay prepared on the backends
// for other clients; only the client's name for them goes.
func (s *session) closeMsg(body []byte) error {
	if s.mode == PoolSession || len(body) < 2 {
		return s.forwardNew('C', body, entry{kind: eClose})
	}
	name, _, ok := cstring(body[1:])
	if !ok {
		return newFatal(codeProtocolViolation, "malformed Close message")
	}
	attached := s.attached()
	switch {
	case body[0] == 'S' && len(name) > 0:
		delete(s.stmts, string(name))
	case body[0] == 'S':
		s.unnamed = nil
	case attached:
		return s.forwardNew('C', body, entry{kind: eClose})
	}
	// Portals do not outlive the transaction, so without a backend there is
	// nothing to close.
	s.reply(entry{kind: eFake, fake: msgCloseComplete})
	return nil
}

// sync handles Sync: the end of an extended-protocol round.
func (s *session) sync(body []byte) error {
	s.vportal = nil // portals end with the implicit transaction
	s.mu.Lock()
	c, copyIn := s.backend, s.copyIn && !s.copyEndQueued
	s.mu.Unlock()
	if c == nil && len(s.deferred) == 0 {
		s.reply(entry{kind: eFake, readyAfter: true})
		return nil
	}
	c, err := s.attachAny()
	if err != nil {
		return err
	}
	if !copyIn {
		// The server ignores Sync during COPY FROM STDIN; so does the queue.
		if err := s.push(c, entry{kind: eSync}); err != nil {
			return err
		}
	}
	return s.write(c, msgSync)
}

// flush handles Flush.
func (s *session) flush(body []byte) error {
	s.mu.Lock()
	c := s.backend
	s.mu.Unlock()
	if c == nil && len(s.deferred) == 0 {
		s.wroteDirect = true
		return nil
	}
	c, err := s.attachAny()
	if err != nil {
		return err
	}
	return s.writeMsg(c, 'H')
}

// copyData streams a CopyData message to the backend without holding it.
func (s *session) copyData(n int) error {
	if s.copyin != nil {
		return s.copyInData(n)
	}
	s.mu.Lock()
	c := s.backend
	if c != nil {
		s.holding = true
	}
	s.mu.Unlock()
	if c == nil || s.skipToSync {
		return skip(s.cr, headerLen+n) // after a failed COPY, PostgreSQL drops these too
	}
	if err := relay(c.bw, s.cr, headerLen+n); err != nil {
		if _, rerr := s.cr.Peek(1); rerr != nil {
			return err // the client went away
		}
		c.nc.Close()
	}
	return nil
}

// copyEnd forwards CopyDone or CopyFail. A marker in the queue records
// where it went, so the reader knows which Syncs the server ignored while
// in COPY FROM STDIN: those sent before it.
func (s *session) copyEnd(typ byte, body []byte) error {
	if s.copyin != nil {
		return s.copyInEnd(typ, body)
	}
	s.mu.Lock()
	c := s.backend
	if c != nil {
		s.holding = true
		s.q.push(entry{kind: eFake})
		s.copyEndQueued = true
	}
	s.mu.Unlock()
	if c == nil {
		return nil // no COPY in progress: PostgreSQL drops these too
	}
	return s.writeMsg(c, typ, body)
}

// close ends the session: the backend goes back clean, or is closed.
func (s *session) close() {
	s.mu.Lock()
	c := s.backend
	s.mu.Unlock()
	if c != nil {
		s.returnBackend(c)
	}
	s.mu.Lock()
	if s.waitCancel != nil {
		s.waitCancel(nil)
	}
	s.mu.Unlock()
	if ci := s.copyin; ci != nil {
		// The client left in the middle of a split COPY.
		ci.abort(&pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: "client connection lost during COPY"})
		ci.finish()
	}
	s.dropParked()
}

// returnBackend cleans a backend the client leaves behind: an open
// transaction is rolled back and, in session mode or when session state was
// pinned to it, the server_reset_query is run. A backend that is busy or
// does not come back clean is closed.
func (s *session) returnBackend(c *serverConn) {
	s.mu.Lock()
	// Work sent without a Sync is an open implicit transaction: a Sync
	// would commit it, so such a backend is closed, never reused.
	clean := s.backend == c && s.q.len() == 0 && !s.copyIn && !s.unsynced
	busy := s.backend == c && s.q.len() > 0
	if busy {
		c.cancels.Add(1) // under mu while attached, as in Server.cancel
	}
	status, needReset := s.txStatus, s.mode == PoolSession || s.pinned
	s.mu.Unlock()
	if busy {
		// Stop what the departed client left running before the backend
		// is closed, rather than let it run on unseen.
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.opts.ServerConnectTimeout)
		c.cancel(ctx)
		c.cancels.Done()
		cancel()
	}
	var queries []string
	if status != 'I' {
		queries = append(queries, "ROLLBACK")
	}
	if needReset && s.srv.current().opts.ServerResetQuery != "" {
		queries = append(queries, s.srv.current().opts.ServerResetQuery)
	}
	if clean && len(queries) > 0 {
		s.mu.Lock()
		s.holding = true
		s.mu.Unlock()
		done := make(chan struct{})
		for i, q := range queries {
			var d chan struct{}
			if i == len(queries)-1 {
				d = done
			}
			s.internalQuery(c, q, true, d)
		}
		if err := c.bw.Flush(); err != nil {
			clean = false
		} else {
			t := time.NewTimer(s.srv.opts.ServerConnectTimeout)
			select {
			case <-done:
			case <-t.C:
				clean = false
			}
			t.Stop()
		}
	}
	s.mu.Lock()
	if s.backend != c {
		s.mu.Unlock()
		return // lost meanwhile; already discarded
	}
	clean = clean && s.q.len() == 0 && s.txStatus == 'I'
	if clean && needReset {
		if strings.EqualFold(strings.TrimSpace(s.srv.current().opts.ServerResetQuery), "DISCARD ALL") {
			s.connUnknown = false
			s.params = map[string]string{}
			c.prepared.clear()
			c.unnamed = 0
		} else {
			s.connUnknown = true
		}
	}
	s.detachLocked()
	s.holding = false
	s.mu.Unlock()
	if clean {
		s.giveBack(c)
	} else {
		c.cancels.Wait()
		c.p.Discard(c)
	}
}

// fromServer handles one backend message, whose header is peeked in c.br.
// It runs on c's reader goroutine.
func (s *session) fromServer(c *serverConn, typ byte, n int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()

	var body []byte
	var err error
	if typ == 'Z' || typ == 'E' || typ == 'C' || typ == 'G' {
		// Small messages the proxy reads; the rest it streams.
		if n > 1<<20 {
			return fmt.Errorf("server message %q too long", typ)
		}
		h, err := c.br.Peek(headerLen + n)
		if err != nil {
			return err
		}
		body = h[headerLen:]
	}

	s.mu.Lock()
	if s.backend != c {
		s.mu.Unlock()
		s.flushOwed()
		return skip(c.br, headerLen+n)
	}
	s.fakes = s.takeFakes(s.fakes[:0])
	e := s.q.front()
	forward, release := true, false
	switch typ {
	case 'S', 'N', 'A':
		// Asynchronous: ParameterStatus, notices and notifications.
		forward = e == nil || !e.swallow
	case 'E':
		if sev := errorSeverity(body); (sev == "FATAL" || sev == "PANIC") && s.mode != PoolSession && !s.pinned {
			// The server is closing this connection. The client keeps its
			// connection to pgshard, so it gets an ERROR when the loss is
			// noticed.
			s.deathErr = parseServerError(body)
			s.mu.Unlock()
			s.flushOwed()
			return skip(c.br, headerLen+n)
		}
		s.copyIn = false
		if e == nil {
			break
		}
		forward = !e.swallow || (!e.quiet && e.kind != eQuery)
		if e.kind == eQuery && e.swallow && !e.quiet {
			typ = 'N' // a failed SET replay: warn the client
			forward = true
		}
		if !s.inBlock {
			s.pending = s.pending[:0] // the implicit transaction is rolled back
		}
		switch e.kind {
		case eSync, eQuery, eFunction:
		default:
			// The server skips to the next Sync; so does the queue.
			s.failedRound, s.roundErr = true, true
			s.dropFailed(c)
		}
	case 'Z':
		// Entries still ahead of the Sync were skipped by the server after
		// an error (or were no-op Closes sent while it was skipping).
		s.dropFailed(c)
		s.failedRound = false
		e = s.q.front()
		if e == nil || (e.kind != eSync && e.kind != eQuery && e.kind != eFunction) {
			s.mu.Unlock()
			return fmt.Errorf("unexpected ReadyForQuery from server")
		}
		forward = !e.swallow
		if forward {
			s.roundErr = false // the client's round is over
			s.roundParsed = s.roundParsed[:0]
		}
		status := byte('I')
		if len(body) > 0 {
			status = body[0]
			if s.vtxStatus != 0 && status == 'I' {
				body[0] = s.vtxStatus // the client's own transaction, not bound yet
			}
		}
		s.txStatus = status
		s.inBlock = status != 'I'
		if forward {
			s.roundDone(c, status)
		}
		if status == 'I' {
			s.commitPending()
			if s.writePending {
				s.writePending = false
				if s.lastCommit == nil {
					s.lastCommit = map[int]time.Time{}
				}
				s.lastCommit[c.p.shardIdx] = time.Now()
			}
		}
		s.q.pop()
		s.popMarkers()
		if s.releasableLocked() {
			if s.holding {
				s.releasePending = true
			} else {
				release = true
			}
		}
	case '1', '2', '3', 'n', 's', 'I':
		if e == nil {
			s.mu.Unlock()
			return fmt.Errorf("unexpected message %q from server", typ)
		}
		forward = !e.swallow
		if typ == 'I' && e.kind == eQuery {
			break
		}
		if typ == '1' && e.cs != nil {
			s.roundParsed = append(s.roundParsed, unparsed{name: e.cname, cs: e.cs})
		}
		s.q.pop()
	case 'T':
		if e == nil {
			s.mu.Unlock()
			return fmt.Errorf("unexpected RowDescription from server")
		}
		forward = !e.swallow
		if e.kind == eDescribe {
			s.q.pop()
		}
	case 'C':
		if e == nil {
			s.mu.Unlock()
			return fmt.Errorf("unexpected CommandComplete from server")
		}
		s.copyIn = false
		forward = !e.swallow
		if e.next < len(e.stmts) {
			s.confirm(e.stmts[e.next], string(bodyString(body)))
			e.next++
		}
		if e.kind == eExecute {
			s.q.pop()
		}
	case 'G':
		s.copyIn = true
		s.copyEndQueued = s.dropSyncsInCopy()
		forward = e == nil || !e.swallow
	default:
		// DataRow, CopyData/Done/OutResponse, ParameterDescription,
		// FunctionCallResponse: part of the current reply.
		forward = e == nil || !e.swallow
	}
	if s.q.len() == 0 {
		disarmLocked(c)
		if s.drained != nil {
			s.notifyDrained()
		}
	}
	if typ == 'E' && forward {
		s.noteServerError(body)
	}
	s.mu.Unlock()

	if len(s.fakes) > 0 && s.clientErr == nil {
		_, s.clientErr = s.clientBuf().Write(s.fakes)
	}
	if forward && s.clientErr == nil {
		if body != nil {
			h, _ := c.br.Peek(headerLen + n)
			h[0] = typ
			_, s.clientErr = s.clientBuf().Write(h)
			c.br.Discard(headerLen + n)
		} else {
			err = relay(s.clientBuf(), c.br, headerLen+n)
			if err != nil && c.br.Buffered() == 0 {
				if _, perr := c.br.Peek(1); perr != nil {
					return err // the backend failed mid-message
				}
			}
			if err != nil {
				s.clientErr = err
			}
		}
	} else if err := skip(c.br, headerLen+n); err != nil {
		return err
	}
	s.fakes = s.fakes[:0]
	if s.q.fakes.Load() > 0 {
		s.mu.Lock()
		s.fakes = s.takeFakes(s.fakes)
		s.mu.Unlock()
	}
	if len(s.fakes) > 0 && s.clientErr == nil {
		_, s.clientErr = s.clientBuf().Write(s.fakes)
	}
	if release {
		// Back to the pool before the client sees ReadyForQuery, so its
		// next statement finds the backend free. Holding wmu keeps any
		// reply for this client from overtaking the one just written.
		s.mu.Lock()
		release = s.backend == c && s.releasableLocked() && !s.holding
		if release {
			s.detachLocked()
		} else if s.backend == c {
			s.releasePending = true
		}
		s.mu.Unlock()
		if release {
			s.giveBack(c)
			if s.srv.draining.Load() {
				// Between transactions during a graceful shutdown: wake the
				// session before the client can send more, so it leaves.
				s.nc.SetReadDeadline(time.Now())
			}
		}
	}
	if (c.br.Buffered() == 0 || release) && s.clientErr == nil {
		s.clientErr = s.clientBuf().Flush()
	} else if testHookUnflushed != nil {
		testHookUnflushed(c, typ)
	}
	if s.clientErr != nil {
		s.clientBuf().Reset(io.Discard)
	}
	return nil
}

// takeFakes pops the proxy's own replies at the head of the queue into buf.
func (s *session) takeFakes(buf []byte) []byte {
	if s.q.fakes.Load() == 0 {
		return buf
	}
	for e := s.q.front(); e != nil && e.kind == eFake; e = s.q.front() {
		if s.failedRound {
			// Queued after a message the server failed: PostgreSQL
			// would not have answered it.
			s.dropEntry(nil, e)
			continue
		}
		buf = append(buf, e.fake...)
		if e.readyAfter {
			buf = appendReadyForQuery(buf, s.clientStatusLocked())
		}
		if e.cs != nil {
			s.roundParsed = append(s.roundParsed, unparsed{name: e.cname, cs: e.cs})
		}
		s.q.pop()
	}
	return buf
}

// dropFailed pops the failed head entry and every entry up to the next
// Sync, which the server skips after an error.
func (s *session) dropFailed(c *serverConn) {
	for e := s.q.front(); e != nil && e.kind != eSync && e.kind != eQuery && e.kind != eFunction; e = s.q.front() {
		s.dropEntry(c, e)
	}
}

// dropEntry pops the head entry e, which the server failed or skipped, and
// undoes what its Parse was assumed to create.
func (s *session) dropEntry(c *serverConn, e *entry) {
	if c != nil && e.kind == eParse && e.sn != "" {
		c.prepared.remove(e.sn)
	}
	if e.cs != nil {
		s.unparsed = append(s.unparsed, unparsed{name: e.cname, cs: e.cs})
	}
	s.q.pop()
}

// dropSyncsInCopy forgets the Syncs queued after the head entry and before
// the client's CopyDone/CopyFail: the server ignores Sync in COPY FROM
// STDIN. It reports whether the client's CopyDone/CopyFail is queued.
func (s *session) dropSyncsInCopy() (ended bool) {
	if s.q.len() == 0 {
		return false
	}
	items := s.q.items[s.q.head+1:]
	kept := items[:0]
	for i, e := range items {
		if isMarker(&e) {
			kept = append(kept, items[i:]...)
			ended = true
			break
		}
		if e.kind != eSync {
			kept = append(kept, e)
		}
	}
	s.q.items = s.q.items[:s.q.head+1+len(kept)]
	return ended
}

// isMarker reports whether e is a queue marker (an eFake that writes
// nothing), such as the one for CopyDone.
func isMarker(e *entry) bool { return e.kind == eFake && len(e.fake) == 0 && !e.readyAfter }

// popMarkers pops markers at the head: they owe the client nothing, and a
// backend whose queue holds only markers is free.
func (s *session) popMarkers() {
	for e := s.q.front(); e != nil && isMarker(e); e = s.q.front() {
		s.q.pop()
	}
}

// confirm applies a statement whose CommandComplete (with tag) arrived.
func (s *session) confirm(st parser.Statement, tag string) {
	switch st.Kind {
	case parser.Begin:
		s.inBlock = true
	case parser.Commit:
		if tag == "ROLLBACK" {
			s.pending = s.pending[:0]
		} else {
			s.commitPending()
		}
		s.inBlock = st.Chain
	case parser.Rollback:
		s.pending = s.pending[:0]
		s.inBlock = st.Chain
	case parser.Savepoint, parser.RollbackTo, parser.Release, parser.Set, parser.Reset, parser.ResetAll, parser.DiscardAll:
		if st.Kind == parser.RollbackTo {
			for i := len(s.pending) - 1; i >= 0; i-- {
				if s.pending[i].kind == parser.Savepoint && s.pending[i].name == st.Name {
					s.pending = s.pending[:i+1]
					return
				}
			}
			return
		}
		// Kept at ReadyForQuery 'I' or an explicit COMMIT; a later
		// error in the same implicit transaction drops it.
		s.pending = append(s.pending, setOp{kind: st.Kind, name: st.Name, text: st.Text})
	}
}

// commitPending makes the open transaction's SETs the session's.
func (s *session) commitPending() {
	for _, op := range s.pending {
		switch op.kind {
		case parser.Set:
			s.params[op.name] = op.text
		case parser.Reset:
			if def, ok := s.startup[op.name]; ok {
				s.params[op.name] = def
				s.connUnknown = true
			} else {
				delete(s.params, op.name)
			}
		case parser.ResetAll, parser.DiscardAll:
			s.params = maps.Clone(s.startup)
			s.connUnknown = true
		}
	}
	s.pending = s.pending[:0]
}

// backendLost tells the client its backend is gone. Replies owed for
// messages already sent become errors; an open transaction is failed, never
// replayed. In session mode, or when session state lived on that backend,
// the client's connection is closed as PostgreSQL would.
func (s *session) backendLost(c *serverConn, cause error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.backend != c {
		s.mu.Unlock()
		s.flushOwed()
		return
	}
	s.backend = nil
	c.owner.Store(nil)
	perr := s.deathErr
	s.deathErr = nil
	if d := c.qt.Load(); perr == nil && d > 0 && timedOut(cause) {
		perr = errQueryTimeout(c.p.shard, c.p.addr, time.Duration(d), cause)
	}
	if perr == nil {
		perr = &pgError{Severity: "ERROR", Code: codeConnectionFailure, err: cause,
			Message: fmt.Sprintf("lost connection to server %s (%s)", c.p.shard, c.p.addr)}
	}
	perr.Severity = "ERROR"
	s.noteError(perr)
	if perr.Detail == "" {
		perr.Detail = lostDetail
	}
	if perr.Hint == "" {
		perr.Hint = lostHint
	}
	fatal := s.mode == PoolSession || s.pinned
	status := byte('I')
	if s.inBlock && !fatal {
		status = 'E'
		s.failedTx = true
	}
	out := s.fakes[:0]
	errored, told := false, false
	for e := s.q.front(); e != nil; e = s.q.front() {
		switch {
		case e.kind == eFake:
			if !errored {
				out = append(out, e.fake...)
				if e.readyAfter {
					out = appendReadyForQuery(out, status)
				}
			}
		case e.kind == eSync:
			out = appendReadyForQuery(out, status)
			errored = false
		case e.swallow:
		case e.kind == eQuery || e.kind == eFunction:
			out = appendErrorResponse(out, perr)
			out = appendReadyForQuery(out, status)
			told = true
		case !errored:
			out = appendErrorResponse(out, perr)
			errored, told = true, true
		}
		if e.cs != nil {
			// A Parse the server never answered created nothing.
			s.unparsed = append(s.unparsed, unparsed{name: e.cname, cs: e.cs})
		}
		s.q.pop()
	}
	if told {
		// The client sees its round fail: the statements it made are
		// not there for it either.
		s.unparsed = append(s.unparsed, s.roundParsed...)
	}
	s.roundParsed = s.roundParsed[:0]
	if status == 'E' && !told {
		// Idle in its transaction: the client learns at its next
		// statement.
		e := *perr
		s.lostErr, s.lostFrom = &e, c.p
	}
	s.pending = s.pending[:0]
	s.notifyDrained()
	s.copyIn, s.releasePending, s.inBlock, s.pinned, s.unsynced = false, false, false, false, false
	s.txStatus = 'I'
	s.mu.Unlock()
	if fatal {
		perr.Severity = "FATAL"
		out = appendErrorResponse(out[:0], perr)
	}
	if errored {
		// The client is mid-round: like PostgreSQL after an error, skip
		// what it sends until Sync. Set before the client can see the
		// error and answer it.
		s.lostMidRound.Store(true)
	}
	if s.clientErr == nil {
		s.clientBuf().Write(out)
		s.clientErr = s.clientBuf().Flush()
	}
	s.log.Warn("backend connection lost", "shard", c.p.shard, "server", c.p.addr, "error", cause, "closing_client", fatal)
	if fatal {
		s.nc.Close()
	}
}

// errorSeverity returns the non-localized severity of an ErrorResponse
// body, or the localized one from servers that send only that.
func errorSeverity(body []byte) string {
	var localized string
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			break
		}
		switch f {
		case 'V':
			return string(v)
		case 'S':
			localized = string(v)
		}
		body = rest
	}
	return localized
}

func parseServerError(body []byte) *pgError {
	pe := &pgError{Severity: "ERROR", Code: codeConnectionFailure}
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			break
		}
		switch f {
		case 'C':
			pe.Code = string(v)
		case 'M':
			pe.Message = string(v)
		case 'D':
			pe.Detail = string(v)
		case 'H':
			pe.Hint = string(v)
		}
		body = rest
	}
	return pe
}

// serverStmtName names a client statement on the backends after what it
// is, so every client preparing the same text shares it.
func serverStmtName(query, types []byte) string {
	h := sha256.New()
	h.Write(query)
	h.Write([]byte{0})
	h.Write(types)
	var sum [sha256.Size]byte
	return "pgshard_" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// bodyString returns a message body without its terminating NUL.
func bodyString(b []byte) string {
	if n := len(b); n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	return bytesString(b)
}

// bytesString views b as a string without copying; it must not be kept
// past the next read of the buffer b aliases.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func firstWords(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
