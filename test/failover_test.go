package test

// Health checks and failover, end to end, on servers of the test's own
// (the shared routing servers are not stopped by anyone): shard s0 with
// two streaming replicas r1 and r2, shard s1 without. Table kv holds ids
// below 1000 on s0, the others on s1. Statements return
// inet_server_port(), which says which server answered.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/config"
	"github.com/pgshard/pgshard/test/pgtest"
)

// failoverCluster is the test's servers.
type failoverCluster struct {
	s0, s1 *pgtest.Server
	r1, r2 *pgtest.Server // replicas of s0
}

func startFailoverCluster(t *testing.T) *failoverCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	shards, err := pgtest.StartN(ctx, 2, pgtest.Options{Name: "failover"})
	if err != nil {
		t.Fatal(err)
	}
	fc := &failoverCluster{s0: shards[0], s1: shards[1]}
	t.Cleanup(func() {
		for _, s := range []*pgtest.Server{fc.r1, fc.r2, fc.s0, fc.s1} {
			if s != nil {
				if err := s.Stop(); err != nil {
					t.Logf("stopping %s: %v", s.Name(), err)
				}
			}
		}
	})
	for _, s := range shards {
		if err := s.CreateUserDB(ctx, "app", "app", "app"); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "app", "SET ROLE app; CREATE TABLE kv (id integer PRIMARY KEY, v text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
	}
	if fc.r1, err = fc.s0.StartReplica(ctx, pgtest.Options{Name: "failover-r1"}); err != nil {
		t.Fatal(err)
	}
	if fc.r2, err = fc.s0.StartReplica(ctx, pgtest.Options{Name: "failover-r2"}); err != nil {
		t.Fatal(err)
	}
	return fc
}

// proxy runs pgshard in front of fc with health checks every 200ms.
func (fc *failoverCluster) proxy(t *testing.T, banTime string, roleAuto bool) *testProxy {
	t.Helper()
	url := func(s *pgtest.Server) string {
		return fmt.Sprintf("postgres://127.0.0.1:%d/app?sslmode=disable", s.Port())
	}
	role := "static"
	if roleAuto {
		role = "auto"
	}
	text := fmt.Sprintf(`listen: "127.0.0.1:0"
metrics_listen: ""
pool_mode: transaction
client_login_timeout: 5s
server_connect_timeout: 5s
query_wait_timeout: 10s
health_check_interval: 200ms
health_check_timeout: 1s
ban_time: %s
users:
  - {name: app, password: app}
databases:
  - name: app
    backend_user: app
    backend_password: app
    pool_size: 4
    shards:
      - {name: s0, primary: %q, replicas: [%q, %q], role: %s}
      - {name: s1, primary: %q}
    tables:
      - {name: kv, key: id, method: range, key_type: integer, ranges: [{to: "1000", shard: s0}, {from: "1000", shard: s1}]}
    read_write_split: true
    read_your_writes: "off"
    route_notices: true
`, banTime, url(fc.s0), url(fc.r1), url(fc.r2), role, url(fc.s1))
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, text)
	}
	opts, err := cfg.ProxyOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		opts.Logger = testLogger(t)
	}
	return serveProxy(t, opts)
}

// port runs sql, which returns inet_server_port() first, through c and
// says which server answered, and how long it took.
func serverPort(c *pgx.Conn, sql string) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var p int
	err := c.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&p)
	return p, time.Since(start), err
}

const (
	readS0  = "SELECT pg_catalog.inet_server_port() FROM kv WHERE id = 1" // qualified: a read
	writeS0 = "INSERT INTO kv VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING inet_server_port()"
	writeS1 = "INSERT INTO kv VALUES (1001, 'y') ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING inet_server_port()"
)

// pollPort runs sql until the server at want answers it, for up to
// timeout.
func pollPort(t *testing.T, c *pgx.Conn, timeout time.Duration, what, sql string, want int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, _, err := serverPort(c, sql)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: within %v, %q never reached port %d; last: port %d, error %v", what, timeout, sql, want, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailover: replicas that fail or are banned leave reads to the others
// and come back; a shard whose primary is down fails fast and recovers on
// its own while other shards work; role: auto writes to a promoted
// replica.
func TestFailover(t *testing.T) {
	fc := startFailoverCluster(t)
	checkNoGoroutineLeak(t)
	ctx := context.Background()
	for _, s := range []*pgtest.Server{fc.s0, fc.s1} {
		if err := s.Exec(ctx, "app", "INSERT INTO kv VALUES (1, 'a'), (1001, 'b') ON CONFLICT DO NOTHING"); err != nil {
			t.Fatal(err)
		}
	}
	s0, r1, r2 := fc.s0.Port(), fc.r1.Port(), fc.r2.Port()

	t.Run("BanUnban", func(t *testing.T) {
		p := fc.proxy(t, "30s", false)
		c := pgxConnect(t, p.url("app", "app", "app"))
		pollPort(t, c, 10*time.Second, "before the ban", readS0, r2)
		if err := p.srv.Ban(fc.r2.Addr()); err != nil {
			t.Fatalf("Ban(%s): %v", fc.r2.Addr(), err)
		}
		for i := range 10 {
			got, _, err := serverPort(c, readS0)
			if err != nil || got == r2 {
				t.Fatalf("read %d with r2 banned: port %d (r2 %d), error %v", i, got, r2, err)
			}
		}
		err := p.srv.Ban(fc.s0.Addr())
		if err == nil || !strings.Contains(err.Error(), "only replicas can be banned") {
			t.Errorf("Ban(primary) = %v, want a refusal saying only replicas can be banned", err)
		}
		err = p.srv.Ban("127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), fc.r1.Addr()) {
			t.Errorf("Ban(unknown host) = %v, want an error naming the configured servers", err)
		}
		if err := p.srv.Unban(fc.r2.Addr()); err != nil {
			t.Fatalf("Unban: %v", err)
		}
		pollPort(t, c, 5*time.Second, "after Unban", readS0, r2)
	})

	t.Run("ReplicaDown", func(t *testing.T) {
		p := fc.proxy(t, "1s", false)
		c := pgxConnect(t, p.url("app", "app", "app"))
		pollPort(t, c, 10*time.Second, "before the kill", readS0, r1)
		if err := fc.r1.Kill(); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			got, d, err := serverPort(c, readS0)
			if err != nil {
				t.Fatalf("read %d with r1 down: %v; it should have gone to r2 or the primary", i, err)
			}
			if got == r1 || (got != r2 && got != s0) {
				t.Fatalf("read %d with r1 down answered by port %d (r1 %d, r2 %d, s0 %d)", i, got, r1, r2, s0)
			}
			if d > 2*time.Second {
				t.Errorf("read %d with r1 down took %v", i, d)
			}
		}
		if err := fc.r1.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		pollPort(t, c, 10*time.Second, "after r1's restart and ban", readS0, r1)
	})

	t.Run("PrimaryDown", func(t *testing.T) {
		p := fc.proxy(t, "1s", false)
		c := pgxConnect(t, p.url("app", "app", "app"))
		if got, _, err := serverPort(c, writeS0); err != nil || got != s0 {
			t.Fatalf("write to s0 before the kill: port %d, error %v", got, err)
		}
		if err := fc.s0.Kill(); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		// The first statement may meet a connection that died with the
		// server; from then on the shard is known down.
		_, d, err := serverPort(c, writeS0)
		wantDown(t, "first write after the kill", err, d, false)
		for i := range 5 {
			_, d, err := serverPort(c, writeS0)
			wantDown(t, fmt.Sprintf("write %d to s0 while it is down", i), err, d, true)
			if got, _, err := serverPort(c, writeS1); err != nil || got != fc.s1.Port() {
				t.Fatalf("write to s1 while s0 is down: port %d, error %v", got, err)
			}
			if got, _, err := serverPort(c, readS0); err != nil || (got != r1 && got != r2) {
				t.Fatalf("read of s0 while its primary is down: port %d (replicas %d, %d), error %v", got, r1, r2, err)
			}
			// A new client is served too, and fails as fast.
			c2 := pgxConnect(t, p.url("app", "app", "app"))
			_, d, err = serverPort(c2, writeS0)
			wantDown(t, fmt.Sprintf("write %d of a new client", i), err, d, true)
			c2.Close(ctx)
		}
		if err := fc.s0.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("s0 was down for %v", time.Since(down))
		up := time.Now()
		pollPort(t, c, 5*time.Second, "writes to s0 after its restart", writeS0, s0)
		t.Logf("writes to s0 work again %v after its restart", time.Since(up))
	})

	t.Run("RoleAuto", func(t *testing.T) {
		p := fc.proxy(t, "1s", true)
		c := pgxConnect(t, p.url("app", "app", "app"))
		if got, _, err := serverPort(c, writeS0); err != nil || got != s0 {
			t.Fatalf("write to s0 before the kill: port %d, error %v", got, err)
		}
		if err := fc.s0.Kill(); err != nil {
			t.Fatal(err)
		}
		_, d, err := serverPort(c, writeS0)
		wantDown(t, "write before the promotion", err, d, false)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := fc.r1.Promote(pctx); err != nil {
			t.Fatal(err)
		}
		pollPort(t, c, 5*time.Second, "writes after r1's promotion", writeS0, r1)
		got, err := fc.r1.QueryString(ctx, "app", "SELECT v FROM kv WHERE id = 1")
		if err != nil || got != "x" {
			t.Errorf("the write on the promoted r1 directly: %q, %v", got, err)
		}
		if got, _, err := serverPort(c, writeS1); err != nil || got != fc.s1.Port() {
			t.Fatalf("write to s1: port %d, error %v", got, err)
		}
	})
}

// wantDown checks a statement for a shard whose primary is down failed
// within 2s with SQLSTATE 08006 (or 57P01), and, when named, with the
// message saying shard s0 is unavailable and pgshard reconnects.
func wantDown(t *testing.T, what string, err error, d time.Duration, named bool) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: got %v after %v, want SQLSTATE 08006", what, err, d)
	}
	if pe.Code != "08006" && pe.Code != "57P01" {
		t.Fatalf("%s: got %s %q, want SQLSTATE 08006 or 57P01", what, pe.Code, pe.Message)
	}
	if d > 2*time.Second {
		t.Errorf("%s: failed after %v, want under 2s", what, d)
	}
	if named && (!strings.Contains(pe.Message, "shard s0 is unavailable") || !strings.Contains(pe.Message, "reconnects")) {
		t.Errorf("%s: message %q does not name shard s0 and say pgshard reconnects", what, pe.Message)
	}
	t.Logf("%s: %s %s (after %v)", what, pe.Code, pe.Message, d.Round(time.Millisecond))
}
