package test

// Security: routing hints that a tenant cannot use to step around
// cross_shard: deny, client TLS (require, verify-full, refusing clients in
// the clear), TLS to the backends, passwords kept out of logs and error
// messages, the admin console closed to other users, and per-user client
// limits under a connection flood.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/test/pgtest"
)

// TestSecurityHintsDenied: in a database with cross_shard: deny (hints
// then default to deny) every way of giving a hint is refused with 42501
// naming the setting, in both protocols and inside a transaction, and
// nothing it would have done happens on any shard; statements routed by
// their key still run.
func TestSecurityHintsDenied(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "deny"})
	c := connectRouted(t, p)
	fresh := rc.intKeys(t, usersRule, 500, 1)

	denied := func(pe interface{ Error() string }, what string) {
		t.Helper()
		if !strings.Contains(pe.Error(), "hints: deny") {
			t.Errorf("%s: error %q does not name the setting", what, pe.Error())
		}
	}
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		for _, sql := range []string{
			"/* pgshard: shard=s1 */ SELECT id FROM users",
			"SELECT id FROM users -- pgshard: shard=s2",
			"SELECT id FROM users /* pgshard: key=" + strconv.Itoa(keys[1][0]) + " */",
			// A hint that agrees with the key is a hint all the same.
			"/* pgshard: shard=s0 */ SELECT id FROM users WHERE id = " + strconv.Itoa(keys[0][0]),
			fmt.Sprintf("/* pgshard: shard=s1 */ INSERT INTO users (id, name) VALUES (%d, 'hinted')", fresh[0][0]),
			"/* pgshard: shard=s2 */ UPDATE users SET name = 'hinted'",
			"/* pgshard: shard=s1 */ CREATE TABLE hinted_ddl (id int)",
		} {
			pe := c.mustFailUnrouted(t, "42501", mode, sql)
			denied(pe, sql)
			c.checkUsable(t)
		}
	}
	for _, sql := range []string{"SET pgshard.shard = 's1'", "SET pgshard.key = '7'", "SET pgshard.shard TO s2"} {
		pe := c.mustFailUnrouted(t, "42501", simple, sql)
		denied(pe, sql)
	}
	// RESET sets nothing: allowed.
	c.mustRun(t, simple, "RESET pgshard.shard").wantTag(t, "RESET")
	// Inside a transaction the refusal fails it.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[2][0])).wantRows(t, strconv.Itoa(keys[2][0]))
	c.mustFailUnrouted(t, "42501", simple, "SET LOCAL pgshard.shard = 's0'")
	c.mustFail(t, "25P02", simple, "SELECT 1")
	c.mustRun(t, simple, "ROLLBACK")
	c.mustRun(t, simple, "BEGIN")
	c.mustFailUnrouted(t, "42501", pgx.QueryExecModeExec, "/* pgshard: shard=s1 */ SELECT id FROM users")
	c.mustFail(t, "25P02", simple, "SELECT 1")
	c.mustRun(t, simple, "ROLLBACK")

	// Key-routed statements run; key-less ones are refused by cross_shard.
	r := c.mustRun(t, simple, "SELECT id FROM users WHERE id = "+strconv.Itoa(keys[1][0]))
	r.wantRows(t, strconv.Itoa(keys[1][0]))
	r.wantRoute(t, routeNotice("primary", 1))
	pe := c.mustFailUnrouted(t, "0A000", simple, "SELECT id FROM users")
	if strings.Contains(pe.Hint, "hint") {
		t.Errorf("cross_shard refusal suggests a hint, which this database refuses: %q", pe.Hint)
	}

	// Nothing the hinted statements asked for happened on any shard.
	rc.checkShardRows(t, [][]string{userRows(keys[0]...), userRows(keys[1]...), userRows(keys[2]...)}, "SELECT id || '|' || name FROM users")
	rc.checkEverywhere(t, []string{"0"}, "SELECT count(*) FROM pg_class WHERE relname = 'hinted_ddl'")
}

// TestSecurityHintsAllowed: with hints: allow next to cross_shard: deny a
// hint pins a statement to the one shard it names; a hint can name no
// more than one shard of the connected database: "all", lists, another
// database's shard or the admin console are unknown shards (22023).
func TestSecurityHintsAllowed(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 1, 1)
	p := startRoutingProxy(t, rc, routingOptions{crossShard: "deny", hints: "allow"})
	c := connectRouted(t, p)

	r := c.mustRun(t, simple, "/* pgshard: shard=s1 */ SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[1][0]))
	r.wantRoute(t, routeNotice("primary", 1))
	c.mustRun(t, simple, "SET pgshard.shard = 's2'")
	r = c.mustRun(t, pgx.QueryExecModeExec, "SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[2][0]))
	c.mustRun(t, simple, "RESET pgshard.shard")
	c.mustFailUnrouted(t, "0A000", simple, "SELECT id FROM users")

	for _, shard := range []string{"all", "*", "'s0,s1'", "\"s0 s1\"", "pgshard", "other", "s3"} {
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec} {
			pe := c.mustFailUnrouted(t, "22023", mode, "/* pgshard: shard="+shard+" */ SELECT id FROM users")
			if !strings.Contains(pe.Message, "unknown shard") {
				t.Errorf("shard=%s: message %q", shard, pe.Message)
			}
		}
		val := strings.Trim(shard, `'"`)
		c.mustFailUnrouted(t, "22023", simple, "SET pgshard.shard = '"+val+"'")
	}
	// A hint naming two shards in two pairs keeps the last one only.
	r = c.mustRun(t, simple, "/* pgshard: shard=s0, shard=s2 */ SELECT id FROM users")
	r.wantRows(t, strconv.Itoa(keys[2][0]))
	r.wantRoute(t, routeNotice("primary", 2))
	c.checkUsable(t)
}

// startSecurityProxy is startProxy with user admin/adminpw (SCRAM) in
// admin_users, and edit applied last.
func startSecurityProxy(t testing.TB, edit func(*proxy.Options)) *testProxy {
	t.Helper()
	return startProxy(t, proxyConfig{edit: func(o *proxy.Options) {
		o.Users = append(o.Users, proxy.User{Name: "admin", Password: "adminpw", Auth: proxy.AuthSCRAM})
		o.AdminUsers = []string{"admin"}
		if edit != nil {
			edit(o)
		}
	}})
}

// floodResult is how a flood of logins ended: the connections that got in
// (still open), and the errors of the others by SQLSTATE.
type floodResult struct {
	conns  []*pgconn.PgConn
	codes  map[string]int
	errors []error
}

func (f *floodResult) close() {
	for _, c := range f.conns {
		c.Close(context.Background())
	}
	f.conns = nil
}

// flood opens n connections to url at once and keeps those that get in.
func flood(t testing.TB, url string, n int) *floodResult {
	t.Helper()
	conns := make([]*pgconn.PgConn, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conns[i], errs[i] = pgconn.Connect(ctx, url)
		})
	}
	close(start)
	wg.Wait()
	f := &floodResult{codes: map[string]int{}}
	for i := range n {
		if errs[i] == nil {
			f.conns = append(f.conns, conns[i])
			continue
		}
		code := sqlstate(errs[i])
		f.codes[code]++
		if code != "53300" && code != "28P01" {
			f.errors = append(f.errors, errs[i])
		}
	}
	t.Cleanup(f.close)
	return f
}

// clientsOf counts the client sessions of user in SHOW CLIENTS.
func clientsOf(t testing.TB, admin *pgx.Conn, user string) int {
	t.Helper()
	_, rows := show(t, admin, "SHOW CLIENTS")
	return len(find(rows, "user", user))
}

// TestSecurityUserClientLimit: max_user_client_connections holds under a
// flood: of many clients of one user logging in at once exactly the limit
// get in and the others get FATAL 53300 naming the setting; wrong
// passwords take no place; other users are unaffected; a user's own
// limit overrides the global one; once the clients leave, the places
// are free again.
func TestSecurityUserClientLimit(t *testing.T) {
	checkNoGoroutineLeak(t)
	const global, own = 4, 2
	p := startSecurityProxy(t, func(o *proxy.Options) {
		o.MaxUserClientConnections = global
		for i := range o.Users {
			if o.Users[i].Name == "md5user" {
				o.Users[i].MaxClientConnections = own
			}
		}
	})
	admin := pgxConnect(t, p.url("admin", "adminpw", "pgshard")+"&default_query_exec_mode=simple_protocol")

	// app: right and wrong passwords at once.
	var wrong *floodResult
	var wg sync.WaitGroup
	wg.Go(func() { wrong = flood(t, p.url("app", "wrong", "app"), 20) })
	right := flood(t, p.url("app", "app", "app"), 40)
	wg.Wait()
	if len(right.conns) != global || right.codes["53300"] != 40-global || len(right.errors) > 0 {
		t.Fatalf("40 logins of app at once with a limit of %d: %d got in, refused by SQLSTATE %v, other errors %v",
			global, len(right.conns), right.codes, right.errors)
	}
	if len(wrong.conns) != 0 || wrong.codes["28P01"] != 20 {
		t.Errorf("20 logins of app with a wrong password: %d got in, refused by SQLSTATE %v", len(wrong.conns), wrong.codes)
	}
	_, err := pgconn.Connect(context.Background(), p.url("app", "app", "other"))
	pe := wantPgError(t, err, "FATAL", "53300")
	if !strings.Contains(pe.Message, `user "app"`) || !strings.Contains(pe.Hint, "max_user_client_connections") || !strings.Contains(pe.Hint, strconv.Itoa(global)) {
		t.Errorf("refusal on another database: %q, hint %q; want the user and the setting named", pe.Message, pe.Hint)
	}
	if n := clientsOf(t, admin, "app"); n != global {
		t.Errorf("SHOW CLIENTS lists %d clients of app, want %d", n, global)
	}
	for _, c := range right.conns {
		if got := pgconnQuery(t, c, "SELECT current_user"); got != "app" {
			t.Errorf("current_user %q", got)
		}
	}

	// md5user's own limit; trustuser has the global one, untouched by app.
	md5 := flood(t, p.url("md5user", "md5pass", "app"), 10)
	if len(md5.conns) != own || md5.codes["53300"] != 10-own || len(md5.errors) > 0 {
		t.Errorf("10 logins of md5user (own limit %d): %d got in, refused %v, other errors %v", own, len(md5.conns), md5.codes, md5.errors)
	}
	_, err = pgconn.Connect(context.Background(), p.url("md5user", "md5pass", "app"))
	if pe := wantPgError(t, err, "FATAL", "53300"); !strings.Contains(pe.Hint, "users[].max_user_client_connections") {
		t.Errorf("md5user's refusal hint %q does not name its own limit", pe.Hint)
	}
	trust := flood(t, p.url("trustuser", "", "app"), global)
	if len(trust.conns) != global {
		t.Errorf("trustuser, with app and md5user at their limits: %d of %d got in (%v %v)", len(trust.conns), global, trust.codes, trust.errors)
	}

	// Everyone leaves: the places come back, and the counts are zero.
	right.close()
	md5.close()
	trust.close()
	deadline := time.Now().Add(5 * time.Second)
	for clientsOf(t, admin, "app")+clientsOf(t, admin, "md5user")+clientsOf(t, admin, "trustuser") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("SHOW CLIENTS still lists clients 5s after they all left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	again := flood(t, p.url("app", "app", "app"), global+3)
	if len(again.conns) != global || again.codes["53300"] != 3 {
		t.Errorf("after everyone left, %d logins of app: %d got in, refused %v, want %d in", global+3, len(again.conns), again.codes, global)
	}
	again.close()
	waitLogin(t, p.url("app", "app", "app"))
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// TestSecurityMaxClientConnFlood: a flood of clients at once against
// max_client_conn: exactly the limit get in, the rest get FATAL 53300,
// and once they leave the proxy takes new clients.
func TestSecurityMaxClientConnFlood(t *testing.T) {
	checkNoGoroutineLeak(t)
	const limit = 10
	p := startSecurityProxy(t, func(o *proxy.Options) { o.MaxClientConn = limit })
	f := flood(t, p.url("app", "app", "app"), 60)
	if len(f.conns) != limit || f.codes["53300"] != 60-limit || len(f.errors) > 0 {
		t.Fatalf("60 clients at once, max_client_conn %d: %d got in, refused %v, other errors %v", limit, len(f.conns), f.codes, f.errors)
	}
	for _, c := range f.conns {
		if got := pgconnQuery(t, c, "SELECT 1"); got != "1" {
			t.Fatalf("got %q", got)
		}
	}
	f.close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := flood(t, p.url("app", "app", "app"), limit)
		n := len(g.conns)
		g.close()
		if n == limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after the flood left, only %d of %d new clients get in", n, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitLogin(t, p.url("app", "app", "app"))
	checkProxyServes(t, p)
	waitBackendsClean(t)
}

// waitLogin waits until a client can log in at url again (the clients
// just closed have been counted out), for at most 5s.
func waitLogin(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := pgconn.Connect(context.Background(), url)
		if err == nil {
			conn.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after its clients left the proxy still refuses new ones: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecurityAdminConsoleClosed: only admin_users reach the console. A
// non-admin user is refused with 28000 even with the right password; a
// wrong password or an unknown user is 28P01 (the password comes first,
// so the console's users cannot be probed); names near "pgshard" are
// ordinary (unknown) databases; and the console's commands sent through
// a routed database go to the backend, not the console.
func TestSecurityAdminConsoleClosed(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startSecurityProxy(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		user, password, db, code string
	}{
		{"app", "app", "pgshard", "28000"},
		{"md5user", "md5pass", "pgshard", "28000"},
		{"trustuser", "", "pgshard", "28000"},
		{"app", "wrong", "pgshard", "28P01"},
		{"nosuchuser", "x", "pgshard", "28P01"},
		{"admin", "wrong", "pgshard", "28P01"},
		{"admin", "adminpw", "PGSHARD", "3D000"},
		{"admin", "adminpw", "pgshard ", "3D000"},
		{"app", "app", "pgshard\u200b", "3D000"},
	} {
		conn, err := pgconn.Connect(ctx, p.url(tc.user, tc.password, strings.ReplaceAll(tc.db, " ", "%20")))
		if err == nil {
			conn.Close(ctx)
			t.Errorf("%s on %q: connected, want FATAL %s", tc.user, tc.db, tc.code)
			continue
		}
		pe := wantPgError(t, err, "FATAL", tc.code)
		if tc.code == "28000" && !strings.Contains(pe.Message, "admin console") {
			t.Errorf("%s on %q: message %q", tc.user, tc.db, pe.Message)
		}
	}
	// psql too.
	_, errOut, err := psqlAdmin(t, p, "app", "app", "-c", "SHOW CLIENTS")
	if err == nil || !strings.Contains(errOut, "not allowed to use the admin console") {
		t.Errorf("psql as app on pgshard: %v %q", err, errOut)
	}
	// The console's commands through database app reach PostgreSQL.
	conn, err := pgconn.Connect(ctx, p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, cmd := range []string{"SHOW CLIENTS", "SHOW CONFIG", "PAUSE", "SHUTDOWN"} {
		_, err := conn.Exec(ctx, cmd).ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42704" && pe.Code != "42601" {
			t.Errorf("%s through database app: %v, want PostgreSQL's own error", cmd, err)
		}
	}
	// The admin gets in.
	admin := pgxConnect(t, p.url("admin", "adminpw", "pgshard")+"&default_query_exec_mode=simple_protocol")
	if _, rows := show(t, admin, "SHOW CLIENTS"); len(find(rows, "user", "app")) != 1 {
		t.Errorf("SHOW CLIENTS: %v, want the one client of app", rows)
	}
	checkProxyServes(t, p)
}

// TestSecurityClientTLS: a certificate signed by the test's CA for
// 127.0.0.1 and localhost. pgx and psql connect with sslmode=require,
// verify-ca and verify-full (the CA as sslrootcert); verify-full with
// another CA fails. With tls.mode: require a client in the clear is
// refused with 28000 (with allow it gets in), while a cancel request in
// the clear still cancels a query of a TLS session.
func TestSecurityClientTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	wrongCA := newTestCA(t, dir, "wrong-ca")
	cert := ca.serverCert(t, dir, "pgshard")
	required := startSecurityProxy(t, func(o *proxy.Options) { o.TLS, o.TLSRequired = cert.config, true })
	allowed := startSecurityProxy(t, func(o *proxy.Options) { o.TLS = cert.config })
	ctx := context.Background()

	connStr := func(p *testProxy, host, ssl string) string {
		return fmt.Sprintf("host=%s port=%s user=app password=app dbname=app connect_timeout=10 %s", host, p.port, ssl)
	}
	good := []string{"sslmode=require", "sslmode=verify-ca sslrootcert=" + ca.file, "sslmode=verify-full sslrootcert=" + ca.file}
	for _, p := range []*testProxy{required, allowed} {
		for _, host := range []string{"127.0.0.1", "localhost"} {
			for _, ssl := range good {
				cs := connStr(p, host, ssl)
				conn, err := pgx.Connect(ctx, cs)
				if err != nil {
					t.Errorf("pgx %s: %v", cs, err)
					continue
				}
				if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
					t.Errorf("pgx %s: connection is %T, not TLS", cs, conn.PgConn().Conn())
				}
				var who string
				if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "app" {
					t.Errorf("pgx %s: current_user %q, %v", cs, who, err)
				}
				conn.Close(ctx)
				out := runPsql(t, cs, "", "-At", "-c", `\conninfo`)
				if !strings.Contains(out, "SSL connection (protocol: TLS") {
					t.Errorf("psql %s: \\conninfo says %q, want an SSL connection", cs, out)
				}
			}
		}
		// Another CA: the certificate is not trusted.
		cs := connStr(p, "127.0.0.1", "sslmode=verify-full sslrootcert="+wrongCA.file)
		if conn, err := pgx.Connect(ctx, cs); err == nil {
			conn.Close(ctx)
			t.Errorf("pgx %s: connected with a certificate the CA did not sign", cs)
		} else if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("pgx %s: %v, want an unknown authority", cs, err)
		}
		out, err := psqlOut(cs, "-c", "SELECT 1")
		if err == nil || !strings.Contains(out, "certificate verify failed") {
			t.Errorf("psql %s: %v %q, want certificate verify failed", cs, err, out)
		}
	}

	// In the clear.
	cs := connStr(required, "127.0.0.1", "sslmode=disable")
	_, err := pgx.Connect(ctx, cs)
	pe := wantPgError(t, err, "FATAL", "28000")
	if !strings.Contains(pe.Message, "only TLS") || !strings.Contains(pe.Hint, "sslmode=require") {
		t.Errorf("refusal in the clear: %q, hint %q", pe.Message, pe.Hint)
	}
	if out, err := psqlOut(cs, "-c", "SELECT 1"); err == nil || !strings.Contains(out, "pgshard accepts only TLS connections") {
		t.Errorf("psql %s: %v %q, want refused", cs, err, out)
	}
	c := dialRaw(t, required.addr)
	c.startup(proto30, map[string]string{"user": "trustuser", "database": "app"})
	c.expectError("FATAL", "28000")
	conn, err := pgx.Connect(ctx, connStr(allowed, "127.0.0.1", "sslmode=disable"))
	if err != nil {
		t.Fatalf("tls.mode allow, sslmode=disable: %v", err)
	}
	conn.Close(ctx)

	// A cancel request in the clear reaches a TLS session's query.
	conn, err = pgx.Connect(ctx, connStr(required, "127.0.0.1", "sslmode=require"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(10)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancelPkt, err := (&pgproto3.CancelRequest{ProcessID: conn.PgConn().PID(), SecretKey: conn.PgConn().SecretKey()}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := dialRaw(t, required.addr)
	cc.write(cancelPkt)
	cc.expectClosed()
	select {
	case err := <-done:
		wantPgError(t, err, "ERROR", "57014")
	case <-time.After(5 * time.Second):
		t.Fatal("a cancel request in the clear did not cancel the TLS session's query")
	}
	checkProxyServes(t, allowed)
	waitBackendsClean(t)
}

// psqlOut runs psql on a connection string and returns its combined
// output and error.
func psqlOut(connStr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", append([]string{connStr, "-X", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = libpqEnv("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// backendTLSHBA lets the superuser in over anything (the harness and the
// test's own checks) and everyone else over TLS only.
const backendTLSHBA = `local     all all                      trust
host      all postgres 127.0.0.1/32    trust
hostssl   all all      127.0.0.1/32    scram-sha-256
hostnossl all all      127.0.0.1/32    reject
`

// TestSecurityBackendTLS: the sslmode of a shard's connection string is
// honoured. Against a server that accepts its users over TLS only,
// sslmode=require and verify-full (with the CA as sslrootcert) work, and
// pg_stat_ssl shows every pgshard connection encrypted; cancel requests
// still reach it. sslmode=disable, and verify-full with another CA,
// fail the client's login with an error that says why.
func TestSecurityBackendTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	dir := serverDir(t)
	ca := newTestCA(t, t.TempDir(), "backend-ca")
	wrongCA := newTestCA(t, t.TempDir(), "wrong-ca")
	cert := ca.serverCert(t, dir, "server")
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(backendTLSHBA), 0o600); err != nil {
		t.Fatal(err)
	}
	chownToServer(t, cert.certFile, cert.keyFile, hba)
	srv := pgtest.StartT(t, pgtest.Options{Conf: map[string]string{
		"ssl": "on", "ssl_cert_file": cert.certFile, "ssl_key_file": cert.keyFile, "hba_file": hba,
	}})
	ctx := context.Background()
	if err := srv.CreateUserDB(ctx, "app", "app", "app"); err != nil {
		t.Fatal(err)
	}
	url := func(ssl string) string {
		return fmt.Sprintf("postgres://127.0.0.1:%d/app?%s", srv.Port(), ssl)
	}
	p := startProxy(t, proxyConfig{poolSize: 3, edit: func(o *proxy.Options) {
		for _, d := range []struct{ name, ssl string }{
			{"require", "sslmode=require"},
			{"verify", "sslmode=verify-full&sslrootcert=" + ca.file},
			{"clear", "sslmode=disable"},
			{"wrongca", "sslmode=verify-full&sslrootcert=" + wrongCA.file},
		} {
			o.Databases = append(o.Databases, proxy.Database{Name: d.name, BackendUser: "app", BackendPassword: "app", PoolSize: 3,
				Shards: []proxy.Shard{{Name: "s0", Primary: url(d.ssl)}}})
		}
	}})

	for _, db := range []string{"require", "verify"} {
		conn, err := pgconn.Connect(ctx, p.url("app", "app", db))
		if err != nil {
			t.Fatalf("database %s: %v", db, err)
		}
		if got := pgconnQuery(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "true" {
			t.Errorf("database %s: the backend's own connection has ssl %s", db, got)
		}
		// A cancel request (sent in the clear, as PostgreSQL takes it)
		// reaches the TLS backend.
		done := make(chan error, 1)
		go func() { done <- conn.Exec(ctx, "SELECT pg_sleep(10)").Close() }()
		time.Sleep(300 * time.Millisecond)
		if err := conn.CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			wantPgError(t, err, "ERROR", "57014")
		case <-time.After(5 * time.Second):
			t.Fatalf("database %s: the cancel did not reach the backend", db)
		}
		conn.Close(ctx)
	}
	// Every connection of app on the server is pgshard's, and encrypted.
	var total, encrypted int64
	super := superConn(t, srv, "postgres")
	if err := super.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'app'`).Scan(&total, &encrypted); err != nil {
		t.Fatal(err)
	}
	if total == 0 || encrypted != total {
		t.Errorf("pgshard's backend connections: %d, of which %d encrypted; want all encrypted", total, encrypted)
	}

	for _, tc := range []struct{ db, want string }{
		{"clear", `pg_hba.conf rejects connection for host "127.0.0.1", user "app", database "app", no encryption`},
		{"wrongca", "x509: certificate signed by unknown authority"},
	} {
		// The health checks (backend_user is set) have found the server
		// refusing pgshard by now, or the client's login dials it itself;
		// either way the client is told why.
		_, err := pgconn.Connect(ctx, p.url("app", "app", tc.db))
		pe := wantPgError(t, err, "FATAL", "08006")
		if !strings.Contains(pe.Message, tc.want) {
			t.Errorf("database %s: %q, want it to say %q", tc.db, pe.Message, tc.want)
		}
		if strings.Contains(pe.Message, "is down") {
			t.Errorf("database %s: %q calls a server that refuses pgshard down", tc.db, pe.Message)
		}
		t.Logf("database %s: %s (hint: %s)", tc.db, pe.Message, pe.Hint)
		if strings.Contains(pe.Message, "password=") || strings.Contains(pe.Message, ":app@") {
			t.Errorf("database %s: the error shows the backend password: %q", tc.db, pe.Message)
		}
	}
	checkProxyServes(t, p)
}

// The secrets of TestSecurityPasswordsNotShown: distinctive, so that a
// leak anywhere is found by a plain substring search.
const (
	secretClient  = "Cl1ent-s3cret-XYZ"
	secretMD5     = "Md5-s3cret-QRS"
	secretBackend = "B4ckend-s3cret-LMN"
	secretBadBack = "B4d-backend-pw-JKL"
	secretAdmin   = "Adm1n-s3cret-UVW"
)

// TestSecurityPasswordsNotShown: a login flood with right and wrong
// passwords (SCRAM and md5, to databases with a backend_user, one whose
// backend_password is wrong, and one that logs in to the backend with
// the client's own password) at log level debug. No password — the
// clients', the backend's, the wrong guesses — appears in pgshard's log,
// in the errors the clients get, in any SHOW command of the admin
// console (SHOW CONFIG shows them redacted) or in /metrics.
func TestSecurityPasswordsNotShown(t *testing.T) {
	checkNoGoroutineLeak(t)
	ctx := context.Background()
	if err := backend.CreateUserDB(ctx, "secback", secretBackend, "secback"); err != nil {
		t.Fatal(err)
	}
	guesses := []string{"Wr0ng-guess-1", "Wr0ng-guess-2", secretClient + "x", "x" + secretMD5}
	secrets := append([]string{secretClient, secretMD5, secretBackend, secretBadBack, secretAdmin}, guesses...)

	shard := func(db string) string {
		return fmt.Sprintf("postgres://127.0.0.1:%d/%s?sslmode=disable", backend.Port(), db)
	}
	text := fmt.Sprintf(`listen: "127.0.0.1:0"
metrics_listen: "127.0.0.1:0"
log_level: debug
pool_mode: transaction
users:
  - {name: sec, password: %[1]q}
  - {name: secmd5, password: %[2]q, auth: md5}
  - {name: secback, password: %[3]q}
  - {name: admin, password: %[5]q}
admin_users: [admin]
databases:
  - name: secdb
    backend_user: secback
    backend_password: %[3]q
    pool_size: 4
    shards: [{name: s0, primary: %[6]q}]
  - name: badback
    backend_user: secback
    backend_password: %[4]q
    pool_size: 2
    shards: [{name: s0, primary: %[6]q}]
  - name: passthru
    pool_size: 2
    shards: [{name: s0, primary: %[6]q}]
`, secretClient, secretMD5, secretBackend, secretBadBack, secretAdmin, shard("secback"))
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	var logs lockedBuffer
	opts, err := cfg.ProxyOptions(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	p := serveProxy(t, opts)

	type attempt struct{ user, password, db string }
	var attempts []attempt
	for i := range 6 {
		attempts = append(attempts,
			attempt{"sec", secretClient, "secdb"}, attempt{"sec", guesses[i%len(guesses)], "secdb"},
			attempt{"secmd5", secretMD5, "secdb"}, attempt{"secmd5", guesses[(i+1)%len(guesses)], "secdb"},
			attempt{"sec", secretClient, "badback"}, attempt{"secback", secretBackend, "passthru"},
			attempt{"secback", guesses[i%len(guesses)], "passthru"}, attempt{"nosuch", guesses[i%len(guesses)], "secdb"},
			attempt{"admin", guesses[i%len(guesses)], "pgshard"}, attempt{"sec", secretClient, "pgshard"})
	}
	var mu sync.Mutex
	var clientText []string // every error message, detail and hint the clients got
	ok := map[string]int{}
	var wg sync.WaitGroup
	for _, a := range attempts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			conn, err := pgconn.Connect(cctx, p.url(a.user, a.password, a.db))
			if err == nil {
				err = conn.Exec(cctx, "SELECT current_user").Close()
				conn.Close(cctx)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok[a.user+"@"+a.db]++
				return
			}
			clientText = append(clientText, err.Error())
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				clientText = append(clientText, pe.Detail, pe.Hint)
			}
		})
	}
	wg.Wait()
	// A client that leaves in the middle of SCRAM (logged at debug).
	half := dialRaw(t, p.addr)
	half.startup(proto30, map[string]string{"user": "sec", "database": "secdb"})
	half.expectSASL()
	half.nc.Close()
	// The right passwords got in, the others did not.
	if ok["sec@secdb"] != 6 || ok["secmd5@secdb"] != 6 || ok["secback@passthru"] != 6 || len(ok) != 3 {
		t.Errorf("logins that succeeded: %v; want 6 each of sec@secdb, secmd5@secdb, secback@passthru", ok)
	}
	if len(clientText) < 6*7 {
		t.Errorf("only %d error texts for %d failed logins", len(clientText), 6*7)
	}

	// The admin console.
	admin := pgxConnect(t, p.url("admin", secretAdmin, "pgshard")+"&default_query_exec_mode=simple_protocol")
	var console []string
	for _, cmd := range []string{"SHOW CONFIG", "SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW STATS", "SHOW SHARDS", "SHOW HELP",
		"SHOW ROUTE secdb SELECT 1"} {
		_, rows := show(t, admin, cmd)
		for _, r := range rows {
			for k, v := range r {
				console = append(console, cmd+": "+k+"="+v)
			}
		}
	}
	_, rows := show(t, admin, "SHOW CONFIG")
	redacted := 0
	for _, r := range rows {
		if strings.Contains(r["key"], "password") && r["value"] == "*****" {
			redacted++
		}
	}
	if redacted != 6 { // four users, two backend_passwords
		t.Errorf("SHOW CONFIG redacts %d passwords, want 6: %v", redacted, rows)
	}

	// /metrics.
	resp, err := http.Get("http://" + p.srv.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "client left during login") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	log := logs.String()
	for _, want := range []string{"login refused", "password authentication failed", "level=DEBUG msg=\"client left during login\""} {
		if !strings.Contains(log, want) {
			t.Errorf("pgshard's log has no %q: the test does not see what it should", want)
		}
	}
	for _, where := range []struct {
		name, text string
	}{
		{"pgshard's log", log},
		{"the errors clients got", strings.Join(clientText, "\n")},
		{"the admin console", strings.Join(console, "\n")},
		{"/metrics", string(metrics)},
	} {
		for _, s := range secrets {
			if i := strings.Index(where.text, s); i >= 0 {
				t.Errorf("%s shows the password %q: ...%s...", where.name, s, where.text[max(0, i-200):min(len(where.text), i+100)])
			}
		}
	}
	t.Logf("%d log bytes, %d client error texts, %d console values, %d metrics bytes checked", len(log), len(clientText), len(console), len(metrics))
}
