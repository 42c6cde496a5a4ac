package proxy

import (
	"context"
	"errors"
	"net"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgshard/pgshard/pool"
)

// Metrics are the proxy's Prometheus metrics. Counters and histograms
// that move with traffic are updated by cheap hooks in the session code:
// label values are resolved once per session and per backend pool, never
// per message. Gauges of connections, replica lag and the parse cache are
// read from the Server when Prometheus scrapes.
//
// Build it with NewMetrics; a Server builds its own from
// Options.Registerer. It is safe for concurrent use.
type Metrics struct {
	poolWait      *prometheus.HistogramVec // database, shard, role
	queryDuration *prometheus.HistogramVec // database, shard, role
	errors        *prometheus.CounterVec   // database, class
	banned        *prometheus.GaugeVec     // database, shard, role
	twoPhase      *prometheus.CounterVec   // outcome
	recovered     *prometheus.CounterVec   // decision
	reloads       *prometheus.CounterVec   // result

	mu  sync.Mutex
	dbs map[string]*dbMetrics

	// srv is the Server the scrape-time metrics read; nil until one
	// attaches.
	srv atomic.Pointer[Server]
}

// Route kinds, the values of the kind label: a statement (or a
// transaction) that ran on one shard, on some of them, or on all.
type routeKind uint8

const (
	kindSingle routeKind = iota
	kindMulti
	kindAll
	numKinds
)

var kindNames = [numKinds]string{"single", "multi", "all"}

// dbMetrics are a database's cumulative counters, for SHOW STATS and the
// scrape alike. Times are in nanoseconds.
type dbMetrics struct {
	name                          string
	queries, xacts                [numKinds]atomic.Int64
	received, sent                atomic.Int64
	queryTime, xactTime, waitTime atomic.Int64
}

// poolMetrics are the observers of one backend pool, resolved when the
// pool is made.
type poolMetrics struct {
	wait, query prometheus.Observer
}

// sessMetrics is a session's handle on its database's counters and its
// timing state.
type sessMetrics struct {
	db *dbMetrics
	// waiting: the session waits for a backend.
	waiting atomic.Bool
	// qStart is when the client's current round (a Query, or Executes up
	// to their Sync) was sent; xStart when its transaction began. Zero
	// when none is open. Guarded by session.mu.
	qStart, xStart time.Time
}

// Histogram buckets, in seconds: half a millisecond to half a minute.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the proxy's metrics and registers them with reg.
// Metrics already registered there (by an earlier NewMetrics with the
// same Registerer) are reused, so one Registerer can outlive a Server; the
// scrape-time metrics then keep reading the first Server. It panics on
// any other registration error, which is a programming error.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{dbs: map[string]*dbMetrics{}}
	m.poolWait = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pgshard_pool_wait_seconds",
		Help:    "Time sessions waited for a backend connection from a pool (dialling included).",
		Buckets: latencyBuckets,
	}, []string{"database", "shard", "role"}))
	m.queryDuration = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pgshard_query_duration_seconds",
		Help: "Time from sending a client's statements to a shard until it was ready for the next ones, by shard and role; " +
			"a statement on several shards is observed once on each.",
		Buckets: latencyBuckets,
	}, []string{"database", "shard", "role"}))
	m.errors = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgshard_errors_total",
		Help: "Errors sent to clients, pgshard's own and the backends', by SQLSTATE class (its first two characters).",
	}, []string{"database", "class"}))
	m.banned = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgshard_banned_servers",
		Help: "Backend servers taken out of use by health checks or by hand.",
	}, []string{"database", "shard", "role"}))
	m.twoPhase = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgshard_two_phase_commits_total",
		Help: "Two-phase commits of transactions that spanned shards, by outcome: committed, rolled_back, or unknown (the coordinator was lost while committing; recovery decides).",
	}, []string{"outcome"}))
	m.recovered = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgshard_two_phase_recovered_total",
		Help: "Prepared transactions left behind that two-phase recovery finished, by decision: commit or rollback.",
	}, []string{"decision"}))
	m.reloads = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgshard_config_reloads_total",
		Help: "Configuration reloads, by result: success or failure.",
	}, []string{"result"}))
	for _, o := range []string{"committed", "rolled_back", "unknown"} {
		m.twoPhase.WithLabelValues(o)
	}
	for _, d := range []string{"commit", "rollback"} {
		m.recovered.WithLabelValues(d)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	info := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgshard_build_info",
		Help: "Always 1; its labels say which pgshard this is and the Go version that built it.",
	}, []string{"version", "goversion"}))
	info.WithLabelValues(buildVersion(), runtime.Version()).Set(1)
	register(reg, prometheus.Collector(&scrapeCollector{m: m}))
	return m
}

// register registers c with reg, or returns the equal collector already
// registered there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// SetBanned says how many servers of a shard in a role (primary or
// replica) of database db are banned now.
func (m *Metrics) SetBanned(db, shard, role string, n int) {
	m.banned.WithLabelValues(db, shard, role).Set(float64(n))
}

// Reloaded counts a configuration reload that succeeded (ok) or failed.
func (m *Metrics) Reloaded(ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// db returns the counters of database name, creating them.
func (m *Metrics) db(name string) *dbMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dbs[name]
	if d == nil {
		d = &dbMetrics{name: name}
		m.dbs[name] = d
	}
	return d
}

// forPool resolves the observers of a backend pool of database db.
func (m *Metrics) forPool(db, shard string, server int) *poolMetrics {
	role := roleName(server)
	return &poolMetrics{
		wait:  m.poolWait.WithLabelValues(db, shard, role),
		query: m.queryDuration.WithLabelValues(db, shard, role),
	}
}

func roleName(server int) string {
	if server == 0 {
		return "primary"
	}
	return "replica"
}

// twoPhaseDone counts a two-phase commit that ended with err.
func (m *Metrics) twoPhaseDone(err error) {
	outcome := "committed"
	if err != nil {
		outcome = "rolled_back"
		if toPgError(err).Code == codeTxResolutionUnknown {
			outcome = "unknown"
		}
	}
	m.twoPhase.WithLabelValues(outcome).Inc()
}

// recoveredTx counts a prepared transaction that recovery finished.
func (m *Metrics) recoveredTx(commit bool) {
	decision := "rollback"
	if commit {
		decision = "commit"
	}
	m.recovered.WithLabelValues(decision).Inc()
}

// errorClass counts an error with SQLSTATE code sent to a client of db.
func (m *Metrics) errorClass(db *dbMetrics, code string) {
	class := "XX" // internal error: what a malformed code stands for
	if len(code) == 5 && isAlnum(code[0]) && isAlnum(code[1]) {
		class = code[:2]
	}
	m.errors.WithLabelValues(db.name, class).Inc()
}

func isAlnum(b byte) bool { return b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' }

// initMetrics builds the server's Metrics from Options.Registerer (a
// registry of its own when nil) and picks what /metrics serves: that
// Registerer when it is also a Gatherer, else the default gatherer.
func (s *Server) initMetrics() {
	reg := s.opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	} else {
		s.gatherer = prometheus.DefaultGatherer
	}
	s.metrics = NewMetrics(reg)
	s.metrics.srv.CompareAndSwap(nil, s)
	// Every server starts unbanned: the gauge exists before any ban.
	for _, d := range s.opts.Databases {
		for _, sh := range d.Shards {
			s.metrics.SetBanned(d.Name, sh.Name, "primary", 0)
			if len(sh.Replicas) > 0 {
				s.metrics.SetBanned(d.Name, sh.Name, "replica", 0)
			}
		}
	}
}

// Metrics returns the server's metrics, for the operations that set some
// of them (SetBanned, Reloaded).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Stats returns database db's counters since the server started; zero
// for a database that has had no clients.
func (s *Server) Stats(db string) DBStats {
	s.metrics.mu.Lock()
	d := s.metrics.dbs[db]
	s.metrics.mu.Unlock()
	if d == nil {
		return DBStats{}
	}
	var st DBStats
	for k := range numKinds {
		st.QueryCount += d.queries[k].Load()
		st.XactCount += d.xacts[k].Load()
	}
	st.BytesReceived, st.BytesSent = d.received.Load(), d.sent.Load()
	st.QueryTime = time.Duration(d.queryTime.Load())
	st.XactTime = time.Duration(d.xactTime.Load())
	st.WaitTime = time.Duration(d.waitTime.Load())
	return st
}

// Session hooks. Each is called from one spot of the session code.

// newSessMetrics is the metrics handle of a session of database d.
func (s *Server) newSessMetrics(d *database) *sessMetrics {
	return &sessMetrics{db: s.metrics.db(d.Name)}
}

// noteSent records a client message of kind k sent to a backend; called
// under s.mu by push for messages the client sent.
func (s *session) noteSent(k entryKind) {
	if k != eQuery && k != eExecute && k != eFunction {
		return
	}
	m := s.met
	m.db.queries[kindSingle].Add(1)
	if m.qStart.IsZero() {
		m.qStart = time.Now()
		if m.xStart.IsZero() {
			m.xStart = m.qStart
		}
	}
}

// roundDone records the ReadyForQuery (transaction status status) that
// ends a client's round on c; called under s.mu by the reader.
func (s *session) roundDone(c *serverConn, status byte) {
	m := s.met
	if m.qStart.IsZero() {
		return
	}
	now := time.Now()
	d := now.Sub(m.qStart)
	m.qStart = time.Time{}
	if pm := c.p.m; pm != nil {
		pm.query.Observe(d.Seconds())
	}
	m.db.queryTime.Add(int64(d))
	if status == 'I' && len(s.parked) == 0 && !m.xStart.IsZero() {
		m.db.xacts[kindSingle].Add(1)
		m.db.xactTime.Add(int64(now.Sub(m.xStart)))
		m.xStart = time.Time{}
	}
}

// kindOf is the route kind of a statement or transaction on n of the
// database's shards.
func (s *session) kindOf(n int) routeKind {
	switch {
	case n <= 1:
		return kindSingle
	case n >= len(s.db.Shards):
		return kindAll
	}
	return kindMulti
}

// scatterDone records a statement run on the shards of d from start,
// on the connections of *parts; inTx: it is part of the client's
// transaction, which goes on.
func (s *session) scatterDone(d decision, parts *[]*scatterPart, inTx bool, start time.Time) {
	m := s.met
	k := s.kindOf(len(d.shards))
	m.db.queries[k].Add(1)
	now := time.Now()
	el := now.Sub(start)
	m.db.queryTime.Add(int64(el))
	for _, p := range *parts {
		if p.c != nil && p.c.p.m != nil {
			p.c.p.m.query.Observe(el.Seconds())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if inTx {
		if m.xStart.IsZero() {
			m.xStart = start
		}
		return
	}
	m.db.xacts[k].Add(1)
	m.db.xactTime.Add(int64(el))
}

// multiTxDone records the end of a transaction that spanned n shards.
func (s *session) multiTxDone(n int) {
	m := s.met
	s.mu.Lock()
	defer s.mu.Unlock()
	m.db.xacts[s.kindOf(max(n, 2))].Add(1)
	if !m.xStart.IsZero() {
		m.db.xactTime.Add(int64(time.Since(m.xStart)))
		m.xStart = time.Time{}
	}
	m.qStart = time.Time{}
}

// noteError counts an error of pgshard's own sent to the client.
func (s *session) noteError(err error) {
	s.srv.metrics.errorClass(s.met.db, toPgError(err).Code)
}

// noteServerError counts an ErrorResponse (body, or the whole message)
// from a backend that is sent to the client.
func (s *session) noteServerError(msg []byte) {
	if len(msg) > headerLen && msg[0] == 'E' {
		msg = msg[headerLen:]
	}
	code := ""
	for len(msg) > 0 && msg[0] != 0 {
		f := msg[0]
		v, rest, ok := cstring(msg[1:])
		if !ok {
			break
		}
		if f == 'C' {
			code = bytesString(v)
			break
		}
		msg = rest
	}
	s.srv.metrics.errorClass(s.met.db, code)
}

// acquireFrom takes a connection from p, timing the wait.
func (s *session) acquireFrom(ctx context.Context, p *backendPool) (*serverConn, error) {
	m := s.met
	m.waiting.Store(true)
	start := time.Now()
	c, err := p.Acquire(ctx)
	d := time.Since(start)
	m.waiting.Store(false)
	if p.m != nil {
		p.m.wait.Observe(d.Seconds())
	}
	m.db.waitTime.Add(int64(d))
	return c, err
}

// countingConn counts the bytes a client connection carries, for its
// database once the client logged in (before that, for itself, handed
// over at login).
type countingConn struct {
	net.Conn
	db        atomic.Pointer[dbMetrics]
	early     atomic.Int64 // received before login
	earlySent atomic.Int64
}

// countBytes wraps a client connection.
func countBytes(nc net.Conn) *countingConn { return &countingConn{Conn: nc} }

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if d := c.db.Load(); d != nil {
		d.received.Add(int64(n))
	} else {
		c.early.Add(int64(n))
	}
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if d := c.db.Load(); d != nil {
		d.sent.Add(int64(n))
	} else {
		c.earlySent.Add(int64(n))
	}
	return n, err
}

// loggedIn starts counting for the session's database.
func (c *countingConn) loggedIn(sess *session) {
	d := sess.met.db
	c.db.Store(d)
	d.received.Add(c.early.Swap(0))
	d.sent.Add(c.earlySent.Swap(0))
}

// The scrape-time metrics.

// statser is what the server-connection gauges read of a pool.
type statser interface{ Stats() pool.Stats }

// pooled is one pool with its labels.
type pooled struct {
	db, shard, role string
	p               statser
}

type scrapeCollector struct{ m *Metrics }

var (
	descQueries = prometheus.NewDesc("pgshard_queries_total",
		"Statements clients sent (a simple Query message or an Execute), by route kind: single, multi (some shards) or all shards.",
		[]string{"database", "kind"}, nil)
	descXacts = prometheus.NewDesc("pgshard_transactions_total",
		"Transactions that ended (implicit ones included), by route kind: single, multi (some shards) or all shards.",
		[]string{"database", "kind"}, nil)
	descReceived = prometheus.NewDesc("pgshard_client_received_bytes_total",
		"Bytes received from clients.", []string{"database"}, nil)
	descSent = prometheus.NewDesc("pgshard_client_sent_bytes_total",
		"Bytes sent to clients.", []string{"database"}, nil)
	descClients = prometheus.NewDesc("pgshard_client_connections",
		"Logged-in client connections by state: active (holding a backend or running a statement), idle, or waiting (for a backend).",
		[]string{"database", "user", "state"}, nil)
	descServers = prometheus.NewDesc("pgshard_server_connections",
		"Backend connections by state: active (lent to a client) or idle (in the pool).",
		[]string{"database", "shard", "role", "state"}, nil)
	descLagBytes = prometheus.NewDesc("pgshard_replica_lag_bytes",
		"Bytes of WAL the most lagging replica of a shard has not replayed, as last sampled (read/write split with backend_user only).",
		[]string{"database", "shard"}, nil)
	descLagSeconds = prometheus.NewDesc("pgshard_replica_lag_seconds",
		"Seconds since the most lagging replica of a shard had replayed all the WAL its primary had; 0 while caught up.",
		[]string{"database", "shard"}, nil)
	descCacheHits = prometheus.NewDesc("pgshard_parse_cache_hits_total",
		"Statement analyses answered from the parse cache.", nil, nil)
	descCacheMisses = prometheus.NewDesc("pgshard_parse_cache_misses_total",
		"Statement analyses the parse cache did not hold.", nil, nil)
	descCacheEvictions = prometheus.NewDesc("pgshard_parse_cache_evictions_total",
		"Entries dropped from the parse cache to stay within its memory budget.", nil, nil)
	descCacheEntries = prometheus.NewDesc("pgshard_parse_cache_entries",
		"Statement texts held by the parse cache.", nil, nil)
	descCacheBytes = prometheus.NewDesc("pgshard_parse_cache_bytes",
		"Estimated memory held by the parse cache.", nil, nil)
)

func (sc *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueries, descXacts, descReceived, descSent, descClients, descServers,
		descLagBytes, descLagSeconds, descCacheHits, descCacheMisses, descCacheEvictions, descCacheEntries, descCacheBytes} {
		ch <- d
	}
}

func (sc *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	m := sc.m
	m.mu.Lock()
	dbs := make([]*dbMetrics, 0, len(m.dbs))
	for _, d := range m.dbs {
		dbs = append(dbs, d)
	}
	m.mu.Unlock()
	for _, d := range dbs {
		for k := range numKinds {
			ch <- prometheus.MustNewConstMetric(descQueries, prometheus.CounterValue, float64(d.queries[k].Load()), d.name, kindNames[k])
			ch <- prometheus.MustNewConstMetric(descXacts, prometheus.CounterValue, float64(d.xacts[k].Load()), d.name, kindNames[k])
		}
		ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(d.received.Load()), d.name)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(d.sent.Load()), d.name)
	}
	s := m.srv.Load()
	if s == nil {
		return
	}
	collectClients(ch, s.clientStates())
	collectPools(ch, s.pooledList())
	s.collectLag(ch)
	cs := s.cache.Stats()
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(cs.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(cs.Misses))
	ch <- prometheus.MustNewConstMetric(descCacheEvictions, prometheus.CounterValue, float64(cs.Evictions))
	ch <- prometheus.MustNewConstMetric(descCacheEntries, prometheus.GaugeValue, float64(cs.Entries))
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(cs.Bytes))
}

// clientKey labels a client connection gauge.
type clientKey struct{ db, user, state string }

// clientStates counts the logged-in sessions by database, user and state.
// Every database and user with a session gets all three states.
func (s *Server) clientStates() map[clientKey]int {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	out := map[clientKey]int{}
	for _, sess := range sessions {
		state := "idle"
		sess.mu.Lock()
		switch {
		case sess.met.waiting.Load():
			state = "waiting"
		case sess.backend != nil || len(sess.running) > 0 || len(sess.parked) > 0:
			state = "active"
		}
		sess.mu.Unlock()
		for _, st := range []string{"active", "idle", "waiting"} {
			out[clientKey{sess.db.Name, sess.user, st}] += 0
		}
		out[clientKey{sess.db.Name, sess.user, state}]++
	}
	return out
}

func collectClients(ch chan<- prometheus.Metric, states map[clientKey]int) {
	for k, n := range states {
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(n), k.db, k.user, k.state)
	}
}

// pooledList lists the server's backend pools with their labels.
func (s *Server) pooledList() []pooled {
	var out []pooled
	for _, d := range s.current().dbs {
		d.mu.Lock()
		for _, p := range d.pools {
			out = append(out, pooled{db: d.Name, shard: p.shard, role: roleName(p.server), p: p})
		}
		d.mu.Unlock()
	}
	return out
}

// collectPools sends the server-connection gauges of pools, summed over
// the pools that share labels (backend users, replicas of a shard).
func collectPools(ch chan<- prometheus.Metric, pools []pooled) {
	type key struct{ db, shard, role string }
	type counts struct{ active, idle int }
	sum := map[key]*counts{}
	var keys []key
	for _, p := range pools {
		k := key{p.db, p.shard, p.role}
		c := sum[k]
		if c == nil {
			c = &counts{}
			sum[k] = c
			keys = append(keys, k)
		}
		st := p.p.Stats()
		c.active += st.Total - st.Idle
		c.idle += st.Idle
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.db != b.db {
			return a.db < b.db
		}
		if a.shard != b.shard {
			return a.shard < b.shard
		}
		return a.role < b.role
	})
	for _, k := range keys {
		c := sum[k]
		ch <- prometheus.MustNewConstMetric(descServers, prometheus.GaugeValue, float64(c.active), k.db, k.shard, k.role, "active")
		ch <- prometheus.MustNewConstMetric(descServers, prometheus.GaugeValue, float64(c.idle), k.db, k.shard, k.role, "idle")
	}
}

// collectLag sends the replica lag of the shards whose replicas are
// monitored: the most lagging replica sampled, per shard.
func (s *Server) collectLag(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, d := range s.current().dbs {
		if !d.monitored {
			continue
		}
		for i, st := range d.shards {
			st.mu.Lock()
			var lagBytes uint64
			var lagSecs float64
			known := false
			for _, r := range st.replicas {
				if !r.known || st.primAt.IsZero() {
					continue
				}
				known = true
				if st.primary > r.replay {
					lagBytes = max(lagBytes, st.primary-r.replay)
					if !r.caughtUp.IsZero() {
						lagSecs = max(lagSecs, now.Sub(r.caughtUp).Seconds())
					}
				}
			}
			st.mu.Unlock()
			if !known {
				continue
			}
			name := d.Shards[i].Name
			ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(lagBytes), d.Name, name)
			ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, lagSecs, d.Name, name)
		}
	}
}
