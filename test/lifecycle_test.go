package test

// The pgshard binary under signals: SIGHUP reloads the configuration file
// (a bad file changes nothing), SIGTERM lets a running transaction commit
// and then exits 0, SIGINT closes clients at once and exits 0.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/proxy"
)

// lifecycleConfig is a one-shard pgshard in front of backend's database
// app; extraUsers are added to users.
func lifecycleConfig(port int, extraUsers string) string {
	return fmt.Sprintf(`listen: "127.0.0.1:%d"
metrics_listen: ""
shutdown_timeout: 10s
log_level: debug
users:
  - {name: app, password: app}
%sdatabases:
  - name: app
    backend_user: app
    backend_password: app
    shards: [{name: s0, primary: %q}]
`, port, extraUsers, backend.URL("", "", "app"))
}

func connectPort(ctx context.Context, port int, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/app?sslmode=disable&connect_timeout=2", user, password, port))
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// waitFor polls cond every 50ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestSignals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pgshard")
	if err := buildPgshard(ctx, bin); err != nil {
		t.Fatal(err)
	}
	directExecOn(t, "DROP TABLE IF EXISTS sig_t; CREATE TABLE sig_t (id int)")
	ps := startPgshardProcess(t, bin, dir, func(port int) string { return lifecycleConfig(port, "") })
	signal := func(sig syscall.Signal) {
		t.Helper()
		if err := ps.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	canLogin := func(user string) bool {
		c, err := connectPort(ctx, ps.port, user, user)
		if err != nil {
			return false
		}
		c.Close(ctx)
		return true
	}

	// A client in a transaction all along.
	c, err := connectPort(ctx, ps.port, "app", "app")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	mustExec := func(sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec("BEGIN")
	mustExec("INSERT INTO sig_t VALUES (1)")

	// SIGHUP with a new user: bob can log in, the client goes on.
	if canLogin("bob") {
		t.Fatal("bob logged in before the reload")
	}
	if err := os.WriteFile(ps.config, []byte(lifecycleConfig(ps.port, "  - {name: bob, password: bob}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	signal(syscall.SIGHUP)
	if !waitFor(5*time.Second, func() bool { return canLogin("bob") }) {
		t.Fatalf("bob cannot log in after SIGHUP%s", ps.logTail(20))
	}
	// A bad file: refused, logged, the running configuration stays.
	if err := os.WriteFile(ps.config, []byte(lifecycleConfig(ps.port, "")+"no_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signal(syscall.SIGHUP)
	if !waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(ps.log)
		return strings.Contains(string(b), "configuration reload failed")
	}) {
		t.Fatalf("no reload failure logged%s", ps.logTail(20))
	}
	if !canLogin("bob") {
		t.Fatal("a bad configuration file replaced the running one")
	}
	mustExec("INSERT INTO sig_t VALUES (2)")

	// SIGTERM: no new clients; the transaction commits; then the client
	// is told and the process exits 0.
	signal(syscall.SIGTERM)
	if !waitFor(5*time.Second, func() bool { return !canLogin("app") }) {
		t.Fatal("pgshard still accepts logins after SIGTERM")
	}
	mustExec("INSERT INTO sig_t VALUES (3)")
	mustExec("COMMIT")
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("the client's connection stayed open after its transaction, during shutdown")
	}
	select {
	case <-ps.done:
		if ps.err != nil {
			t.Fatalf("pgshard exited with %v after SIGTERM%s", ps.err, ps.logTail(20))
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("pgshard still runs 8s after SIGTERM%s", ps.logTail(20))
	}
	if got := directRows(t, backend, "SELECT id FROM sig_t ORDER BY id"); strings.Join(got, ",") != "1,2,3" {
		t.Errorf("rows committed: %v, want 1,2,3", got)
	}

	// SIGINT: at once, the open transaction rolled back, exit 0.
	if err := os.WriteFile(ps.config, []byte(lifecycleConfig(ps.port, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	ps.start(t)
	c2, err := connectPort(ctx, ps.port, "app", "app")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	if _, err := c2.Exec(ctx, "BEGIN; INSERT INTO sig_t VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	signal(syscall.SIGINT)
	select {
	case <-ps.done:
		if ps.err != nil {
			t.Fatalf("pgshard exited with %v after SIGINT", ps.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pgshard still runs 5s after SIGINT")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("SIGINT took %s with a transaction open; want at once", took)
	}
	if !waitFor(3*time.Second, func() bool {
		return strings.Join(directRows(t, backend, "SELECT id FROM sig_t ORDER BY id"), ",") == "1,2,3"
	}) {
		t.Errorf("the transaction open at SIGINT was not rolled back")
	}
}

// directExecOn runs sql as role app on backend's database app.
func directExecOn(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := backend.Exec(ctx, "app", "SET ROLE app; "+sql); err != nil {
		t.Fatal(err)
	}
}

// TestReload: a reload applies to the next transaction of clients already
// connected (here: route notices turned on, a rule changed), keeps the
// backend connections of unchanged shards, refuses a bad file and a
// change of listen, and keeps the old configuration then.
func TestReload(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	path := filepath.Join(t.TempDir(), "pgshard.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := rc.configYAML(routingOptions{noNotices: true, metricsListen: "127.0.0.1:0"})
	write(base)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.ProxyOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.LoadConfig = func() (proxy.Options, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return proxy.Options{}, err
		}
		return cfg.ProxyOptions(nil)
	}
	p := serveProxy(t, opts)
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 9900, 1)
	k1 := keys[1][0]
	c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users VALUES (%d, 'r')", k1)).wantRoute(t, "")
	pid := c.mustRun(t, simple, fmt.Sprintf("SELECT pg_backend_pid() FROM users WHERE id = %d", k1)).rows

	// Route notices on: the connected client sees them from its next
	// statement; the shard's backend connection is the same one.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k1))
	write(rc.configYAML(routingOptions{metricsListen: "127.0.0.1:0"}))
	if err := p.srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// Inside the transaction the old configuration holds.
	c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k1)).wantRoute(t, "")
	c.mustRun(t, simple, "COMMIT")
	r := c.mustRun(t, simple, fmt.Sprintf("SELECT pg_backend_pid() FROM users WHERE id = %d", k1))
	r.wantRoute(t, routeNotice("primary", 1))
	if strings.Join(r.rows, ",") != strings.Join(pid, ",") {
		t.Errorf("backend of the unchanged shard s1: pid %v after the reload, %v before; want the same connection", r.rows, pid)
	}

	// A bad file and a listen change are refused; the running
	// configuration stays (notices still on).
	write(base + "no_such_key: 1\n")
	if err := p.srv.Reload(); err == nil || !strings.Contains(err.Error(), "no_such_key") {
		t.Errorf("Reload of a bad file: %v", err)
	}
	write(strings.Replace(rc.configYAML(routingOptions{metricsListen: "127.0.0.1:0"}), `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`, 1))
	if err := p.srv.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Reload changing listen: %v", err)
	}
	c.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k1)).wantRoute(t, routeNotice("primary", 1))

	// A new client gets the configuration in force, and a removed user
	// cannot log in any more.
	write(strings.Replace(rc.configYAML(routingOptions{metricsListen: "127.0.0.1:0"}), "  - {name: trustuser, auth: trust}\n", "", 1))
	if err := p.srv.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := pgxDial(p.url("trustuser", "", "app")); err == nil {
		t.Error("a user removed by the reload logged in")
	}
	c2 := connectRouted(t, p)
	c2.mustRun(t, simple, fmt.Sprintf("SELECT id FROM users WHERE id = %d", k1)).wantRoute(t, routeNotice("primary", 1))
	c.checkUsable(t)

	// The reloads are counted.
	m := getMetrics(t, "http://"+p.srv.MetricsAddr().String())
	if ok, bad := m.sum("pgshard_config_reloads_total", "result", "success"), m.sum("pgshard_config_reloads_total", "result", "failure"); ok != 2 || bad != 2 {
		t.Errorf("pgshard_config_reloads_total: %v success, %v failure; want 2 and 2", ok, bad)
	}
}
