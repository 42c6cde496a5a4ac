package test

// Statement routing across shards, end to end: pgshard in front of three
// shard primaries (s0, s1, s2) and a streaming replica of s0, configured
// from YAML text through config.Parse as a user would. Every test checks
// what the client sees through pgshard (rows, command tags, SQLSTATEs, the
// route NOTICEs) and, connecting to each shard directly, where the rows
// physically are.
//
// This file holds the servers, the proxy configuration and the helpers,
// and the placement tests (hash, range, list, default shard, where the key
// is found). routing_multi_test.go covers statements spanning shards,
// routing_session_test.go hints and transactions, routing_replica_test.go
// replicas, routing_clients_test.go psql and lib/pq.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/test/pgtest"
)

// --- Servers

// routingCluster is the set of servers the routing tests share: three
// shard primaries and a streaming replica of the first. Each primary has
// role app/app owning database app, which holds routingSchema.
type routingCluster struct {
	shards  []*pgtest.Server // s0, s1, s2
	replica *pgtest.Server   // hot standby of shards[0]
}

// routingShared starts the routing servers once, on first use, and
// TestMain stops them (stopRoutingServers) after every test has run.
var routingShared struct {
	once sync.Once
	c    *routingCluster
	err  error
}

// routingServers returns the shared routing servers, starting them on first
// use. Call it before checkNoGoroutineLeak: starting servers leaves
// goroutines (one per server process) that are not a leak.
func routingServers(t testing.TB) *routingCluster {
	t.Helper()
	routingShared.once.Do(func() { routingShared.c, routingShared.err = startRoutingCluster() })
	if routingShared.err != nil {
		t.Fatalf("starting the routing test servers: %v", routingShared.err)
	}
	return routingShared.c
}

// stopRoutingServers stops the routing servers if they were started.
func stopRoutingServers() error {
	if c := routingShared.c; c != nil {
		return c.stop()
	}
	return nil
}

func (rc *routingCluster) stop() error {
	var errs []error
	if rc.replica != nil {
		errs = append(errs, rc.replica.Stop())
	}
	for _, s := range rc.shards {
		errs = append(errs, s.Stop())
	}
	return errors.Join(errs...)
}

// routingSchema is created, as role app, in database app on every shard
// before pgshard starts (so that pgshard can learn the key types it is not
// told). Every shard has every table; the rules say which rows go where.
const routingSchema = `
CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (user_id bigint NOT NULL, order_id integer NOT NULL, total integer NOT NULL DEFAULT 0, PRIMARY KEY (user_id, order_id));
CREATE TABLE order_items (user_id bigint NOT NULL, order_id integer NOT NULL, item text NOT NULL);
CREATE TABLE events (created_at date NOT NULL, name text NOT NULL);
CREATE TABLE tenant_data (tenant text NOT NULL, v integer NOT NULL);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts (email text PRIMARY KEY, balance integer NOT NULL DEFAULT 0);
CREATE TABLE devices (id uuid PRIMARY KEY, label text NOT NULL);
CREATE TABLE logs (id bigint NOT NULL, msg text NOT NULL);
CREATE TABLE misc (id integer PRIMARY KEY, note text NOT NULL);
CREATE TABLE rywlog (id integer PRIMARY KEY, note text NOT NULL);
CREATE TABLE lagfill (id integer NOT NULL, pad text NOT NULL);
CREATE TABLE calls (n integer NOT NULL);
CREATE SEQUENCE misc_seq;
CREATE FUNCTION lower_email(text) RETURNS text LANGUAGE sql STABLE AS 'SELECT lower($1)';
CREATE FUNCTION record_call() RETURNS integer LANGUAGE sql AS 'INSERT INTO calls VALUES (1) RETURNING n';
`

// routingTables are the tables of routingSchema (TestRoutingServers checks
// every shard has them all).
var routingTables = []string{"users", "orders", "order_items", "events", "tenant_data", "countries",
	"accounts", "devices", "logs", "misc", "rywlog", "lagfill", "calls"}

func startRoutingCluster() (*routingCluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shards, err := pgtest.StartN(ctx, 3, pgtest.Options{Name: "routing"})
	if err != nil {
		return nil, err
	}
	rc := &routingCluster{shards: shards}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() {
			if err := s.CreateUserDB(ctx, "app", "app", "app"); err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.Exec(ctx, "app", "SET ROLE app;"+routingSchema)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, rc.stop())
	}
	rc.replica, err = shards[0].StartReplica(ctx, pgtest.Options{})
	if err != nil {
		return nil, errors.Join(err, rc.stop())
	}
	return rc, nil
}

// shardName is the configured name of shard i.
func shardName(i int) string { return "s" + strconv.Itoa(i) }

// --- Proxy

// routingOptions are what differs between the pgshard configurations of
// the routing tests; the zero value is the usual one.
type routingOptions struct {
	// readWriteSplit sends autocommit reads of s0 to its replica. Off, every
	// statement goes to a primary, so route notices are deterministic.
	readWriteSplit bool
	// maxReplicaLag is max_replica_lag; empty keeps the default (16MB).
	maxReplicaLag string
	// readYourWrites is read_your_writes; empty means lsn.
	readYourWrites string
	// noNotices turns route_notices off.
	noNotices bool
	// crossShard is cross_shard; empty leaves it out (allow).
	crossShard string
	// hints is hints; empty leaves it out (deny with cross_shard: deny,
	// else allow).
	hints string
	// logger, when set, receives pgshard's log.
	logger *slog.Logger
	// instanceID is instance_id; empty leaves it out.
	instanceID string
	// maxMergeMemory is max_merge_memory; empty leaves it out.
	maxMergeMemory string
	// metricsListen is metrics_listen; empty serves no metrics.
	metricsListen string
}

// configYAML is the configuration file of a pgshard in front of rc.
func (rc *routingCluster) configYAML(o routingOptions) string {
	if o.readYourWrites == "" {
		o.readYourWrites = "lsn"
	}
	lag := ""
	if o.maxReplicaLag != "" {
		lag = "\n    max_replica_lag: " + o.maxReplicaLag
	}
	if o.crossShard != "" {
		lag += "\n    cross_shard: " + o.crossShard
	}
	if o.hints != "" {
		lag += "\n    hints: " + o.hints
	}
	top := ""
	if o.instanceID != "" {
		top = "instance_id: " + o.instanceID + "\n"
	}
	if o.maxMergeMemory != "" {
		top += "max_merge_memory: " + o.maxMergeMemory + "\n"
	}
	url := func(s *pgtest.Server) string {
		return fmt.Sprintf("postgres://127.0.0.1:%d/app?sslmode=disable", s.Port())
	}
	// A replica that failed is banned for ban_time; the replica tests
	// want it back soon after it returns.
	return top + fmt.Sprintf(`listen: "127.0.0.1:0"
metrics_listen: %q
ban_time: 1s
pool_mode: transaction
client_login_timeout: 5s
server_connect_timeout: 3s
query_wait_timeout: 10s
users:
  - {name: app, password: app}
  - {name: trustuser, auth: trust}
databases:
  - name: app
    backend_user: app
    backend_password: app
    pool_size: 10
    shards:
      - {name: s0, primary: %q, replicas: [%q]}
      - {name: s1, primary: %q}
      - {name: s2, primary: %q}
    default_shard: s0
    tables:
      - {name: users, key: id, method: hash}
      - {pattern: "^(orders|order_items)$", key: user_id, method: hash, key_type: bigint}
      - {name: events, key: created_at, method: range, key_type: date,
         ranges: [{to: "2025-01-01", shard: s0}, {from: "2025-01-01", to: "2026-01-01", shard: s1}, {from: "2026-01-01", shard: s2}]}
      - {name: tenant_data, key: tenant, method: list, lists: {s0: [acme, globex], s1: [initech]}}
      - {name: countries, replicated: true}
      - {name: accounts, key: email, method: hash, key_type: text}
      - {name: devices, key: id, method: hash}
      - {name: logs, key: id, method: hash, key_type: bigint, shards: [s1, s2]}
    read_write_split: %v
    load_balance: round_robin
    read_your_writes: %s%s
    route_notices: %v
    read_only_functions: [lower_email]
`, o.metricsListen, url(rc.shards[0]), url(rc.replica), url(rc.shards[1]), url(rc.shards[2]),
		o.readWriteSplit, o.readYourWrites, lag, !o.noNotices)
}

// startRoutingProxy runs pgshard, configured by configYAML, until the test
// ends. Users: app/app (SCRAM) and trustuser (trust), both on database app.
func startRoutingProxy(t testing.TB, rc *routingCluster, o routingOptions) *testProxy {
	t.Helper()
	return startProxyYAML(t, rc.configYAML(o), o)
}

// startProxyYAML runs pgshard configured by text until the test ends,
// logging to o.logger (or the test's log when verbose).
func startProxyYAML(t testing.TB, text string, o routingOptions) *testProxy {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v\nconfiguration:\n%s", err, text)
	}
	logger := o.logger
	if logger == nil && testing.Verbose() {
		logger = testLogger(t)
	}
	opts, err := cfg.ProxyOptions(logger)
	if err != nil {
		t.Fatalf("ProxyOptions: %v", err)
	}
	return serveProxy(t, opts)
}

// --- Direct checks on the shards

// superConn opens a superuser connection to database db of s, closed when
// the test ends.
func superConn(t testing.TB, s *pgtest.Server, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperURL(db))
	if err != nil {
		t.Fatalf("connect to %s directly: %v", s.Name(), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// textRows reads every row of rows as text, columns joined by "|" (NULL
// as "NULL"), as psql -At prints them. rows must have been asked for text
// results.
func textRows(rows pgx.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var cols []string
		for _, v := range rows.RawValues() {
			if v == nil {
				cols = append(cols, "NULL")
			} else {
				cols = append(cols, string(v))
			}
		}
		out = append(out, strings.Join(cols, "|"))
	}
	rows.Close()
	return out, rows.Err()
}

// directRows runs a query as the superuser on database app of s, directly,
// and returns its rows as textRows does, sorted.
func directRows(t testing.TB, s *pgtest.Server, query string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperURL("app"))
	if err != nil {
		t.Fatalf("connect to %s directly: %v", s.Name(), err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, query, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		t.Fatalf("on %s directly: %s: %v", s.Name(), query, err)
	}
	out, err := textRows(rows)
	if err != nil {
		t.Fatalf("on %s directly: %s: %v", s.Name(), query, err)
	}
	slices.Sort(out)
	return out
}

// directExec runs sql (several statements allowed without args) as the
// superuser on database app of s.
func directExec(t testing.TB, s *pgtest.Server, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "app", sql, args...); err != nil {
		t.Fatalf("on %s directly: %v", s.Name(), err)
	}
}

// onShards returns directRows of query on every shard primary.
func (rc *routingCluster) onShards(t testing.TB, query string, args ...any) [][]string {
	t.Helper()
	out := make([][]string, len(rc.shards))
	for i, s := range rc.shards {
		out[i] = directRows(t, s, query, args...)
	}
	return out
}

// truncate empties tables on every shard primary (the replica follows).
func (rc *routingCluster) truncate(t testing.TB, tables ...string) {
	t.Helper()
	for _, s := range rc.shards {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.Exec(ctx, "app", "SET lock_timeout = '5s'; TRUNCATE "+strings.Join(tables, ", "))
		cancel()
		if err != nil {
			// Say who holds the tables: a backend left in a transaction
			// by a proxy is a bug to find, not a flake.
			holders := directRows(t, s, `SELECT pid || ' ' || usename || ' ' || coalesce(application_name, '') || ' ' || state || ' since ' ||
				coalesce(xact_start::text, '-') || ': ' || left(query, 200) FROM pg_stat_activity
				WHERE datname = 'app' AND pid <> pg_backend_pid() AND state <> 'idle'`)
			t.Fatalf("on %s directly: TRUNCATE %s: %v; other sessions not idle:\n%s", s.Name(), strings.Join(tables, ", "), err, strings.Join(holders, "\n"))
		}
	}
}

// placement returns, for every row of table on every shard primary, the
// value of keyExpr (as text) and the shards holding a row with it, in shard
// order (a key on two shards appears twice).
func (rc *routingCluster) placement(t testing.TB, table, keyExpr string) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for i, rows := range rc.onShards(t, fmt.Sprintf("SELECT (%s)::text FROM %s", keyExpr, table)) {
		for _, k := range rows {
			out[k] = append(out[k], i)
		}
	}
	return out
}

// checkPlacement checks that table holds, over all shards, exactly one row
// for each key of want, on shard want[key], and no other row anywhere.
func (rc *routingCluster) checkPlacement(t testing.TB, table, keyExpr string, want map[string]int) {
	t.Helper()
	got := rc.placement(t, table, keyExpr)
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g := got[k]; len(g) != 1 || g[0] != want[k] {
			bad = append(bad, fmt.Sprintf("key %q: want one row on %s, found on %s", k, shardName(want[k]), shardList(g)))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("key %q: want no row, found on %s", k, shardList(got[k])))
		}
	}
	if len(bad) > 0 {
		t.Errorf("rows of %s on the shards (checked directly):\n  %s", table, strings.Join(bad, "\n  "))
	}
}

// checkEverywhere checks that each shard primary holds exactly want (rows
// of query, sorted): how a replicated table must look.
func (rc *routingCluster) checkEverywhere(t testing.TB, want []string, query string, args ...any) {
	t.Helper()
	slices.Sort(want)
	for i, got := range rc.onShards(t, query, args...) {
		if !slices.Equal(got, want) {
			t.Errorf("%s directly: %s\n  got  %q\n  want %q", shardName(i), query, got, want)
		}
	}
}

// checkShardRows checks each shard's rows of query against want[i].
func (rc *routingCluster) checkShardRows(t testing.TB, want [][]string, query string) {
	t.Helper()
	for i, got := range rc.onShards(t, query) {
		w := slices.Clone(want[i])
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s directly: %s\n  got  %q\n  want %q", shardName(i), query, got, w)
		}
	}
}

func shardList(shards []int) string {
	if len(shards) == 0 {
		return "no shard"
	}
	names := make([]string, len(shards))
	for i, s := range shards {
		names[i] = shardName(s)
	}
	return strings.Join(names, ", ")
}

// --- Where PostgreSQL's hash partitioning puts a key

// hashRule is a hash rule of configYAML as the tests see it.
type hashRule struct {
	table, key string
	pgType     string // the key column's type
	shards     []int  // the rule's shards, in order: remainder i is on shards[i]
}

var (
	usersRule    = hashRule{"users", "id", "integer", []int{0, 1, 2}}
	ordersRule   = hashRule{"orders", "user_id", "bigint", []int{0, 1, 2}}
	accountsRule = hashRule{"accounts", "email", "text", []int{0, 1, 2}}
	devicesRule  = hashRule{"devices", "id", "uuid", []int{0, 1, 2}}
	logsRule     = hashRule{"logs", "id", "bigint", []int{1, 2}}
)

var oracleSeq atomic.Int64

// owners returns the shard holding each key under r, as PostgreSQL's own
// PARTITION BY HASH with MODULUS len(r.shards) decides it: the keys go into
// a real hash-partitioned table on shards[0] (database postgres) and each
// row's partition is read back. Keys must be in PostgreSQL's text form of
// r.pgType (as key::text prints them).
func (rc *routingCluster) owners(t testing.TB, r hashRule, keys ...string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn := superConn(t, rc.shards[0], "postgres")
	table := fmt.Sprintf("hash_oracle_%d", oracleSeq.Add(1))
	modulus := len(r.shards)
	ddl := fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (k %[2]s) PARTITION BY HASH (k);", table, r.pgType)
	for i := range modulus {
		ddl += fmt.Sprintf("CREATE TABLE %[1]s_r%[2]d PARTITION OF %[1]s FOR VALUES WITH (MODULUS %[3]d, REMAINDER %[2]d);", table, i, modulus)
	}
	if _, err := conn.Exec(ctx, ddl); err != nil {
		t.Fatalf("hash oracle: %v", err)
	}
	defer conn.Exec(ctx, "DROP TABLE "+table)
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT unnest($1::text[])::%s", table, r.pgType), keys); err != nil {
		t.Fatalf("hash oracle: %v", err)
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT k::text, tableoid::regclass::text FROM %s", table))
	if err != nil {
		t.Fatalf("hash oracle: %v", err)
	}
	got := map[string]int{}
	for rows.Next() {
		var k, part string
		if err := rows.Scan(&k, &part); err != nil {
			t.Fatal(err)
		}
		rem, _ := strconv.Atoi(part[strings.LastIndex(part, "_r")+2:])
		got[k] = r.shards[rem]
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("hash oracle: %v", err)
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			t.Fatalf("hash oracle: key %q is not in PostgreSQL's text form of %s (got back %v)", k, r.pgType, got)
		}
	}
	return got
}

// intKeys returns, for each shard of r, the first n integers from start
// up that r puts there: keys[shard][j]. Shards not in r get none.
func (rc *routingCluster) intKeys(t testing.TB, r hashRule, start, n int) [][]int {
	t.Helper()
	var cands []string
	for k := start; k < start+40*n; k++ {
		cands = append(cands, strconv.Itoa(k))
	}
	own := rc.owners(t, r, cands...)
	keys := make([][]int, len(rc.shards))
	for _, c := range cands {
		s := own[c]
		if len(keys[s]) < n {
			k, _ := strconv.Atoi(c)
			keys[s] = append(keys[s], k)
		}
	}
	for _, s := range r.shards {
		if len(keys[s]) < n {
			t.Fatalf("only %d keys of %s from %d on %s", len(keys[s]), r.table, start, shardName(s))
		}
	}
	return keys
}

// --- A client that records route notices

// routeNotice is the NOTICE pgshard sends before a statement's results:
// "routed to s0, s2 (primary)".
func routeNotice(role string, shards ...int) string {
	return "routed to " + shardList(shards) + " (" + role + ")"
}

// routedConn is a pgx connection through pgshard that keeps the route
// notices it receives.
type routedConn struct {
	*pgx.Conn
	mu      sync.Mutex
	notices []string
}

// connectRouted connects to p as app/app; the connection closes when the
// test ends.
func connectRouted(t testing.TB, p *testProxy) *routedConn {
	t.Helper()
	c := &routedConn{}
	c.Conn = pgxConnect(t, p.url("app", "app", "app"), func(cfg *pgx.ConnConfig) {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { c.addNotice(n) }
	})
	return c
}

func (c *routedConn) addNotice(n *pgconn.Notice) {
	if !strings.HasPrefix(n.Message, "routed to ") {
		return
	}
	msg := n.Message
	if n.Code != "00000" || n.Severity != "NOTICE" {
		msg += fmt.Sprintf(" [sent as %s %s; want NOTICE 00000]", n.Severity, n.Code)
	}
	c.mu.Lock()
	c.notices = append(c.notices, msg)
	c.mu.Unlock()
}

// takeRoutes returns the route notices received since the last call.
func (c *routedConn) takeRoutes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.notices
	c.notices = nil
	return n
}

// simple is the simple query protocol, as psql speaks it; the other modes
// use the extended protocol.
const simple = pgx.QueryExecModeSimpleProtocol

// keyModes are the ways a client sends a shard key: inline in the text
// (simple protocol), as a text parameter, as a binary parameter (prepared
// and cached, or described first).
var keyModes = []pgx.QueryExecMode{
	pgx.QueryExecModeSimpleProtocol,
	pgx.QueryExecModeExec,
	pgx.QueryExecModeCacheStatement,
	pgx.QueryExecModeDescribeExec,
}

// modeName says how mode sends parameters.
func modeName(m pgx.QueryExecMode) string {
	switch m {
	case pgx.QueryExecModeSimpleProtocol:
		return "simple protocol, literals"
	case pgx.QueryExecModeExec:
		return "extended, text parameters"
	case pgx.QueryExecModeCacheStatement:
		return "extended prepared, binary parameters"
	case pgx.QueryExecModeDescribeExec:
		return "extended described, binary parameters"
	}
	return m.String()
}

// result is what one statement through pgshard gave.
type result struct {
	mode   pgx.QueryExecMode
	sql    string
	rows   []string // as textRows, in the order received
	tag    string
	routes []string // route notices received while it ran
}

// run executes sql (one statement) in mode; without args the simple mode
// sends it as a Query message, the others with Parse/Bind/Execute.
func (c *routedConn) run(mode pgx.QueryExecMode, sql string, args ...any) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c.takeRoutes()
	r := result{mode: mode, sql: sql}
	rows, err := c.Query(ctx, sql, append([]any{mode, pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err == nil {
		r.rows, err = textRows(rows)
		r.tag = rows.CommandTag().String()
	}
	r.routes = c.takeRoutes()
	return r, err
}

// mustRun is run that fails the test on error.
func (c *routedConn) mustRun(t testing.TB, mode pgx.QueryExecMode, sql string, args ...any) result {
	t.Helper()
	r, err := c.run(mode, sql, args...)
	if err != nil {
		t.Fatalf("%s [%s] %v: %v (route notices: %q)", sql, modeName(mode), args, err, r.routes)
	}
	return r
}

// mustFail runs sql, which must fail with SQLSTATE code; the error and
// the route notices that came are returned.
func (c *routedConn) mustFail(t testing.TB, code string, mode pgx.QueryExecMode, sql string, args ...any) (*pgconn.PgError, result) {
	t.Helper()
	r, err := c.run(mode, sql, args...)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("%s [%s] %v: got rows %q, tag %q, error %v; want SQLSTATE %s", sql, modeName(mode), args, r.rows, r.tag, err, code)
	}
	return pe, r
}

// mustFailUnrouted is mustFail for a statement pgshard refuses itself:
// no shard ran it, so in the simple protocol no route notice may come (in
// the extended protocol a prepare round before the refusal may have been
// routed; its notices are only logged).
func (c *routedConn) mustFailUnrouted(t testing.TB, code string, mode pgx.QueryExecMode, sql string, args ...any) *pgconn.PgError {
	t.Helper()
	pe, r := c.mustFail(t, code, mode, sql, args...)
	switch {
	case len(r.routes) == 0:
	case mode == simple:
		t.Errorf("%s [%s]: refused with %s, but route notices came: %q", sql, modeName(mode), code, r.routes)
	default:
		t.Logf("%s [%s]: refused with %s after route notices %q", sql, modeName(mode), code, r.routes)
	}
	return pe
}

// wantRoute checks the route notices of r. In the simple protocol exactly
// one must come, want (none at all when want is empty). In the extended
// protocol a driver may send a statement in several rounds (pgx prepares
// and describes before it executes), each of which pgshard may route, so
// the last notice must be want and earlier ones are only logged.
func (r result) wantRoute(t testing.TB, want string) {
	t.Helper()
	switch {
	case want == "" && len(r.routes) > 0:
		t.Errorf("%s [%s]: got route notices %q, want none", r.sql, modeName(r.mode), r.routes)
	case want == "":
	case r.mode == simple && (len(r.routes) != 1 || r.routes[0] != want):
		t.Errorf("%s [%s]: got route notices %q, want exactly [%q]", r.sql, modeName(r.mode), r.routes, want)
	case len(r.routes) == 0 || r.routes[len(r.routes)-1] != want:
		t.Errorf("%s [%s]: got route notices %q, want the last to be %q", r.sql, modeName(r.mode), r.routes, want)
	case len(r.routes) > 1:
		t.Logf("%s [%s]: route notices %q (the earlier ones for the prepare rounds)", r.sql, modeName(r.mode), r.routes)
	}
}

// wantRouteMatch is wantRoute with a regular expression (for a statement
// that may go to any one of several shards).
func (r result) wantRouteMatch(t testing.TB, pattern string) string {
	t.Helper()
	re := regexp.MustCompile("^" + pattern + "$")
	if len(r.routes) == 0 || !re.MatchString(r.routes[len(r.routes)-1]) || (r.mode == simple && len(r.routes) != 1) {
		t.Errorf("%s [%s]: got route notices %q, want one matching %s", r.sql, modeName(r.mode), r.routes, re)
		return ""
	}
	return r.routes[len(r.routes)-1]
}

// wantRows checks the rows of r as a set (order ignored).
func (r result) wantRows(t testing.TB, want ...string) {
	t.Helper()
	got := slices.Clone(r.rows)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("%s [%s]: got rows %q, want %q (as a set)", r.sql, modeName(r.mode), got, w)
	}
}

// wantTag checks r's command tag.
func (r result) wantTag(t testing.TB, want string) {
	t.Helper()
	if r.tag != want {
		t.Errorf("%s [%s]: got command tag %q, want %q", r.sql, modeName(r.mode), r.tag, want)
	}
}

// checkUsable checks that c still answers a query (after an error).
func (c *routedConn) checkUsable(t testing.TB) {
	t.Helper()
	r := c.mustRun(t, simple, "SELECT 1")
	r.wantRows(t, "1")
}

// --- Tests

// TestRoutingConfigParses checks that the configuration the routing tests
// use is valid and says what they rely on; it needs no routing in the
// proxy.
func TestRoutingConfigParses(t *testing.T) {
	rc := routingServers(t)
	for _, o := range []routingOptions{{}, {readWriteSplit: true}, {readWriteSplit: true, maxReplicaLag: "64kB"}, {noNotices: true}} {
		text := rc.configYAML(o)
		cfg, err := config.Parse([]byte(text))
		if err != nil {
			t.Fatalf("%+v: %v\n%s", o, err, text)
		}
		d := cfg.Databases[0]
		if len(d.Shards) != 3 || d.DefaultShard != "s0" || len(d.Tables) != 8 || d.ReadWriteSplit != o.readWriteSplit || d.RouteNotices == o.noNotices {
			t.Errorf("%+v: parsed %+v", o, d)
		}
		if o.maxReplicaLag == "64kB" && d.MaxReplicaLag != 64*1024 {
			t.Errorf("max_replica_lag parsed as %d", d.MaxReplicaLag)
		}
		if logs := d.Tables[7]; !slices.Equal(logs.Shards, []string{"s1", "s2"}) {
			t.Errorf("logs rule shards %q", logs.Shards)
		}
	}
}

// TestRoutingServers checks the servers the routing tests share, directly:
// the schema on every shard, the replica streaming from s0, and the hash
// oracle. It needs no routing in the proxy.
func TestRoutingServers(t *testing.T) {
	rc := routingServers(t)
	ctx := context.Background()
	for i, s := range rc.shards {
		n, err := s.QueryInt(ctx, "app", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'app'")
		if err != nil || n != int64(len(routingTables)) {
			t.Errorf("%s: %d tables owned by app (%v), want %d", shardName(i), n, err, len(routingTables))
		}
	}
	if got, err := rc.replica.QueryString(ctx, "app", "SELECT pg_is_in_recovery()"); err != nil || got != "t" {
		t.Fatalf("replica in recovery: %q, %v", got, err)
	}
	rc.truncate(t, "misc")
	directExec(t, rc.shards[0], "INSERT INTO misc VALUES (1, 'streamed')")
	rc.waitReplicaCaughtUp(t)
	if got := directRows(t, rc.replica, "SELECT note FROM misc"); !slices.Equal(got, []string{"streamed"}) {
		t.Errorf("replica has %q, want [streamed]", got)
	}
	rc.truncate(t, "misc")

	// The oracle agrees with TestHashMatchesPostgres's known answers for
	// a few keys (and with itself across types of the same family).
	keys := []string{"1", "2", "3", "42", "-1", strconv.Itoa(math.MaxInt32)}
	ints := rc.owners(t, usersRule, keys...)
	bigs := rc.owners(t, ordersRule, keys...)
	for _, k := range keys {
		if ints[k] != bigs[k] {
			t.Errorf("key %s: integer on %s, bigint on %s; PostgreSQL hashes them alike", k, shardName(ints[k]), shardName(bigs[k]))
		}
	}
	for _, s := range rc.owners(t, logsRule, keys...) {
		if s == 0 {
			t.Error("a logs key placed on s0, which is not one of the rule's shards")
		}
	}
	perShard := rc.intKeys(t, usersRule, 1, 3)
	for s := range 3 {
		if len(perShard[s]) != 3 {
			t.Errorf("keys on %s: %v", shardName(s), perShard[s])
		}
	}
}

// TestRoutingHashPlacement inserts rows through pgshard into every hash
// rule's table — integer key (type learned from the catalog), bigint, text,
// uuid (learned), and a rule over two of the three shards — sending the key
// in every way a client can, then checks on each shard directly that every
// row is exactly where PostgreSQL's PARTITION BY HASH would put it, and
// reads each row back by its key.
func TestRoutingHashPlacement(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "orders", "accounts", "devices", "logs")
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)

	intKeys := []int64{-7, 0, math.MaxInt32, math.MinInt32}
	for k := int64(1); k <= 24; k++ {
		intKeys = append(intKeys, k)
	}
	bigKeys := append(slices.Clone(intKeys), 1<<40+7, -(1 << 33), math.MaxInt64, math.MinInt64)
	texts := []string{"", "a", "o'brien@example.com", "zoë@example.com", "日本@example.com", "with space", strings.Repeat("x", 300)}
	for i := range 20 {
		texts = append(texts, fmt.Sprintf("user%d@example.com", i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	uuids := [][16]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for range 24 {
		var u [16]byte
		for i := range u {
			u[i] = byte(rng.UintN(256))
		}
		uuids = append(uuids, u)
	}

	type key struct {
		text   string // PostgreSQL's text form
		text2  any    // the value sent as text (literal or text parameter)
		binary any    // the value sent as a binary parameter
	}
	type table struct {
		rule   hashRule
		insert string // $1 key, $2 label
		keys   []key
	}
	var tables []table
	{
		var ks []key
		for _, k := range intKeys {
			ks = append(ks, key{strconv.FormatInt(k, 10), k, int32(k)})
		}
		tables = append(tables, table{usersRule, "INSERT INTO users (id, name) VALUES ($1, $2)", ks})
	}
	{
		var ks []key
		for _, k := range bigKeys {
			ks = append(ks, key{strconv.FormatInt(k, 10), k, k})
		}
		tables = append(tables, table{ordersRule, "INSERT INTO orders (user_id, order_id) VALUES ($1, 1)", ks})
		tables = append(tables, table{logsRule, "INSERT INTO logs (id, msg) VALUES ($1, $2)", ks})
	}
	{
		var ks []key
		for _, s := range texts {
			ks = append(ks, key{s, s, s})
		}
		tables = append(tables, table{accountsRule, "INSERT INTO accounts (email) VALUES ($1)", ks})
	}
	{
		var ks []key
		for _, u := range uuids {
			s := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
			ks = append(ks, key{s, s, u})
		}
		tables = append(tables, table{devicesRule, "INSERT INTO devices (id, label) VALUES ($1, $2)", ks})
	}

	for _, tb := range tables {
		t.Run(tb.rule.table, func(t *testing.T) {
			var texts []string
			for _, k := range tb.keys {
				texts = append(texts, k.text)
			}
			want := rc.owners(t, tb.rule, texts...)
			for i, k := range tb.keys {
				mode := keyModes[i%len(keyModes)]
				arg := k.text2
				if mode == pgx.QueryExecModeCacheStatement || mode == pgx.QueryExecModeDescribeExec {
					arg = k.binary
				}
				args := []any{arg}
				if strings.Contains(tb.insert, "$2") {
					args = append(args, "label "+strconv.Itoa(i))
				}
				r := c.mustRun(t, mode, tb.insert, args...)
				r.wantTag(t, "INSERT 0 1")
				r.wantRoute(t, routeNotice("primary", want[k.text]))
			}
			rc.checkPlacement(t, tb.rule.table, tb.rule.key, want)

			// Read each row back by its key, in another mode than the
			// insert's.
			sel := fmt.Sprintf("SELECT %[1]s::text FROM %[2]s WHERE %[1]s = $1", tb.rule.key, tb.rule.table)
			for i, k := range tb.keys {
				mode := keyModes[(i+1)%len(keyModes)]
				arg := k.text2
				if mode == pgx.QueryExecModeCacheStatement || mode == pgx.QueryExecModeDescribeExec {
					arg = k.binary
				}
				r := c.mustRun(t, mode, sel, arg)
				r.wantRows(t, k.text)
				r.wantRoute(t, routeNotice("primary", want[k.text]))
			}
		})
	}
}

// TestRoutingRangePlacement: a date range rule puts rows by [from, to)
// bounds, rows exactly on a bound included, for dates sent as literals, as
// text and as binary parameters.
func TestRoutingRangePlacement(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "events")
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	cases := []struct {
		date  string
		shard int
	}{
		{"1970-01-01", 0},
		{"2024-12-31", 0},
		{"2025-01-01", 1}, // the lower bound of s1's range
		{"2025-07-15", 1},
		{"2025-12-31", 1},
		{"2026-01-01", 2}, // the upper bound of s1's range is s2's lower bound
		{"2099-12-31", 2},
	}
	want := map[string]int{}
	for i, tc := range cases {
		d, err := time.Parse(time.DateOnly, tc.date)
		if err != nil {
			t.Fatal(err)
		}
		want[tc.date] = tc.shard
		for j, mode := range keyModes {
			var arg any = tc.date
			if mode == pgx.QueryExecModeCacheStatement || mode == pgx.QueryExecModeDescribeExec {
				arg = d // binary date
			}
			r := c.mustRun(t, mode, "INSERT INTO events (created_at, name) VALUES ($1, $2)", arg, fmt.Sprintf("e%d.%d", i, j))
			r.wantTag(t, "INSERT 0 1")
			r.wantRoute(t, routeNotice("primary", tc.shard))
			r = c.mustRun(t, mode, "SELECT count(*) FROM events WHERE created_at = $1", arg)
			r.wantRows(t, strconv.Itoa(j+1))
			r.wantRoute(t, routeNotice("primary", tc.shard))
		}
		r := c.mustRun(t, simple, fmt.Sprintf("SELECT name FROM events WHERE created_at = '%s' AND name = 'e%d.0'", tc.date, i))
		r.wantRows(t, fmt.Sprintf("e%d.0", i))
		r.wantRoute(t, routeNotice("primary", tc.shard))
	}
	got := rc.placement(t, "events", "created_at")
	for date, shard := range want {
		if g := got[date]; len(g) != len(keyModes) || slices.ContainsFunc(g, func(s int) bool { return s != shard }) {
			t.Errorf("events on %s: found on %s, want %d rows on %s", date, shardList(g), len(keyModes), shardName(shard))
		}
	}
	if len(got) != len(want) {
		t.Errorf("events hold dates %v, want only %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// TestRoutingListPlacement: a list rule puts each listed value on its
// shard; a value in no list (and the rule has no default) is refused with
// 22023 and nothing is written anywhere, not even the other rows of the
// same statement.
func TestRoutingListPlacement(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "tenant_data")
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	tenants := map[string]int{"acme": 0, "globex": 0, "initech": 1}
	for _, mode := range keyModes {
		for _, tenant := range slices.Sorted(maps.Keys(tenants)) {
			r := c.mustRun(t, mode, "INSERT INTO tenant_data (tenant, v) VALUES ($1, $2)", tenant, 1)
			r.wantTag(t, "INSERT 0 1")
			r.wantRoute(t, routeNotice("primary", tenants[tenant]))
		}
	}
	r := c.mustRun(t, simple, "SELECT tenant, v FROM tenant_data WHERE tenant = 'initech'")
	r.wantRows(t, slices.Repeat([]string{"initech|1"}, len(keyModes))...)
	r.wantRoute(t, routeNotice("primary", 1))
	for _, mode := range keyModes {
		for _, bad := range []string{"umbrella", "ACME", ""} {
			pe := c.mustFailUnrouted(t, "22023", mode, "INSERT INTO tenant_data (tenant, v) VALUES ($1, 2)", bad)
			t.Logf("%q [%s]: %s", bad, modeName(mode), pe.Message)
			c.checkUsable(t)
		}
	}
	// One bad row refuses the whole statement.
	c.mustFailUnrouted(t, "22023", simple, "INSERT INTO tenant_data (tenant, v) VALUES ('acme', 3), ('umbrella', 3)")
	c.checkUsable(t)

	var wantRows [][]string
	for s := range 3 {
		var rows []string
		for tenant, shard := range tenants {
			if shard == s {
				rows = append(rows, slices.Repeat([]string{tenant + "|1"}, len(keyModes))...)
			}
		}
		wantRows = append(wantRows, rows)
	}
	rc.checkShardRows(t, wantRows, "SELECT tenant || '|' || v FROM tenant_data")
}

// TestRoutingKeyForms: the key is found wherever a client writes it —
// WHERE key = literal or = $1, table aliases, schema-qualified names,
// joins of co-located tables on the key, INSERT with columns in any order
// or none, UPDATE, DELETE, INSERT ... ON CONFLICT, RETURNING — and the
// statement runs on that one shard. Every shard holds decoy rows with the
// same keys, so a statement that runs anywhere else, or on several shards,
// gives the wrong answer or changes a decoy.
func TestRoutingKeyForms(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "orders", "order_items")
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 100, 6) // users and orders hash alike (both integers)

	// users: for each key, the real row on its owner and a decoy on the
	// other two shards. model[shard][id] is what each shard must hold.
	model := make([]map[int]string, 3)
	for s := range model {
		model[s] = map[int]string{}
	}
	for owner := range 3 {
		for _, k := range keys[owner] {
			for s := range 3 {
				name := fmt.Sprintf("decoy on %s", shardName(s))
				if s == owner {
					name = "right"
				}
				directExec(t, rc.shards[s], "INSERT INTO users (id, name) VALUES ($1, $2)", k, name)
				model[s][k] = name
			}
			for s := range 3 {
				item := "decoy"
				if s == owner {
					item = "right"
				}
				directExec(t, rc.shards[s], "INSERT INTO orders (user_id, order_id) VALUES ($1, 1)", k)
				directExec(t, rc.shards[s], "INSERT INTO order_items (user_id, order_id, item) VALUES ($1, 1, $2)", k, item)
			}
		}
	}
	checkModel := func(t *testing.T) {
		t.Helper()
		want := make([][]string, 3)
		for s := range 3 {
			for id, name := range model[s] {
				want[s] = append(want[s], fmt.Sprintf("%d|%s", id, name))
			}
		}
		rc.checkShardRows(t, want, "SELECT id || '|' || name FROM users")
	}

	t.Run("reads", func(t *testing.T) {
		reads := []string{
			"SELECT id, name FROM users WHERE id = %[1]s",
			"SELECT u.id, u.name FROM users u WHERE u.id = %[1]s",
			"SELECT u.id, u.name FROM users AS u WHERE u.id = %[1]s",
			"SELECT id, name FROM public.users WHERE id = %[1]s",
			"SELECT users.id, users.name FROM public.users WHERE users.id = %[1]s",
			"SELECT id, name FROM users WHERE id = %[1]s AND name IS NOT NULL",
			"SELECT id, name FROM users WHERE (id = %[1]s)",
		}
		for i, q := range reads {
			for _, mode := range keyModes {
				owner := (i + int(mode)) % 3
				k := keys[owner][0]
				// As a literal, and as a parameter.
				r := c.mustRun(t, mode, fmt.Sprintf(q, strconv.Itoa(k)))
				r.wantRows(t, fmt.Sprintf("%d|right", k))
				r.wantRoute(t, routeNotice("primary", owner))
				if mode != simple {
					r = c.mustRun(t, mode, fmt.Sprintf(q, "$1"), k)
					r.wantRows(t, fmt.Sprintf("%d|right", k))
					r.wantRoute(t, routeNotice("primary", owner))
				}
			}
		}
		// Co-located tables joined on the key.
		for _, mode := range keyModes {
			for owner := range 3 {
				k := keys[owner][1]
				q := "SELECT o.order_id, i.item FROM orders o JOIN order_items i ON o.user_id = i.user_id WHERE o.user_id = %s"
				r := c.mustRun(t, mode, fmt.Sprintf(q, strconv.Itoa(k)))
				r.wantRows(t, "1|right")
				r.wantRoute(t, routeNotice("primary", owner))
				if mode != simple {
					r = c.mustRun(t, mode, fmt.Sprintf(q, "$1"), int64(k))
					r.wantRows(t, "1|right")
					r.wantRoute(t, routeNotice("primary", owner))
				}
			}
		}
		checkModel(t)
	})

	t.Run("writes", func(t *testing.T) {
		next := 10_000
		for _, mode := range keyModes {
			// New keys for the inserts, a fresh one per statement.
			fresh := rc.intKeys(t, usersRule, next, 5)
			next += 1000
			type write struct {
				sql   string
				args  []any
				owner int
				tag   string
				rows  []string
				apply func() // what it does to the model
			}
			var ws []write
			for owner := range 3 {
				k0, k1, k2, k3, k4 := fresh[owner][0], fresh[owner][1], fresh[owner][2], fresh[owner][3], fresh[owner][4]
				existing := keys[owner][2+owner%2]
				lit := func(format string, a ...any) write {
					return write{sql: fmt.Sprintf(format, a...), owner: owner}
				}
				w := lit("INSERT INTO users (name, id) VALUES ('reversed', %d)", k0)
				w.tag, w.apply = "INSERT 0 1", func() { model[owner][k0] = "reversed" }
				ws = append(ws, w)
				w = lit("INSERT INTO users VALUES (%d, 'no columns')", k1)
				w.tag, w.apply = "INSERT 0 1", func() { model[owner][k1] = "no columns" }
				ws = append(ws, w)
				w = lit("INSERT INTO public.users AS u (id, name) VALUES (%d, 'qualified') RETURNING u.id, u.name", k2)
				w.tag, w.rows, w.apply = "INSERT 0 1", []string{fmt.Sprintf("%d|qualified", k2)}, func() { model[owner][k2] = "qualified" }
				ws = append(ws, w)
				if mode != simple {
					ws = append(ws, write{sql: "INSERT INTO users (name, id) VALUES ($1, $2)", args: []any{"param", k3}, owner: owner,
						tag: "INSERT 0 1", apply: func() { model[owner][k3] = "param" }})
					ws = append(ws, write{sql: "INSERT INTO users VALUES ($1, $2) RETURNING name", args: []any{k4, "param returning"}, owner: owner,
						tag: "INSERT 0 1", rows: []string{"param returning"}, apply: func() { model[owner][k4] = "param returning" }})
				}
				name := fmt.Sprintf("upsert %d", mode)
				w = lit("INSERT INTO users (id, name) VALUES (%d, '%s') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name", existing, name)
				w.tag, w.apply = "INSERT 0 1", func() { model[owner][existing] = name }
				ws = append(ws, w)
				name2 := fmt.Sprintf("updated %d", mode)
				w = lit("UPDATE users SET name = '%s' WHERE id = %d RETURNING id", name2, existing)
				w.tag, w.rows, w.apply = "UPDATE 1", []string{strconv.Itoa(existing)}, func() { model[owner][existing] = name2 }
				ws = append(ws, w)
				if mode != simple {
					name3 := fmt.Sprintf("updated by param %d", mode)
					ws = append(ws, write{sql: "UPDATE users u SET name = $1 WHERE u.id = $2", args: []any{name3, existing}, owner: owner,
						tag: "UPDATE 1", apply: func() { model[owner][existing] = name3 }})
				}
				w = lit("DELETE FROM users WHERE id = %d", k1)
				w.tag, w.apply = "DELETE 1", func() { delete(model[owner], k1) }
				ws = append(ws, w)
				if mode != simple {
					ws = append(ws, write{sql: "DELETE FROM users WHERE id = $1 RETURNING name", args: []any{k3}, owner: owner,
						tag: "DELETE 1", rows: []string{"param"}, apply: func() { delete(model[owner], k3) }})
				}
			}
			for _, w := range ws {
				r := c.mustRun(t, mode, w.sql, w.args...)
				r.wantTag(t, w.tag)
				r.wantRows(t, w.rows...)
				r.wantRoute(t, routeNotice("primary", w.owner))
				w.apply()
			}
			checkModel(t)
		}
	})
}

// TestRoutingDefaultShard: statements on a table no rule names go to the
// default shard (s0) only, whatever they look like — no key, aggregates,
// ORDER BY and LIMIT included — in both protocols.
func TestRoutingDefaultShard(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "misc")
	for s := 1; s < 3; s++ {
		directExec(t, rc.shards[s], "INSERT INTO misc VALUES (1000, $1)", "decoy on "+shardName(s))
	}
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)
	s0 := routeNotice("primary", 0)
	for i, mode := range keyModes {
		id := 10 * (i + 1)
		r := c.mustRun(t, mode, "INSERT INTO misc (id, note) VALUES ($1, $2), ($3, $4)", id, "a", id+1, "b")
		r.wantTag(t, "INSERT 0 2")
		r.wantRoute(t, s0)
		r = c.mustRun(t, mode, "SELECT note FROM misc WHERE id = $1", id)
		r.wantRows(t, "a")
		r.wantRoute(t, s0)
		r = c.mustRun(t, mode, "SELECT count(*) FROM misc")
		r.wantRows(t, strconv.Itoa(2*(i+1)))
		r.wantRoute(t, s0)
		r = c.mustRun(t, mode, "SELECT id FROM misc ORDER BY id DESC LIMIT 1")
		r.wantRows(t, strconv.Itoa(id+1))
		r.wantRoute(t, s0)
		r = c.mustRun(t, mode, "UPDATE misc SET note = note || '!' WHERE note <> 'x'")
		r.wantTag(t, fmt.Sprintf("UPDATE %d", 2*(i+1)))
		r.wantRoute(t, s0)
	}
	r := c.mustRun(t, simple, "DELETE FROM misc WHERE id >= 40")
	r.wantTag(t, "DELETE 2")
	r.wantRoute(t, s0)
	rc.checkShardRows(t, [][]string{
		{"10|a!!!!", "11|b!!!!", "20|a!!!", "21|b!!!", "30|a!!", "31|b!!"},
		{"1000|decoy on s1"},
		{"1000|decoy on s2"},
	}, "SELECT id || '|' || note FROM misc")
}

// TestRoutingNoticesOff: without route_notices, no route notice comes.
func TestRoutingNoticesOff(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := connectRouted(t, p)
	for _, mode := range keyModes {
		r := c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'quiet')", 1+int(mode))
		r.wantRoute(t, "")
		r = c.mustRun(t, mode, "SELECT name FROM users WHERE id = $1", 1+int(mode))
		r.wantRows(t, "quiet")
		r.wantRoute(t, "")
	}
}
