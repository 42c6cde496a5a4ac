package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/pool"
	"github.com/pgshard/pgshard/proxy/auth"
)

// Defaults for Options fields left zero.
const (
	DefaultClientLoginTimeout         = 15 * time.Second
	DefaultMaxMessageSize             = 64 << 20
	DefaultServerConnectTimeout       = 5 * time.Second
	DefaultQueryWaitTimeout           = 120 * time.Second
	DefaultPreparedStatementCacheSize = 500
	DefaultPoolSize                   = 20
	DefaultMaxMergeMemory             = 256 << 20
	// parseCacheBytes bounds the memory of the statement analysis cache.
	parseCacheBytes = 32 << 20
)

// Server accepts clients and runs their sessions. Create it with NewServer
// and start it with Run. It is safe for concurrent use.
type Server struct {
	// opts are the options the server started with; what a reload may
	// change lives in the current snapshot (see reload.go).
	opts Options
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	// cache holds the analyses of statement texts, for routing.
	cache *parser.Cache
	// tpc is the state of two-phase commits.
	tpc *twoPhase
	// metrics, what /metrics serves, and where (metrics.go).
	metrics     *Metrics
	gatherer    prometheus.Gatherer
	metricsAddr net.Addr
	reach       reachability

	ln      net.Listener
	ready   chan struct{}
	clients atomic.Int64
	nextID  atomic.Uint64
	tokens  atomic.Uint64

	// pause is what PAUSE holds (pause.go).
	pause pauseState

	mu       sync.Mutex
	sessions map[cancelKey]*session
	conns    map[net.Conn]struct{}
	// userConns counts each user's logged-in clients (admitUser).
	userConns map[string]int
	wg        sync.WaitGroup

	// reloadMu serializes reloads; retired are the databases a reload
	// replaced whose sessions have not all moved on (reload.go).
	reloadMu sync.Mutex
	retired  []*database
	// stop is closed by Shutdown; graceful says how; force, closed by a
	// second, immediate Shutdown, cuts a graceful one short.
	stop, force         chan struct{}
	stopOnce, forceOnce sync.Once
	graceful            atomic.Bool
	// draining: a graceful shutdown waits for sessions to end their
	// transactions; idle sessions leave.
	draining atomic.Bool
	// monitorCtx bounds the background monitors; monitors counts them.
	monitorCtx context.Context
	monitors   sync.WaitGroup
}

type user struct {
	User
	verifier auth.Verifier
}

// database is a configured database and its backend pools.
type database struct {
	Database
	rt *routes // nil: one primary, statements unparsed
	// sessions counts the sessions using this database; retired says a
	// reload replaced it, so its pools close once none does (reload.go).
	sessions atomic.Int64
	retired  atomic.Bool
	// stopMonitors ends its replica monitor, if it has one.
	stopMonitors context.CancelFunc
	// shards hold what is known of each shard's replicas; monitored says
	// a monitor samples their WAL positions.
	shards    []*shardState
	monitored bool
	mu        sync.Mutex
	pools     map[poolKey]*backendPool
}

type poolKey struct {
	user   string // backend user
	shard  int
	server int // 0: the primary; i: replica i-1
}

// cancelKey is the BackendKeyData a client got from pgshard.
type cancelKey struct {
	pid    uint32
	secret uint32
}

// NewServer checks opts and returns a server that is not yet listening.
func NewServer(opts Options) (*Server, error) {
	opts = withDefaults(opts)
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		ready:     make(chan struct{}),
		stop:      make(chan struct{}),
		force:     make(chan struct{}),
		sessions:  map[cancelKey]*session{},
		conns:     map[net.Conn]struct{}{},
		userConns: map[string]int{},
		cache:     parser.NewCache(parseCacheBytes),
	}
	s.initMetrics()
	s.tpc = newTwoPhase(opts.InstanceID, opts.TwoPhaseTimeout)
	var errs []error
	if !instanceIDPattern.MatchString(opts.InstanceID) {
		errs = append(errs, fmt.Errorf("instance id %q: use 1 to 64 letters, digits, '_', '.' or '-'", opts.InstanceID))
	}
	snap, err := s.build(opts, nil)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	return s, nil
}

// Run listens on Options.Listen and serves clients until ctx ends. It then
// stops accepting, closes client connections and backend pools, and
// returns once every session has ended.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Prepared transactions a crash left behind are decided before any
	// client is served.
	s.ln = ln
	stopHTTP, err := s.startHTTP()
	if err != nil {
		ln.Close()
		close(s.ready)
		return err
	}
	defer stopHTTP()
	if err := s.recoverTwoPhase(ctx, true); err != nil {
		ln.Close()
		close(s.ready)
		return err
	}
	close(s.ready)
	mctx, stopMonitors := context.WithCancel(ctx)
	s.reloadMu.Lock()
	s.monitorCtx = mctx
	for _, d := range s.current().dbs {
		s.startMonitors(d)
	}
	s.reloadMu.Unlock()
	defer func() {
		stopMonitors()
		s.monitors.Wait()
	}()
	s.monitors.Add(1)
	go func() {
		defer s.monitors.Done()
		t := time.NewTicker(recoveryInterval)
		defer t.Stop()
		for {
			select {
			case <-mctx.Done():
				return
			case <-t.C:
				if err := s.recoverTwoPhase(mctx, false); err != nil && mctx.Err() == nil {
					s.log.Warn("two-phase recovery", "error", err)
				}
			}
		}
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "pool_mode", string(s.opts.PoolMode))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		ln.Close()
	}()
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.stopping() {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				// Out of file descriptors or similar: back off, keep serving.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			cancel()
			s.shutdown()
			return err
		}
		tempDelay = 0
		s.track(nc, true)
		s.wg.Add(1)
		go s.serveConn(ctx, nc, func() {
			s.track(nc, false)
			s.wg.Done()
		})
	}
	if ctx.Err() == nil && s.graceful.Load() {
		s.drain()
	}
	s.shutdown()
	return nil
}

// Addr returns the address the server listens on, once it does.
func (s *Server) Addr() net.Addr {
	<-s.ready
	return s.ln.Addr()
}

func (s *Server) track(nc net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[nc] = struct{}{}
	} else {
		delete(s.conns, nc)
	}
}

func (s *Server) shutdown() {
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	// A session waiting on the shards of a statement it runs on several
	// does not read its client: end those backend connections too.
	for _, sess := range s.sessions {
		sess.mu.Lock()
		for _, c := range sess.running {
			c.nc.Close()
		}
		sess.mu.Unlock()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	for _, d := range append(slices.Collect(maps.Values(s.current().dbs)), s.retired...) {
		d.mu.Lock()
		for _, p := range d.pools {
			p.Close()
		}
		d.mu.Unlock()
	}
}

// nextToken returns a process-wide unique, non-zero number.
func (s *Server) nextToken() uint64 { return s.tokens.Add(1) }

// pool returns the pool of connections to one server of a shard (server 0
// is the primary, i the i-th replica) for a backend identity, creating it
// on first use.
func (s *Server) pool(d *database, backendUser, password string, shard, server int) (*backendPool, error) {
	if server == 0 {
		server = d.writer(shard) // a replica role: auto promoted (health.go)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := poolKey{user: backendUser, shard: shard, server: server}
	if p := d.pools[key]; p != nil {
		return p, nil
	}
	sh := d.Shards[shard]
	url := sh.Primary
	if server > 0 {
		url = sh.Replicas[server-1]
	}
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.User = backendUser
	cfg.Password = password
	opts := s.current().opts
	cfg.ConnectTimeout = opts.ServerConnectTimeout
	cfg.RuntimeParams = map[string]string{}
	if sh.Schema != "" {
		cfg.RuntimeParams["search_path"] = quoteIdent(sh.Schema)
	}
	bp := &backendPool{shard: sh.Name, shardIdx: shard, server: server, cfg: cfg,
		addr: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), learning: make(chan struct{}, 1),
		m: s.metrics.forPool(d.Name, sh.Name, server)}
	cacheSize := opts.PreparedStatementCacheSize
	bp.Pool = pool.New(pool.Options[*serverConn]{
		Size:        d.PoolSize,
		MinIdle:     d.MinPoolSize,
		IdleTimeout: opts.ServerIdleTimeout,
		Lifetime:    opts.ServerLifetime,
		WaitTimeout: opts.QueryWaitTimeout,
		Dial: func(ctx context.Context) (*serverConn, error) {
			c, err := dialServer(ctx, bp, cfg, cacheSize)
			if ctx.Err() != nil && err != nil {
				// The caller gave up (a cancel request, shutdown): says
				// nothing of the server.
				return c, err
			}
			s.dialed(ctx, d, bp, err)
			s.reach.note(d.Name, shard, server, err)
			if err != nil {
				s.log.Warn("backend connection failed", "database", d.Name, "shard", sh.Name, "server", bp.addr, "error", err)
			}
			return c, err
		},
	})
	d.pools[key] = bp
	return bp, nil
}

// admitUser counts one more client of an authenticated user, or refuses
// it with 53300 when the user has as many as its limit allows. The
// returned function, safe to call more than once, gives the place back.
func (s *Server) admitUser(u *user) (func(), error) {
	limit, key := s.current().opts.MaxUserClientConnections, "max_user_client_connections"
	if u.MaxClientConnections > 0 {
		limit, key = u.MaxClientConnections, "users[].max_user_client_connections of this user"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.userConns[u.Name] >= limit {
		return nil, &pgError{Severity: "FATAL", Code: codeTooManyConnections,
			Message: fmt.Sprintf("too many client connections for user %q", u.Name),
			Hint:    fmt.Sprintf("pgshard accepts at most %d client connections of this user at once (%s); close some, or raise the limit.", limit, key)}
	}
	s.userConns[u.Name]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.userConns[u.Name]--; s.userConns[u.Name] <= 0 {
				delete(s.userConns, u.Name)
			}
		})
	}, nil
}

// register gives a session a cancel key no other session has.
func (s *Server) register(sess *session, pid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		var b [8]byte
		rand.Read(b[:])
		k := cancelKey{pid: pid, secret: binary.BigEndian.Uint32(b[4:])}
		if pid == 0 {
			k.pid = binary.BigEndian.Uint32(b[:4]) &^ (1 << 31)
		}
		if _, taken := s.sessions[k]; !taken && k.pid != 0 {
			sess.key = k
			s.sessions[k] = sess
			return
		}
	}
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.key] == sess {
		delete(s.sessions, sess.key)
	}
}

// cancel handles a CancelRequest: the query running for the session with
// that key, if any, is cancelled on the backend it runs on. The backend is
// not given to another client until the request has been delivered, so a
// cancel never reaches someone else's query.
func (s *Server) cancel(ctx context.Context, k cancelKey) {
	s.mu.Lock()
	sess := s.sessions[k]
	s.mu.Unlock()
	if sess == nil {
		return
	}
	sess.mu.Lock()
	var targets []*serverConn
	if c := sess.backend; c != nil && (sess.q.len() > 0 || sess.copyIn) {
		targets = append(targets, c)
	}
	// A statement running on several shards: each of them.
	targets = append(targets, sess.running...)
	for _, c := range targets {
		c.cancels.Add(1)
	}
	// A statement waiting for a backend (of a shard it has not reached
	// yet) is dropped: it fails with 57014 and is never sent.
	sess.cancelWaitLocked()
	sess.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.opts.ServerConnectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range targets {
		wg.Go(func() {
			defer c.cancels.Done()
			if err := c.cancel(ctx); err != nil {
				s.log.Warn("cancel request failed", "shard", c.p.shard, "error", err)
			}
		})
	}
	wg.Wait()
}

// writeFatal sends a final ErrorResponse on a connection being closed.
func writeFatal(w io.Writer, err error) {
	w.Write(appendErrorResponse(nil, err))
}
