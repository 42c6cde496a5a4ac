// Package test holds pgshard's integration tests: real clients (pgx, lib/pq,
// psql, pgbench) talk to a pgshard server running in the test process, in
// front of real PostgreSQL servers started by package pgtest. Tests check
// what the client sees and, directly on the backend, what happened there.
// The TPC-B consistency test (consistency_test.go) runs the pgshard binary
// instead, as a subprocess, so that it can kill it.
package test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/proxy"
	"github.com/pgshard/pgshard/test/pgtest"
)

// backend is the PostgreSQL server shared by the package's tests. It has a
// login role app/app owning database app, and role other/other owning
// database other.
var backend *pgtest.Server

func TestMain(m *testing.M) {
	if spec := os.Getenv(stormEnv); spec != "" {
		os.Exit(stormChild(spec)) // the client side of a connection storm
	}
	code := pgtest.Run(m, 1, pgtest.Options{Name: "proxy-e2e"}, func(ctx context.Context, s []*pgtest.Server) error {
		backend = s[0]
		if err := backend.CreateUserDB(ctx, "app", "app", "app"); err != nil {
			return err
		}
		return backend.CreateUserDB(ctx, "other", "other", "other")
	})
	// The routing tests' servers start on first use (routingServers).
	if err := stopRoutingServers(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// proxyConfig describes a pgshard instance for a test; zero fields take
// defaults suited to tests.
type proxyConfig struct {
	mode     proxy.PoolMode
	poolSize int
	// edit, when set, changes the options before the server starts.
	edit func(*proxy.Options)
}

// testProxy is a pgshard server running in the test process.
type testProxy struct {
	srv  *proxy.Server
	addr string
	host string
	port string
}

// startProxy runs pgshard in front of backend until the test ends. Users:
// app/app (SCRAM), md5user/md5pass (md5), trustuser (trust). Databases: app
// (backend user app), other (backend user other).
func startProxy(t testing.TB, pc proxyConfig) *testProxy {
	t.Helper()
	if pc.mode == "" {
		pc.mode = proxy.PoolTransaction
	}
	if pc.poolSize == 0 {
		pc.poolSize = 10
	}
	opts := proxy.Options{
		PoolMode:           pc.mode,
		MaxClientConn:      1000,
		ClientLoginTimeout: 5 * time.Second,
		ServerResetQuery:   "DISCARD ALL",
		QueryWaitTimeout:   10 * time.Second,
		Users: []proxy.User{
			{Name: "app", Password: "app", Auth: proxy.AuthSCRAM},
			{Name: "md5user", Password: "md5pass", Auth: proxy.AuthMD5},
			{Name: "trustuser", Auth: proxy.AuthTrust},
		},
		Databases: []proxy.Database{
			{Name: "app", BackendUser: "app", BackendPassword: "app", PoolSize: pc.poolSize,
				Shards: []proxy.Shard{{Name: "s0", Primary: backend.URL("", "", "app")}}},
			{Name: "other", BackendUser: "other", BackendPassword: "other", PoolSize: pc.poolSize,
				Shards: []proxy.Shard{{Name: "s0", Primary: backend.URL("", "", "other")}}},
		},
	}
	if testing.Verbose() {
		opts.Logger = testLogger(t)
	}
	if pc.edit != nil {
		pc.edit(&opts)
	}
	return serveProxy(t, opts)
}

// serveProxy runs a pgshard server with opts on a free port of 127.0.0.1
// until the test ends.
func serveProxy(t testing.TB, opts proxy.Options) *testProxy {
	t.Helper()
	srv, err := proxy.NewServer(opts)
	if err != nil {
		t.Fatalf("proxy.NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("proxy did not shut down within 10s")
		}
	})
	srv.Addr() // returns once startup (two-phase recovery) is over
	addr := ln.Addr().String()
	host, port, _ := net.SplitHostPort(addr)
	return &testProxy{srv: srv, addr: addr, host: host, port: port}
}

// url is a connection URL through the proxy.
func (p *testProxy) url(user, password, db string) string {
	u := "postgres://" + user
	if password != "" {
		u += ":" + password
	}
	return u + "@" + p.addr + "/" + db + "?sslmode=disable"
}

// backendPids returns how many backend connections of role exist, by state.
func backendStates(t testing.TB, role string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, st := range []string{"idle", "active", "idle in transaction", "idle in transaction (aborted)"} {
		n, err := backend.QueryInt(context.Background(), "postgres",
			"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = $2 AND pid <> pg_backend_pid()", role, st)
		if err != nil {
			t.Fatal(err)
		}
		out[st] = n
	}
	return out
}

// checkNoGoroutineLeak fails the test if goroutines started during it are
// still running a little after it ends (pgshard's, or the drivers').
func checkNoGoroutineLeak(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				var ours []string
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "pgshard/proxy") || strings.Contains(g, "pgshard/pool") {
						ours = append(ours, g)
					}
				}
				t.Errorf("%d goroutines leaked (before %d); pgshard's:\n%s", n-before, before, strings.Join(ours, "\n\n"))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// testLogger sends pgshard's logs to the test log (with -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke is the simplest end-to-end check: a query through the proxy
// reaches the backend.
func TestSmoke(t *testing.T) {
	checkNoGoroutineLeak(t)
	p := startProxy(t, proxyConfig{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db string
	var pid int
	if err := conn.QueryRow(ctx, "SELECT current_database(), pg_backend_pid()").Scan(&db, &pid); err != nil {
		t.Fatal(err)
	}
	if db != "app" {
		t.Fatalf("current_database() = %q, want app", db)
	}
	// The backend pid is a real backend of role app.
	n, err := backend.QueryInt(ctx, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND usename = 'app'", pid)
	if err != nil || n != 1 {
		t.Fatalf("backend %d of role app: count %d, err %v", pid, n, err)
	}
}
