package proxy

import (
	"bufio"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/pool"
)

// backendPool is the pool of connections to one backend server for one
// backend identity.
type backendPool struct {
	*pool.Pool[*serverConn]
	shard    string // shard name, for messages
	shardIdx int    // index of the shard in its database
	server   int    // 0: the primary; i: replica i-1
	addr     string // host:port, for messages
	cfg      *pgconn.Config
	// params are the ParameterStatus values of the last login, shown to
	// clients at their startup.
	params atomic.Pointer[map[string]string]
	// learning admits one client login at a time to fetch params while
	// the pool has none, so a storm of logins on a cold pool does not
	// queue for backends.
	learning chan struct{}
	// m observes the pool's waits and queries (metrics.go).
	m *poolMetrics
}

// serverConn is one logged-in backend connection. Its reader goroutine runs
// from dial to close and forwards every message to the session that owns
// the connection at the time.
//
// Ownership: while a session holds the connection (owner set), the
// session's goroutine alone writes to bw and uses the statement cache and
// params; the reader goroutine alone reads br. Both take the session's mu
// for the queue. While the connection is idle in the pool, nobody writes.
type serverConn struct {
	p      *backendPool
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	pid    uint32
	secret []byte
	owner  atomic.Pointer[session]
	closed atomic.Bool
	// sink, while set, receives the connection's messages instead of an
	// owner: the connection runs one shard's part of a scatter.
	sink atomic.Pointer[scatterSink]

	// cancels counts cancel requests in flight for the current owner; the
	// connection is not handed to anyone else until they are delivered.
	cancels sync.WaitGroup

	// State of the server session, owned by whoever holds the connection.
	prepared *stmtCache
	// params holds the SET statements in effect on this backend by setting
	// name; nil means unknown (RESET ALL before use).
	params map[string]string
	// unnamed identifies which session's unnamed statement this backend
	// holds (0: none).
	unnamed uint64
	// qt is the query_timeout set as nc's read deadline for the replies
	// the connection owes (0: none). Its owner, or the session running a
	// scatter on it, sets and clears it.
	qt atomic.Int64
}

// timedOut reports whether err ended a read at a deadline pgshard set:
// query_timeout, or the bound of its own rounds.
func timedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// errQueryTimeout is what the client gets when the server of shard (at
// addr) did not answer within query_timeout d.
func errQueryTimeout(shard, addr string, d time.Duration, cause error) *pgError {
	return &pgError{Severity: "ERROR", Code: codeQueryCanceled, err: cause,
		Message: fmt.Sprintf("canceling statement due to query_timeout: server %s (%s) did not answer within %s, and pgshard closed its connection", shard, addr, d),
		Detail:  lostDetail,
		Hint:    "Check the server and the network to it; raise query_timeout if statements legitimately run this long."}
}

const serverBufSize = 32 << 10

// dialServer logs in to a backend with pgconn and takes over its socket.
func dialServer(ctx context.Context, p *backendPool, cfg *pgconn.Config, cacheSize int) (*serverConn, error) {
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// pgconn may have started its background reader during a slow login
	// write; until it is stopped it can steal bytes from the socket.
	// SyncConn makes sure it has, and that nothing is left buffered.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	params := maps.Clone(hc.ParameterStatuses)
	p.params.Store(&params)
	c := &serverConn{
		p:        p,
		nc:       hc.Conn,
		br:       bufio.NewReaderSize(hc.Conn, serverBufSize),
		bw:       bufio.NewWriterSize(hc.Conn, serverBufSize),
		pid:      hc.PID,
		secret:   hc.SecretKey,
		prepared: newStmtCache(cacheSize),
		params:   map[string]string{},
	}
	go c.readLoop()
	return c, nil
}

// Close closes the socket; the reader goroutine then ends. Safe to call
// more than once.
func (c *serverConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	// Tell the server we are leaving; ignore errors, it may be gone.
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write([]byte{'X', 0, 0, 0, 4})
	return c.nc.Close()
}

// readLoop forwards backend messages to the owning session until the
// connection fails or is closed.
func (c *serverConn) readLoop() {
	for {
		typ, n, err := peekHeader(c.br)
		if err == nil && n < 0 {
			err = fmt.Errorf("invalid message length from server")
		}
		if err != nil {
			c.lost(err)
			return
		}
		if k := c.sink.Load(); k != nil {
			if err := k.read(c, typ, n); err != nil {
				c.lost(err)
				return
			}
			continue
		}
		s := c.owner.Load()
		if s == nil {
			// Nothing is due from an idle connection: the server is going
			// away (an ErrorResponse before it closes) or out of step.
			c.lost(fmt.Errorf("unexpected message %q from idle server connection", typ))
			return
		}
		if err := s.fromServer(c, typ, n); err != nil {
			c.lost(err)
			return
		}
	}
}

// lost handles the end of the connection: it leaves the pool and its owner,
// if any, is told.
func (c *serverConn) lost(err error) {
	c.p.Discard(c)
	// Discard closes only a connection the pool counts: one that died
	// before the pool took it in must read as closed too, for whoever
	// takes it next (attach, partPrologue, runSimple check).
	c.Close()
	if k := c.sink.Load(); k != nil {
		k.lost(c, err)
	}
	if s := c.owner.Load(); s != nil {
		s.backendLost(c, err)
	}
}

// cancel sends a CancelRequest for this backend's current query on a new
// connection, as PostgreSQL requires. It returns once the server has read it.
func (c *serverConn) cancel(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.nc.RemoteAddr().Network(), c.nc.RemoteAddr().String())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	buf := make([]byte, 0, 12+len(c.secret))
	buf = binary.BigEndian.AppendUint32(buf, uint32(12+len(c.secret)))
	buf = binary.BigEndian.AppendUint32(buf, cancelRequestCode)
	buf = binary.BigEndian.AppendUint32(buf, c.pid)
	buf = append(buf, c.secret...)
	if _, err := conn.Write(buf); err != nil {
		return err
	}
	// The server closes the connection once it has signalled the backend;
	// wait for that, so the caller knows the cancel was delivered.
	var one [1]byte
	if _, err := conn.Read(one[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// stmtCache is the set of server-side prepared statements on one backend,
// evicting the least recently used past its capacity.
type stmtCache struct {
	cap   int
	order *list.List // front: most recently used; values are names
	byKey map[string]*list.Element
}

func newStmtCache(n int) *stmtCache {
	return &stmtCache{cap: max(n, 1), order: list.New(), byKey: map[string]*list.Element{}}
}

// has reports whether name is prepared, marking it recently used.
func (sc *stmtCache) has(name string) bool {
	e, ok := sc.byKey[name]
	if ok {
		sc.order.MoveToFront(e)
	}
	return ok
}

// add records name and returns the statement evicted to make room, if any.
func (sc *stmtCache) add(name string) (evicted string) {
	if e, ok := sc.byKey[name]; ok {
		sc.order.MoveToFront(e)
		return ""
	}
	sc.byKey[name] = sc.order.PushFront(name)
	if sc.order.Len() > sc.cap {
		last := sc.order.Back()
		sc.order.Remove(last)
		evicted = last.Value.(string)
		delete(sc.byKey, evicted)
	}
	return evicted
}

func (sc *stmtCache) remove(name string) {
	if e, ok := sc.byKey[name]; ok {
		sc.order.Remove(e)
		delete(sc.byKey, name)
	}
}

func (sc *stmtCache) clear() {
	sc.order.Init()
	clear(sc.byKey)
}
