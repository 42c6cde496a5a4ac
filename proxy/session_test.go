package proxy

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestSimpleQueryRelay(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(&pgproto3.Query{String: "select a; select b"})
	want := []string{"C:OK select a", "C:OK  select b", "Z:I"}
	if got := c.until(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Two clients prepare the same text under their own names; the backend
// prepares it once, under a name of pgshard's, and each client's Bind uses it.
func TestPreparedStatementsShareServerName(t *testing.T) {
	fb := startFakeBackend(t)
	addr := fakeProxy(t, fb, PoolTransaction, 1)
	a, b := dialClient(t, addr), dialClient(t, addr)

	a.send(&pgproto3.Parse{Name: "mine", Query: "select 1"}, &pgproto3.Sync{})
	if got := a.until(); !slices.Equal(got, []string{"1", "Z:I"}) {
		t.Fatalf("client a: %v", got)
	}
	b.send(&pgproto3.Parse{Name: "yours", Query: "select 1"}, &pgproto3.Sync{})
	if got := b.until(); !slices.Equal(got, []string{"1", "Z:I"}) {
		t.Fatalf("client b: %v", got)
	}
	parses := fb.received("P pgshard_")
	if len(parses) != 1 {
		t.Fatalf("backend got %d Parses under pgshard names, want 1: %v", len(parses), fb.received("P "))
	}
	b.send(&pgproto3.Bind{PreparedStatement: "yours"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := b.until(); !slices.Equal(got, []string{"2", "C:EXEC select 1", "Z:I"}) {
		t.Fatalf("client b execute: %v", got)
	}
	// Closing a's name leaves the server statement for b.
	a.send(&pgproto3.Close{ObjectType: 'S', Name: "mine"}, &pgproto3.Sync{})
	if got := a.until(); !slices.Equal(got, []string{"3", "Z:I"}) {
		t.Fatalf("client a close: %v", got)
	}
	if n := len(fb.received("C S pgshard_")); n != 0 {
		t.Fatalf("backend closed the shared statement %d times", n)
	}
	b.send(&pgproto3.Bind{PreparedStatement: "yours"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := b.until(); !slices.Equal(got, []string{"2", "C:EXEC select 1", "Z:I"}) {
		t.Fatalf("client b after a's close: %v", got)
	}
	// a's name is gone: PostgreSQL's error, from the proxy.
	a.send(&pgproto3.Bind{PreparedStatement: "mine"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := a.until(); !slices.Equal(got, []string{"E:26000", "Z:I"}) {
		t.Fatalf("client a bind after close: %v", got)
	}
	// Preparing a name twice is an error, as in PostgreSQL.
	b.send(&pgproto3.Parse{Name: "yours", Query: "select 2"}, &pgproto3.Sync{})
	if got := b.until(); !slices.Equal(got, []string{"E:42P05", "Z:I"}) {
		t.Fatalf("duplicate parse: %v", got)
	}
}

// A statement prepared on one backend is prepared again, invisibly, on the
// next backend the client gets.
func TestPreparedStatementFollowsClient(t *testing.T) {
	fb := startFakeBackend(t)
	addr := fakeProxy(t, fb, PoolTransaction, 2)
	a, b := dialClient(t, addr), dialClient(t, addr)
	a.send(&pgproto3.Parse{Name: "s", Query: "select 7"}, &pgproto3.Sync{})
	a.until()
	// b holds that backend in a transaction, so a gets the other one.
	holdBackend(t, fb, b, fb.received("P pgshard_")[0][:2])
	a.send(&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := a.until(); !slices.Equal(got, []string{"2", "C:EXEC select 7", "Z:I"}) {
		t.Fatalf("bind on second backend: %v", got)
	}
	if n := len(fb.received("P pgshard_")); n != 2 {
		t.Fatalf("statement prepared %d times, want once on each of 2 backends: %v", n, fb.received("P "))
	}
}

// After an error the server skips to Sync; the client gets exactly one
// ReadyForQuery and the session goes on.
func TestPipelineErrorSkipsToSync(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(
		&pgproto3.Parse{Query: "select 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "syntax error"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "later", Query: "select 3"}, &pgproto3.Bind{PreparedStatement: "later"}, &pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	want := []string{"1", "2", "C:EXEC select 1", "E:42601", "Z:I"}
	if got := c.until(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// "later" was skipped by the server: it must not exist.
	c.send(&pgproto3.Bind{PreparedStatement: "later"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"E:26000", "Z:I"}) {
		t.Fatalf("statement from the failed round: %v", got)
	}
	c.send(&pgproto3.Query{String: "select 4"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 4", "Z:I"}) {
		t.Fatalf("after error: %v", got)
	}
}

// A ParseComplete the proxy answers itself is delivered on Flush, without
// waiting for Sync.
func TestCachedParseAnsweredOnFlush(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Sync{})
	c.until()
	c.send(&pgproto3.Query{String: "begin"}) // keep the backend
	c.until()
	c.send(&pgproto3.Parse{Name: "b", Query: "select 1"}, &pgproto3.Flush{})
	m, err := c.recvWithin(2 * time.Second)
	if err != nil || describe(m) != "1" {
		t.Fatalf("after Parse+Flush got %v, %v; want ParseComplete", m, err)
	}
	c.send(&pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"2", "C:EXEC select 1", "Z:T"}) {
		t.Fatalf("got %v", got)
	}
}

// The proxy's own replies keep their place among the backend's.
func TestFakeRepliesKeepOrder(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(&pgproto3.Parse{Name: "a", Query: "select 1"}, &pgproto3.Sync{})
	c.until()
	c.send(
		&pgproto3.Parse{Name: "x", Query: "select 2"},
		&pgproto3.Parse{Name: "b", Query: "select 1"}, // cached: answered by the proxy
		&pgproto3.Close{ObjectType: 'S', Name: "a"},   // answered by the proxy
		&pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	want := []string{"1", "1", "3", "2", "C:EXEC select 2", "Z:I"}
	if got := c.until(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A client that loses its backend inside a transaction gets an error, the
// transaction is failed (never replayed), and only ROLLBACK ends it.
func TestBackendLostInTransaction(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(&pgproto3.Query{String: "begin"})
	c.until()
	c.send(&pgproto3.Query{String: "die"})
	if got := c.until(); !slices.Equal(got, []string{"E:08006", "Z:E"}) {
		t.Fatalf("backend death: %v", got)
	}
	c.send(&pgproto3.Query{String: "select 1"})
	if got := c.until(); !slices.Equal(got, []string{"E:25P02", "Z:E"}) {
		t.Fatalf("statement in the failed transaction: %v", got)
	}
	c.send(&pgproto3.Query{String: "rollback"})
	if got := c.until(); !slices.Equal(got, []string{"C:ROLLBACK", "Z:I"}) {
		t.Fatalf("rollback: %v", got)
	}
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("after rollback: %v", got)
	}
	if n := len(fb.received("Q die")); n != 1 {
		t.Fatalf("the statement that met the failure was sent %d times", n)
	}
}

// Backend loss in the middle of an extended round: the client gets one
// error and, at its Sync, one ReadyForQuery.
func TestBackendLostMidPipeline(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	// The fake backend dies before flushing ParseComplete and
	// BindComplete, so the client learns only of the failure.
	c.send(&pgproto3.Parse{Query: "die"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	got := c.next(1)
	if !slices.Equal(got, []string{"E:08006"}) {
		t.Fatalf("got %v", got)
	}
	c.send(&pgproto3.Parse{Query: "select 1"}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"Z:I"}) {
		t.Fatalf("rest of the round: %v", got)
	}
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("next round: %v", got)
	}
}

// In statement mode transaction blocks are refused and nothing reaches the
// backend.
func TestStatementModeRefusesBlocks(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolStatement, 1))
	c.send(&pgproto3.Query{String: "begin"})
	if got := c.until(); !slices.Equal(got, []string{"E:0A000", "Z:I"}) {
		t.Fatalf("got %v", got)
	}
	c.send(&pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"E:0A000", "Z:I"}) {
		t.Fatalf("extended: %v", got)
	}
	if n := len(fb.received("begin")) + len(fb.received("BEGIN")); n != 0 {
		t.Fatalf("BEGIN reached the backend: %v", fb.received("egin"))
	}
}

// SETs are replayed on the backend the client gets next; ones rolled back
// are not.
func TestSetReplayedOnNextBackend(t *testing.T) {
	fb := startFakeBackend(t)
	addr := fakeProxy(t, fb, PoolTransaction, 2)
	a, b := dialClient(t, addr), dialClient(t, addr)
	a.send(&pgproto3.Query{String: "SET search_path = x"})
	a.until()
	a.send(&pgproto3.Query{String: "BEGIN; SET work_mem = '1MB'; ROLLBACK"})
	a.until()
	// b holds a's backend, so a must use the other one.
	holdBackend(t, fb, b, "1:")
	a.send(&pgproto3.Query{String: "select 1"})
	a.until()
	replays := fb.received("2:Q SET search_path")
	if len(replays) != 1 {
		t.Fatalf("search_path replayed %v on backend 2; log %v", replays, fb.received(":Q"))
	}
	if w := fb.received("2:Q SET work_mem"); len(w) != 0 {
		t.Fatalf("rolled-back SET replayed: %v", w)
	}
	// A replay is invisible to the client: its replies are swallowed.
	a.send(&pgproto3.Query{String: "select 2"})
	if got := a.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("got %v", got)
	}
}

func TestDeallocateAnsweredByProxy(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.send(&pgproto3.Parse{Name: "s1", Query: "select 1"}, &pgproto3.Sync{})
	c.until()
	c.send(&pgproto3.Query{String: "DEALLOCATE s1"})
	if got := c.until(); !slices.Equal(got, []string{"C:DEALLOCATE", "Z:I"}) {
		t.Fatalf("got %v", got)
	}
	if q := fb.received("DEALLOCATE"); len(q) != 0 {
		t.Fatalf("DEALLOCATE of a client name reached the backend: %v", q)
	}
	c.send(&pgproto3.Parse{Name: "s1", Query: "select 1"}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"1", "Z:I"}) {
		t.Fatalf("prepare after deallocate: %v", got)
	}
}

func TestUnknownMessageIsFatal(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 1))
	c.nc.Write([]byte{'x', 0, 0, 0, 4})
	m := c.recv()
	e, ok := m.(*pgproto3.ErrorResponse)
	if !ok || e.Code != codeProtocolViolation || e.Severity != "FATAL" {
		t.Fatalf("got %#v", m)
	}
	if _, err := c.recvWithin(2 * time.Second); err == nil || err == errTimeout {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestClassifiedSetTracksSavepoints(t *testing.T) {
	fb := startFakeBackend(t)
	addr := fakeProxy(t, fb, PoolTransaction, 2)
	a, b := dialClient(t, addr), dialClient(t, addr)
	a.send(&pgproto3.Query{String: "BEGIN; SET x.a = 1; SAVEPOINT s; SET x.b = 2; ROLLBACK TO SAVEPOINT s; SET x.c = 3; COMMIT"})
	a.until()
	holdBackend(t, fb, b, "1:")
	a.send(&pgproto3.Query{String: "select 1"})
	a.until()
	replayed := strings.Join(fb.received("2:Q SET"), " ")
	for _, want := range []string{"x.a = 1", "x.c = 3"} {
		if !strings.Contains(replayed, want) {
			t.Errorf("replay %q lacks %q", replayed, want)
		}
	}
	if strings.Contains(replayed, "x.b") {
		t.Errorf("SET rolled back to a savepoint was replayed: %q", replayed)
	}
}

// holdBackend makes client c open a transaction on the fake backend
// connection whose log prefix is conn ("1:"). Which idle backend a client
// gets is the pool's business (a backend freed at the end of a batch may
// not be back yet), so it retries until it lands there.
func holdBackend(t *testing.T, fb *fakeBackend, c *client, conn string) {
	t.Helper()
	for range 100 {
		c.send(&pgproto3.Query{String: "begin"})
		if got := c.until(); !slices.Equal(got, []string{"C:OK begin", "Z:T"}) {
			t.Fatalf("begin: %v", got)
		}
		begins := fb.received("Q begin")
		if strings.HasPrefix(begins[len(begins)-1], conn) {
			return
		}
		c.send(&pgproto3.Query{String: "rollback"})
		c.until()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("could not get backend %s", conn)
}

// A backend whose connection ends as the pool hands it out, before the
// session owns it, was told to nobody: the statement then waited for its
// replies forever. The session takes another backend instead, and the
// statement runs once.
func TestBackendLostAsAcquired(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 2))
	c.send(&pgproto3.Query{String: "select 1"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 1", "Z:I"}) {
		t.Fatalf("first statement: %v", got)
	}
	var once sync.Once
	testHookAcquired = func(sc *serverConn) {
		once.Do(func() {
			// The connection fails now; its reader ends with no owner.
			sc.nc.Close()
			for !sc.closed.Load() {
				time.Sleep(time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { testHookAcquired = nil })
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("statement whose backend was lost as it was acquired: %v", got)
	}
	if n := len(fb.received("Q select 2")); n != 1 {
		t.Fatalf("the statement was sent %d times, want once", n)
	}
}

// A backend lost after the session took it and before the message went
// out: the message goes to another backend, once; past maxSendAttempts
// such losses the client gets 08006, not silence.
func TestBackendLostBeforeSend(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 2))
	var kills atomic.Int32
	testHookAttached = func(sc *serverConn) {
		if kills.Add(-1) < 0 {
			return
		}
		// The connection fails, and the session is told, before the
		// message is sent.
		sc.nc.Close()
		for sc.owner.Load() != nil {
			time.Sleep(time.Millisecond)
		}
	}
	t.Cleanup(func() { testHookAttached = nil })

	kills.Store(maxSendAttempts - 1)
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("a query whose backends were lost twice before it was sent: %v", got)
	}
	kills.Store(maxSendAttempts - 1)
	c.send(&pgproto3.Parse{Name: "st", Query: "select 3"}, &pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"1", "2", "C:EXEC select 3", "Z:I"}) {
		t.Fatalf("a named Parse whose backends were lost twice before it was sent: %v", got)
	}
	kills.Store(maxSendAttempts)
	c.send(&pgproto3.Query{String: "select 4"})
	if got := c.until(); !slices.Equal(got, []string{"E:08006", "Z:I"}) {
		t.Fatalf("a query whose backends were all lost before it was sent: %v", got)
	}
	kills.Store(0)
	c.send(&pgproto3.Query{String: "select 5"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 5", "Z:I"}) {
		t.Fatalf("the next query: %v", got)
	}
	for q, want := range map[string]int{"Q select 2": 1, "select 3": 1, "Q select 4": 0, "Q select 5": 1} {
		if n := len(fb.received(q)); n != want {
			t.Errorf("%q reached the server %d times, want %d", q, n, want)
		}
	}
}

// A backend lost while the client is idle in its transaction: the
// client's next message says so (08006) even when it is one pgshard does
// not check on arrival, such as a Describe, rather than run in the failed
// transaction; ROLLBACK then ends it.
func TestBackendLostInTransactionThenDescribe(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 2))
	c.send(&pgproto3.Parse{Name: "st", Query: "select 1"}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"1", "Z:I"}) {
		t.Fatalf("Parse: %v", got)
	}
	var held atomic.Pointer[serverConn]
	testHookAttached = func(sc *serverConn) { held.Store(sc) }
	t.Cleanup(func() { testHookAttached = nil })
	c.send(&pgproto3.Query{String: "begin;select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK begin", "C:OK select 2", "Z:T"}) {
		t.Fatalf("begin: %v", got)
	}
	sc := held.Load()
	sc.nc.Close() // lost while the client is idle in the transaction
	for sc.owner.Load() != nil {
		time.Sleep(time.Millisecond)
	}
	c.send(&pgproto3.Describe{ObjectType: 'S', Name: "st"}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"E:08006", "Z:E"}) {
		t.Fatalf("Describe after the backend was lost in the transaction: %v", got)
	}
	c.send(&pgproto3.Query{String: "rollback"})
	if got := c.until(); !slices.Equal(got, []string{"C:ROLLBACK", "Z:I"}) {
		t.Fatalf("rollback: %v", got)
	}
	c.send(&pgproto3.Query{String: "select 3"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 3", "Z:I"}) {
		t.Fatalf("after rollback: %v", got)
	}
}

// In a routed database a Parse waits for the backend of the statement
// that follows it. A backend lost before the Parse could be sent on it
// leaves the Parse for the next one (it used to be forgotten: the client
// never got its ParseComplete), and a Sync that cannot be sent is still
// answered with ReadyForQuery.
func TestDeferredParseBackendLostBeforeSend(t *testing.T) {
	fb := startFakeBackend(t)
	addr := serveProxy(t, Options{
		PoolMode:         PoolTransaction,
		QueryWaitTimeout: 5 * time.Second,
		Users:            []User{{Name: "u", Auth: AuthTrust}},
		Databases: []Database{{Name: "db", BackendUser: "u", PoolSize: 2,
			Shards: []Shard{{Name: "s0", Primary: fb.url()}, {Name: "s1", Primary: fb.url()}},
			Tables: []TableRule{{Name: "users", Key: "id", Method: "hash", KeyType: "bigint"}}}},
	})
	c := dialClient(t, addr)
	var kills atomic.Int32
	testHookAttached = func(sc *serverConn) {
		if kills.Add(-1) < 0 {
			return
		}
		sc.nc.Close()
		for sc.owner.Load() != nil {
			time.Sleep(time.Millisecond)
		}
	}
	t.Cleanup(func() { testHookAttached = nil })

	kills.Store(maxSendAttempts - 1)
	c.send(&pgproto3.Parse{Query: "select 2"}, &pgproto3.Sync{})
	if got := c.until(); !slices.Equal(got, []string{"1", "Z:I"}) {
		t.Fatalf("Parse and Sync whose backends were lost twice before they were sent: %v", got)
	}
	kills.Store(maxSendAttempts)
	c.send(&pgproto3.Parse{Query: "select 3"}, &pgproto3.Sync{})
	if got := c.until(); len(got) == 0 || !slices.Equal(got[len(got)-2:], []string{"E:08006", "Z:I"}) {
		t.Fatalf("Parse and Sync whose backends were all lost before they were sent: %v", got)
	}
	kills.Store(0)
	c.send(&pgproto3.Query{String: "select 4"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 4", "Z:I"}) {
		t.Fatalf("the next query: %v", got)
	}
}

// A server shutting down right after it answered (fast shutdown): its
// FATAL arrives with the reply. The reader, with more to read, leaves the
// reply in the client's buffer for its next message to flush; when the
// session lets the backend go before that next message (the FATAL, which
// then finds no owner), the reply stayed there, unflushed, and the client
// waited for it forever.
func TestReplyThenServerShutdown(t *testing.T) {
	fb := startFakeBackend(t)
	c := dialClient(t, fakeProxy(t, fb, PoolTransaction, 2))
	var armed atomic.Bool
	sawZ := make(chan struct{}, 1)
	testHookBatchSent = func(*serverConn) {
		if armed.Load() {
			// The reply's ReadyForQuery comes while the session still
			// holds its backend.
			select {
			case <-sawZ:
			case <-time.After(5 * time.Second):
			}
		}
	}
	testHookUnflushed = func(sc *serverConn, typ byte) {
		if armed.Load() && typ == 'Z' {
			// The session lets the backend go before the reader reads
			// the FATAL behind the ReadyForQuery.
			sawZ <- struct{}{}
			for deadline := time.Now().Add(5 * time.Second); sc.owner.Load() != nil && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
	}
	t.Cleanup(func() { testHookBatchSent, testHookUnflushed = nil, nil })
	armed.Store(true)
	c.send(&pgproto3.Query{String: "select then shut down"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select then shut down", "Z:I"}) {
		t.Fatalf("reply of a server that then shut down: %v", got)
	}
	armed.Store(false)
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(); !slices.Equal(got, []string{"C:OK select 2", "Z:I"}) {
		t.Fatalf("the next query: %v", got)
	}
}
