package test

// The admin console: database "pgshard" for the users in admin_users,
// driven with psql and with pgx in the simple protocol. The values SHOW
// returns are checked against the state the test created (clients,
// backends, where keys live), and PAUSE/RESUME under load against what
// reached the backend.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/pgshard/pgshard/proxy"
)

// startAdminRoutingProxy runs pgshard in front of the routing cluster with
// user admin/adminpw in admin_users.
func startAdminRoutingProxy(t testing.TB, rc *routingCluster) *testProxy {
	t.Helper()
	text := rc.configYAML(routingOptions{noNotices: true})
	text = "admin_users: [admin]\n" + strings.Replace(text, "users:\n", "users:\n  - {name: admin, password: adminpw}\n", 1)
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, text)
	}
	var opts proxy.Options
	if opts, err = cfg.ProxyOptions(nil); err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		opts.Logger = testLogger(t)
	}
	return serveProxy(t, opts)
}

// adminConn connects to the console with pgx in the simple protocol.
func adminConn(t testing.TB, p *testProxy) *pgx.Conn {
	t.Helper()
	return pgxConnect(t, p.url("admin", "adminpw", "pgshard")+"&default_query_exec_mode=simple_protocol")
}

// show runs a console command and returns its column names and rows (NULL
// as "NULL").
func show(t testing.TB, conn *pgx.Conn, cmd string) ([]string, []map[string]string) {
	t.Helper()
	rows, err := conn.Query(context.Background(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	defer rows.Close()
	var names []string
	for _, f := range rows.FieldDescriptions() {
		names = append(names, f.Name)
	}
	var out []map[string]string
	for rows.Next() {
		m := map[string]string{}
		for i, v := range rows.RawValues() {
			m[names[i]] = "NULL"
			if v != nil {
				m[names[i]] = string(v)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if tag := rows.CommandTag().String(); tag != "SHOW" {
		t.Errorf("%s: tag %q, want SHOW", cmd, tag)
	}
	return names, out
}

func wantColumns(t testing.TB, cmd string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: no column %q in %v", cmd, w, got)
		}
	}
}

// find returns the rows whose columns have the given values.
func find(rows []map[string]string, kv ...string) []map[string]string {
	var out []map[string]string
	for _, r := range rows {
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if r[kv[i]] != kv[i+1] {
				ok = false
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func psqlAdmin(t testing.TB, p *testProxy, user, password string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"-X", "-h", p.host, "-p", p.port, "-U", user, "-d", "pgshard"}, args...)
	cmd := exec.CommandContext(ctx, clientBinary(t, "psql"), all...)
	cmd.Env = libpqEnv(password)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestAdminConsole checks every SHOW command against the state of a
// routing proxy, the protocol rules of the console, and who may use it.
func TestAdminConsole(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startAdminRoutingProxy(t, rc)
	ctx := context.Background()
	admin := adminConn(t, p)

	// Two clients of app; a key on s1.
	k1 := rc.intKeys(t, usersRule, 1000, 1)[1][0]
	c1 := pgxConnect(t, p.url("app", "app", "app"))
	c2 := pgxConnect(t, p.url("app", "app", "app"))
	q := fmt.Sprintf("SELECT count(*) FROM users WHERE id = %d", k1)
	if _, err := c1.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	// c2 keeps a backend of s1 in a transaction; c1 then needs a second.
	tx, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT pg_backend_pid(), count(*) FROM users WHERE id = %d", k1)).Scan(&pid, new(int64)); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}

	t.Run("pools", func(t *testing.T) {
		names, rows := show(t, admin, "SHOW POOLS")
		wantColumns(t, "SHOW POOLS", names, "database", "user", "shard", "role", "cl_active", "cl_waiting", "sv_active",
			"sv_idle", "sv_used", "maxwait", "maxwait_us", "pool_mode")
		s1 := find(rows, "database", "app", "shard", "s1", "role", "primary")
		if len(s1) != 1 {
			t.Fatalf("SHOW POOLS: rows for app s1 primary: %v (all: %v)", s1, rows)
		}
		r := s1[0]
		if r["user"] != "app" || r["sv_active"] != "1" || r["sv_idle"] != "1" || r["cl_active"] != "1" ||
			r["cl_waiting"] != "0" || r["pool_mode"] != "transaction" {
			t.Errorf("SHOW POOLS app s1 primary = %v; want user app, sv_active 1, sv_idle 1, cl_active 1, cl_waiting 0, pool_mode transaction", r)
		}
	})

	var c2id string
	t.Run("clients", func(t *testing.T) {
		names, rows := show(t, admin, "show clients;")
		wantColumns(t, "SHOW CLIENTS", names, "type", "user", "database", "state", "addr", "port", "connect_time", "request_time", "id")
		if len(rows) != 2 {
			t.Fatalf("SHOW CLIENTS: %d rows, want 2: %v", len(rows), rows)
		}
		for i, c := range []*pgx.Conn{c1, c2} {
			_, port, _ := strings.Cut(c.PgConn().Conn().LocalAddr().String(), ":")
			got := find(rows, "port", port)
			if len(got) != 1 {
				t.Fatalf("SHOW CLIENTS: no row with the port %s of client %d: %v", port, i+1, rows)
			}
			r := got[0]
			want := []string{"idle", "active"}[i]
			if r["type"] != "C" || r["user"] != "app" || r["database"] != "app" || r["addr"] != "127.0.0.1" || r["state"] != want {
				t.Errorf("SHOW CLIENTS client %d = %v; want type C, user app, database app, addr 127.0.0.1, state %s", i+1, r, want)
			}
			if r["connect_time"] == "NULL" || r["request_time"] == "NULL" {
				t.Errorf("SHOW CLIENTS client %d has no connect_time or request_time: %v", i+1, r)
			}
			if i == 1 {
				c2id = r["id"]
			}
		}
	})

	t.Run("servers", func(t *testing.T) {
		names, rows := show(t, admin, "SHOW SERVERS")
		wantColumns(t, "SHOW SERVERS", names, "type", "user", "database", "shard", "role", "state", "addr", "port", "connect_time", "remote_pid", "link")
		s1 := find(rows, "shard", "s1", "role", "primary")
		if len(s1) != 2 {
			t.Fatalf("SHOW SERVERS: %d connections to s1, want 2: %v", len(s1), rows)
		}
		active := find(s1, "state", "active")
		if len(active) != 1 || active[0]["remote_pid"] != strconv.Itoa(pid) || active[0]["link"] != c2id ||
			active[0]["port"] != strconv.Itoa(rc.shards[1].Port()) || active[0]["type"] != "S" {
			t.Errorf("SHOW SERVERS active s1 connection = %v; want remote_pid %d, link %s (client 2), port %d", active, pid, c2id, rc.shards[1].Port())
		}
		if len(find(s1, "state", "idle")) != 1 {
			t.Errorf("SHOW SERVERS: no idle s1 connection: %v", s1)
		}
	})

	t.Run("shards", func(t *testing.T) {
		_, rows := show(t, admin, "SHOW SHARDS")
		if len(rows) != 4 {
			t.Fatalf("SHOW SHARDS: %d rows, want 4 (s0, its replica, s1, s2): %v", len(rows), rows)
		}
		for i, s := range rc.shards {
			got := find(rows, "shard", shardName(i), "role", "primary", "port", strconv.Itoa(s.Port()), "health", "up", "lag_bytes", "0")
			if len(got) != 1 {
				t.Errorf("SHOW SHARDS: no up primary of %s on port %d: %v", shardName(i), s.Port(), rows)
			}
		}
		if got := find(rows, "shard", "s0", "role", "replica", "port", strconv.Itoa(rc.replica.Port())); len(got) != 1 {
			t.Errorf("SHOW SHARDS: no replica of s0: %v", rows)
		}
	})

	t.Run("stats config version", func(t *testing.T) {
		names, rows := show(t, admin, "SHOW STATS")
		wantColumns(t, "SHOW STATS", names, "database", "total_xact_count", "total_query_count", "total_received", "total_sent",
			"total_xact_time", "total_query_time", "total_wait_time")
		if len(find(rows, "database", "app")) != 1 {
			t.Errorf("SHOW STATS: no row for app: %v", rows)
		}
		_, rows = show(t, admin, "SHOW CONFIG")
		if len(find(rows, "key", "users[0].name", "value", "admin")) != 1 || len(find(rows, "key", "users[0].password", "value", "*****")) != 1 ||
			len(find(rows, "key", "databases[0].backend_password", "value", "*****")) != 1 || len(find(rows, "key", "admin_users[0]", "value", "admin")) != 1 {
			t.Errorf("SHOW CONFIG: want users[0] admin with password *****, backend_password *****, admin_users[0]: %v", rows)
		}
		for _, r := range rows {
			if r["value"] == "adminpw" || r["value"] == "app" && strings.Contains(r["key"], "password") {
				t.Errorf("SHOW CONFIG shows a password: %v", r)
			}
		}
		_, rows = show(t, admin, "SHOW VERSION")
		if len(rows) != 1 || !strings.HasPrefix(rows[0]["version"], "pgshard ") {
			t.Errorf("SHOW VERSION = %v", rows)
		}
	})

	t.Run("route", func(t *testing.T) {
		owner := rc.owners(t, usersRule, "1")["1"]
		cases := []struct {
			sql                       string
			shards, role, kind, merge string
			reason                    string // a part of it
		}{
			{"SELECT * FROM users WHERE id = 1", shardName(owner), "primary", "single", "none", ""},
			{"select name from users", "s0,s1,s2", "primary", "all", "concat", "shard key not pinned"},
			{"SELECT * FROM users ORDER BY id LIMIT 3", "s0,s1,s2", "primary", "all", "sorted", ""},
			{"UPDATE countries SET name = 'x'", "s0,s1,s2", "primary", "broadcast", "none", "replicated write"},
			{"SELECT * FROM users, accounts", "", "", "reject", "none", "not on one shard"},
			{"CREATE TABLE t_admin (id int)", "s0,s1,s2", "primary", "all", "ddl", ""},
		}
		for _, c := range cases {
			names, rows := show(t, admin, "SHOW ROUTE "+c.sql)
			wantColumns(t, "SHOW ROUTE", names, "statement", "shards", "role", "kind", "merge", "reason")
			if len(rows) != 1 {
				t.Fatalf("SHOW ROUTE %s: %v", c.sql, rows)
			}
			r := rows[0]
			if r["statement"] != c.sql || r["shards"] != c.shards || r["role"] != c.role || r["kind"] != c.kind || r["merge"] != c.merge ||
				!strings.Contains(r["reason"], c.reason) {
				t.Errorf("SHOW ROUTE %s = %v; want shards %q role %q kind %s merge %s reason ~%q", c.sql, r, c.shards, c.role, c.kind, c.merge, c.reason)
			}
		}
		// The database may be named; the statement did not run.
		_, rows := show(t, admin, "show route app INSERT INTO users VALUES (1, 'x')")
		if len(rows) != 1 || rows[0]["shards"] != shardName(owner) || rows[0]["kind"] != "single" {
			t.Errorf("SHOW ROUTE app INSERT = %v, want %s single", rows, shardName(owner))
		}
		if n := rc.onShards(t, "SELECT count(*) FROM users WHERE id = 1"); slices.ContainsFunc(n, func(r []string) bool { return r[0] != "0" }) {
			t.Errorf("SHOW ROUTE ran the INSERT: %v", n)
		}
	})

	t.Run("protocol", func(t *testing.T) {
		// Extended protocol: refused, and the connection stays usable.
		_, err := admin.PgConn().Prepare(ctx, "", "SHOW POOLS", nil)
		if code := sqlstate(err); code != "0A000" {
			t.Errorf("extended protocol: %v (SQLSTATE %q), want 0A000", err, code)
		}
		// Unknown commands point to SHOW HELP.
		_, err = admin.Exec(ctx, "SHOW NOTHING")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42601" || !strings.Contains(pe.Hint, "SHOW HELP") {
			t.Errorf("SHOW NOTHING: %v, want 42601 with a hint naming SHOW HELP", err)
		}
		// SHOW HELP: a NOTICE listing the commands, then SHOW.
		var notices []*pgconn.Notice
		hc := pgxConnect(t, p.url("admin", "adminpw", "pgshard")+"&default_query_exec_mode=simple_protocol", func(c *pgx.ConnConfig) {
			c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
		})
		tag, err := hc.Exec(ctx, "show help")
		if err != nil || tag.String() != "SHOW" || len(notices) != 1 || !strings.Contains(notices[0].Detail, "SHOW ROUTE") ||
			!strings.Contains(notices[0].Detail, "PAUSE") {
			t.Errorf("SHOW HELP: tag %q, err %v, notices %+v", tag, err, notices)
		}
		// Operations others implement answer (an error while they are stubs).
		for _, cmd := range []string{"RELOAD", "BAN 127.0.0.1:1", "UNBAN 127.0.0.1:1"} {
			tag, err := admin.Exec(ctx, cmd)
			word := strings.Fields(cmd)[0]
			if err == nil && tag.String() != word || err != nil && sqlstate(err) == "" {
				t.Errorf("%s: tag %q, err %v", cmd, tag, err)
			}
		}
		if _, rows := show(t, admin, "SHOW VERSION"); len(rows) != 1 {
			t.Error("the console is not usable after errors")
		}
	})

	t.Run("psql", func(t *testing.T) {
		out, errOut, err := psqlAdmin(t, p, "admin", "adminpw", "-A", "-F", "|", "-c", "SHOW POOLS")
		if err != nil {
			t.Fatalf("psql SHOW POOLS: %v\n%s", err, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.HasPrefix(lines[0], "database|user|shard|role|") || !strings.Contains(lines[0], "|sv_active|sv_idle|") {
			t.Errorf("psql SHOW POOLS header: %q", lines[0])
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "app|app|s1|primary|") }) {
			t.Errorf("psql SHOW POOLS has no app s1 primary row:\n%s", out)
		}
		out, errOut, err = psqlAdmin(t, p, "admin", "adminpw", "-At", "-c", "SHOW ROUTE SELECT * FROM users WHERE id = 1")
		if err != nil || !strings.Contains(out, "|single|") {
			t.Errorf("psql SHOW ROUTE: %v %q %q", err, out, errOut)
		}
		// Other users may not use the console.
		_, errOut, err = psqlAdmin(t, p, "app", "app", "-c", "SHOW POOLS")
		if err == nil || !strings.Contains(errOut, "not allowed to use the admin console") {
			t.Errorf("psql as app: %v %q", err, errOut)
		}
	})

	t.Run("not admin", func(t *testing.T) {
		_, err := pgxDial(p.url("app", "app", "pgshard"))
		if code := sqlstate(err); code != "28000" {
			t.Errorf("app on database pgshard: %v (SQLSTATE %q), want 28000", err, code)
		}
		_, err = pgxDial(p.url("admin", "wrong", "pgshard"))
		if code := sqlstate(err); code != "28P01" {
			t.Errorf("admin with a wrong password: %v (SQLSTATE %q), want 28P01", err, code)
		}
	})
	tx.Rollback(ctx)
}

// TestAdminPause runs transactions from several clients, pauses: PAUSE
// returns only once the running transactions have ended, and while paused
// none reaches the backend; after RESUME they all complete.
func TestAdminPause(t *testing.T) {
	checkNoGoroutineLeak(t)
	newTable(t, "admin_pause", "client int NOT NULL, i int NOT NULL")
	p := startProxy(t, proxyConfig{poolSize: 4, edit: func(o *proxy.Options) {
		o.Users = append(o.Users, proxy.User{Name: "admin", Password: "adminpw", Auth: proxy.AuthSCRAM})
		o.AdminUsers = []string{"admin"}
	}})
	ctx := context.Background()
	admin := adminConn(t, p)
	count := func() int64 {
		n, err := backend.QueryInt(ctx, "app", "SELECT count(*) FROM admin_pause")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A transaction in progress: PAUSE waits for it.
	holder := pgxConnect(t, p.url("app", "app", "app"))
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO admin_pause VALUES (-1, 0)"); err != nil {
		t.Fatal(err)
	}

	const clients, iters = 6, 15
	var done atomic.Int64
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range clients {
		conn := pgxConnect(t, p.url("app", "app", "app"))
		wg.Go(func() {
			<-start
			for i := range iters {
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO admin_pause VALUES ($1, $2)", c, i); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "SELECT pg_sleep(0.01)")
					return err
				})
				if err != nil {
					errs[c] = err
					return
				}
				done.Add(1)
			}
		})
	}
	close(start)
	time.Sleep(50 * time.Millisecond)

	paused := make(chan error, 1)
	go func() {
		_, err := admin.Exec(ctx, "PAUSE")
		paused <- err
	}()
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned (%v) while a transaction was open", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-paused:
		if err != nil {
			t.Fatalf("PAUSE: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PAUSE did not return after the transactions ended")
	}

	// Paused: no transaction runs on the backend, none starts.
	st := backendStates(t, "app")
	if st["active"] != 0 || st["idle in transaction"] != 0 {
		t.Errorf("after PAUSE, backends of app: %v; want none active or in a transaction", st)
	}
	before, doneBefore := count(), done.Load()
	if doneBefore == clients*iters {
		t.Fatal("the clients finished before PAUSE; make them run longer")
	}
	time.Sleep(400 * time.Millisecond)
	if after := count(); after != before || done.Load() != doneBefore {
		t.Errorf("while paused rows went from %d to %d and transactions from %d to %d", before, after, doneBefore, done.Load())
	}
	// Clients are held waiting; SHOW CLIENTS says so.
	_, rows := show(t, admin, "SHOW CLIENTS")
	if n := len(find(rows, "state", "waiting")); n == 0 {
		t.Errorf("SHOW CLIENTS while paused: no waiting client: %v", rows)
	}
	_, rows = show(t, admin, "SHOW POOLS")
	if len(find(rows, "database", "app", "paused", "1")) == 0 {
		t.Errorf("SHOW POOLS while paused: app is not shown paused: %v", rows)
	}

	if _, err := admin.Exec(ctx, "RESUME"); err != nil {
		t.Fatalf("RESUME: %v", err)
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", c, err)
		}
	}
	if n := count(); n != clients*iters+1 {
		t.Errorf("%d rows, want %d", n, clients*iters+1)
	}
	// RESUME again: nothing is paused. PAUSE of one database, then RESUME of it.
	if _, err := admin.Exec(ctx, "RESUME"); sqlstate(err) != "55000" {
		t.Errorf("RESUME when not paused: %v, want 55000", err)
	}
	if _, err := admin.Exec(ctx, "PAUSE nosuchdb"); sqlstate(err) != "3D000" {
		t.Errorf("PAUSE nosuchdb: %v, want 3D000", err)
	}
	if tag, err := admin.Exec(ctx, "pause other;"); err != nil || tag.String() != "PAUSE" {
		t.Fatalf("PAUSE other: %q %v", tag, err)
	}
	// app is not paused.
	if _, err := holder.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("app while other is paused: %v", err)
	}
	if tag, err := admin.Exec(ctx, "RESUME other"); err != nil || tag.String() != "RESUME" {
		t.Errorf("RESUME other: %q %v", tag, err)
	}
}

// TestAdminShutdown checks that SHUTDOWN answers (what it does is the
// shutdown work's to test).
func TestAdminShutdown(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{edit: func(o *proxy.Options) {
		o.Users = append(o.Users, proxy.User{Name: "admin", Password: "adminpw", Auth: proxy.AuthSCRAM})
		o.AdminUsers = []string{"admin"}
	}})
	admin := adminConn(t, p)
	tag, err := admin.Exec(context.Background(), "SHUTDOWN")
	if err == nil && tag.String() != "SHUTDOWN" {
		t.Errorf("SHUTDOWN: tag %q", tag)
	}
	if err != nil && !pgconn.SafeToRetry(err) && sqlstate(err) == "" && !strings.Contains(err.Error(), "EOF") {
		t.Errorf("SHUTDOWN: %v", err)
	}
	// The server stops accepting clients.
	if !waitFor(5*time.Second, func() bool {
		c, err := pgxDial(p.url("app", "app", "app"))
		if err == nil {
			c.Close(context.Background())
		}
		return err != nil
	}) {
		t.Error("pgshard still accepts clients after SHUTDOWN")
	}
}

// TestAdminReloadBan: RELOAD through the console applies a valid file and
// refuses a bad one with its errors; BAN and UNBAN take a replica out of
// reads and back, as SHOW SHARDS shows; with pgx and with psql.
func TestAdminReloadBan(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	adminText := func(o routingOptions) string {
		text := rc.configYAML(o)
		return "admin_users: [admin]\n" + strings.Replace(text, "users:\n", "users:\n  - {name: admin, password: adminpw}\n", 1)
	}
	path := filepath.Join(t.TempDir(), "pgshard.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func() (proxy.Options, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return proxy.Options{}, err
		}
		return cfg.ProxyOptions(nil)
	}
	write(adminText(routingOptions{noNotices: true, readWriteSplit: true}))
	opts, err := load()
	if err != nil {
		t.Fatal(err)
	}
	opts.LoadConfig = load
	p := serveProxy(t, opts)
	admin := adminConn(t, p)
	ctx := context.Background()
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 9950, 1)
	k0 := keys[0][0]

	// RELOAD of a valid file: route notices on for the connected client.
	c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k0)).wantRoute(t, "")
	write(adminText(routingOptions{readWriteSplit: true}))
	if tag, err := admin.Exec(ctx, "RELOAD"); err != nil || tag.String() != "RELOAD" {
		t.Fatalf("RELOAD: %v %v", tag, err)
	}
	if r := c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k0)); len(r.routes) != 1 {
		t.Errorf("after RELOAD: route notices %q, want one", r.routes)
	}
	// A bad file: the error names the key; nothing changes.
	write(adminText(routingOptions{readWriteSplit: true}) + "pool_mode: sesion\n")
	_, err = admin.Exec(ctx, "RELOAD")
	if err == nil || !strings.Contains(err.Error(), "pool_mode") {
		t.Fatalf("RELOAD of a bad file: %v", err)
	}
	if r := c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k0)); len(r.routes) != 1 {
		t.Errorf("after a failed RELOAD: route notices %q, want one (the configuration in force)", r.routes)
	}

	// BAN the replica of s0: SHOW SHARDS says so and reads of s0 stay on
	// its primary; UNBAN brings it back.
	replica := rc.replica.Addr()
	health := func() string {
		t.Helper()
		_, rows := show(t, admin, "SHOW SHARDS")
		for _, r := range rows {
			if r["host"]+":"+r["port"] == replica {
				return r["health"]
			}
		}
		t.Fatalf("SHOW SHARDS has no row for %s: %v", replica, rows)
		return ""
	}
	if h := health(); h != "up" {
		t.Fatalf("replica health %q before BAN", h)
	}
	if tag, err := admin.Exec(ctx, "BAN "+replica); err != nil || tag.String() != "BAN" {
		t.Fatalf("BAN: %v %v", tag, err)
	}
	if h := health(); h != "banned" {
		t.Errorf("replica health %q after BAN, want banned", h)
	}
	for range 5 {
		r := c.mustRun(t, simple, fmt.Sprintf("SELECT pg_is_in_recovery() FROM users WHERE id = %d", k0))
		if len(r.rows) == 1 && r.rows[0] != "f" {
			t.Errorf("a read of s0 went to its banned replica (%v, %q)", r.rows, r.routes)
		}
	}
	if _, err := admin.Exec(ctx, "BAN "+rc.shards[1].Addr()); sqlstate(err) != "22023" {
		t.Errorf("BAN of a primary: %v, want 22023", err)
	}
	out, errOut, err := psqlAdmin(t, p, "admin", "adminpw", "-c", "UNBAN "+replica)
	if err != nil || !strings.Contains(out, "UNBAN") {
		t.Fatalf("psql UNBAN: %v %s %s", err, out, errOut)
	}
	if h := health(); h != "up" {
		t.Errorf("replica health %q after UNBAN, want up", h)
	}
	out, errOut, err = psqlAdmin(t, p, "admin", "adminpw", "-c", "RELOAD")
	if err == nil || !strings.Contains(errOut, "pool_mode") {
		t.Errorf("psql RELOAD of the bad file: %v %s %s", err, out, errOut)
	}
}
