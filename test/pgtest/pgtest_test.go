package pgtest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartExecQuery(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := StartT(t, Options{Conf: map[string]string{"work_mem": "7MB", "application_name": "it's quoted"}})

	if s.Host() != "127.0.0.1" || s.Addr() != net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())) {
		t.Fatalf("Host %q Addr %q Port %d", s.Host(), s.Addr(), s.Port())
	}
	for _, c := range []struct{ user, password, want string }{
		{"app", "p@ss/w:rd", "postgres://app:p%40ss%2Fw%3Ard@" + s.Addr() + "/my%20db?sslmode=disable"},
		{"app", "", "postgres://app@" + s.Addr() + "/my%20db?sslmode=disable"},
		{"", "", "postgres://" + s.Addr() + "/my%20db?sslmode=disable"},
	} {
		if got := s.URL(c.user, c.password, "my db"); got != c.want {
			t.Errorf("URL(%q, %q) = %s, want %s", c.user, c.password, got, c.want)
		}
	}
	if err := s.Exec(ctx, "postgres", "CREATE TABLE t (id int, name text); INSERT INTO t VALUES (1, 'a'), (2, NULL)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "postgres", "INSERT INTO t VALUES ($1, $2)", 3, "c"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sql  string
		args []any
		want int64
	}{
		{"SELECT count(*) FROM t", nil, 3},
		{"SELECT sum(id::bigint) FROM t", nil, 6}, // numeric
		{"SELECT id FROM t WHERE name = $1", []any{"c"}, 3},
	} {
		got, err := s.QueryInt(ctx, "postgres", c.sql, c.args...)
		if err != nil || got != c.want {
			t.Errorf("QueryInt(%q) = %d, %v; want %d", c.sql, got, err, c.want)
		}
	}
	if _, err := s.QueryInt(ctx, "postgres", "SELECT id FROM t WHERE false"); !errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("QueryInt with no rows: %v, want pgx.ErrNoRows", err)
	}
	for sql, want := range map[string]string{
		"SHOW work_mem":                  "7MB",
		"SHOW application_name":          "it's quoted",
		"SHOW max_connections":           "300",
		"SHOW max_prepared_transactions": "50",
		"SHOW fsync":                     "off",
		"SHOW server_encoding":           "UTF8",
		"SELECT 1 = 1":                   "t",
		"SELECT count(*) FROM t":         "3",
	} {
		if got, err := s.QueryString(ctx, "postgres", sql); err != nil || got != want {
			t.Errorf("QueryString(%q) = %q, %v; want %q", sql, got, err, want)
		}
	}
	if _, err := s.QueryString(ctx, "postgres", "SELECT name FROM t WHERE id = 2"); err == nil {
		t.Error("QueryString of NULL: no error")
	}
	if err := s.Exec(ctx, "nosuchdb", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "nosuchdb") {
		t.Errorf("Exec on a missing database: %v", err)
	}
}

func TestCreateUserDB(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := StartT(t, Options{})
	for range 2 { // idempotent
		if err := s.CreateUserDB(ctx, "app", "s3cret'x", "app db"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, s.URL("app", "s3cret'x", "app db"))
	if err != nil {
		t.Fatalf("connect as app: %v", err)
	}
	defer conn.Close(ctx)
	var user, db string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil || user != "app" || db != "app db" {
		t.Fatalf("connected as %q to %q (%v)", user, db, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE mine (id int)"); err != nil {
		t.Errorf("the owner cannot create a table: %v", err)
	}
	verifier, err := s.QueryString(ctx, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
	if err != nil || !strings.HasPrefix(verifier, "SCRAM-SHA-256$") {
		t.Errorf("stored password %q (%v), want a SCRAM verifier", verifier, err)
	}
	if c, err := pgx.Connect(ctx, s.URL("app", "wrong", "app db")); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was accepted")
	}
}

func TestRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := StartT(t, Options{})
	port := s.Port()
	if err := s.Exec(ctx, "postgres", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port {
		t.Errorf("port changed from %d to %d", port, s.Port())
	}
	if n, err := s.QueryInt(ctx, "postgres", "SELECT count(*) FROM kept"); err != nil || n != 1 {
		t.Errorf("after restart: %d rows, %v", n, err)
	}
}

func TestKillBreaksConnectionsAndRestartRecovers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := StartT(t, Options{})
	// CHECKPOINT apart: a multi-statement Exec is one transaction, which
	// would commit only after the checkpoint.
	if err := s.Exec(ctx, "postgres", "CREATE TABLE survived (id int); INSERT INTO survived VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "postgres", "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.SuperURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err == nil {
		t.Error("Kill of a killed server: no error")
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(qctx, "SELECT 1"); err == nil {
		t.Error("a connection opened before Kill still works")
	}
	if err := s.Exec(ctx, "postgres", "SELECT 1"); err == nil {
		t.Error("a killed server accepts connections")
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.QueryInt(ctx, "postgres", "SELECT count(*) FROM survived"); err != nil || n != 1 {
		t.Errorf("after crash recovery: %d rows, %v", n, err)
	}
}

func TestStopRemovesDirectory(t *testing.T) {
	t.Parallel()
	s, err := Start(t.Context(), Options{Name: "stop me"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(s.Dir()), "pgtest-stop_me-") {
		t.Errorf("directory %s", s.Dir())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("directory left behind: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", s.Addr())
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := s.Restart(t.Context()); err == nil {
		t.Error("Restart after Stop: no error")
	}
}

func TestStartNInParallel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	servers, err := StartN(ctx, 3, Options{Name: "shard"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopAll(servers); err != nil {
			t.Error(err)
		}
	})
	ports := map[int]bool{}
	for i, s := range servers {
		if want := "shard-" + strconv.Itoa(i); s.Name() != want {
			t.Errorf("name %q, want %q", s.Name(), want)
		}
		ports[s.Port()] = true
		if err := s.Exec(ctx, "postgres", "CREATE TABLE mark (i int); INSERT INTO mark VALUES ($1)", i); err == nil {
			t.Error("several statements with arguments: no error")
		}
		if err := s.Exec(ctx, "postgres", "CREATE TABLE mark (i int)"); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "postgres", "INSERT INTO mark VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	if len(ports) != 3 {
		t.Errorf("ports %v are not distinct", ports)
	}
	for i, s := range servers { // each server has only its own row
		if got, err := s.QueryInt(ctx, "postgres", "SELECT i FROM mark"); err != nil || got != int64(i) {
			t.Errorf("server %d holds %d (%v)", i, got, err)
		}
	}
	if _, err := StartN(ctx, 2, Options{Port: 5433}); err == nil {
		t.Error("two servers on one fixed port: no error")
	}
}

func TestPersistentDir(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := reachableTempDir(t)
	port := freePortT(t)

	first, err := Start(ctx, Options{Name: "first", Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if first.Port() != port {
		t.Errorf("port %d, want %d", first.Port(), port)
	}
	if err := first.Exec(ctx, "postgres", "CREATE TABLE kept (id int)"); err != nil {
		t.Fatal(err)
	}
	// A second start on the directory finds the first still running, as
	// after a crashed demo, stops it and takes over.
	second, err := Start(ctx, Options{Name: "second", Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil { // the first exited cleanly
		t.Errorf("Stop of the displaced server: %v", err)
	}
	if err := second.Exec(ctx, "postgres", "INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("Stop removed the persistent directory: %v", err)
	}
	third, err := Start(ctx, Options{Name: "third", Dir: dir}) // another port
	if err != nil {
		t.Fatal(err)
	}
	defer third.Stop()
	if n, err := third.QueryInt(ctx, "postgres", "SELECT count(*) FROM kept"); err != nil || n != 1 {
		t.Errorf("reused directory holds %d rows (%v)", n, err)
	}
}

func TestReplica(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	primary := StartT(t, Options{Name: "primary"})
	if err := primary.Exec(ctx, "postgres", "CREATE TABLE r (id int); INSERT INTO r SELECT generate_series(1, 10)"); err != nil {
		t.Fatal(err)
	}
	replica, err := primary.StartReplica(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Stop() })
	if replica.Name() != "primary-replica" || replica.Port() == primary.Port() {
		t.Errorf("replica %q on port %d", replica.Name(), replica.Port())
	}
	if got, err := replica.QueryString(ctx, "postgres", "SELECT pg_is_in_recovery()"); err != nil || got != "t" {
		t.Fatalf("replica in recovery: %q, %v", got, err)
	}
	if err := primary.Exec(ctx, "postgres", "INSERT INTO r VALUES (11)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := replica.QueryInt(ctx, "postgres", "SELECT count(*) FROM r")
		if err == nil && n == 11 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica has %d rows (%v), want 11", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := replica.Exec(ctx, "postgres", "INSERT INTO r VALUES (12)"); err == nil {
		t.Error("the replica accepted a write")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, conf := range []map[string]string{{"bad name": "x"}, {"Port": "5432"}} {
		if _, err := Start(t.Context(), Options{Conf: conf}); err == nil {
			t.Errorf("Conf %v: no error", conf)
		}
	}
	_, err := Start(t.Context(), Options{Name: "badconf", Conf: map[string]string{"shared_buffers": "lots"}})
	if err == nil || !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("invalid setting: want an error quoting the server log, got %v", err)
	}
}

func TestFindBinariesFromEnv(t *testing.T) {
	dir, err := BinDir() // before Setenv: BinDir answers once per process
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PG_BINDIR", t.TempDir())
	if _, err := findBinaries(); err == nil || !strings.Contains(err.Error(), "PG_BINDIR") {
		t.Errorf("empty PG_BINDIR: %v", err)
	}
	t.Setenv("PG_BINDIR", dir)
	if b, err := findBinaries(); err != nil || b.dir != dir || b.major() == "" {
		t.Errorf("PG_BINDIR=%s: %+v, %v", dir, b, err)
	}
}

func TestInstalledBinDirsNewestFirst(t *testing.T) {
	dirs := installedBinDirs()
	for i := 1; i < len(dirs); i++ {
		if versionOfDir(dirs[i-1]) < versionOfDir(dirs[i]) {
			t.Errorf("%s listed before %s", dirs[i-1], dirs[i])
		}
	}
}

func versionOfDir(dir string) string {
	m := versionInPath.FindString(dir)
	return strings.Repeat("0", 4-len(m)) + m
}

// reachableTempDir is a directory under os.TempDir that the postgres OS
// user can enter (t.TempDir's is private to us), removed after the test.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtest-persist-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func freePortT(t *testing.T) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestTemplateNames(t *testing.T) {
	bin := binaries{dir: "/usr/lib/postgresql/15/bin", version: "15.18"}
	now := time.Date(2026, 11, 21, 0, 30, 0, 0, time.Local)
	name := templateName(bin, nil, now)
	if !strings.HasPrefix(name, templatePrefix) || !strings.HasSuffix(name, "-20261121") {
		t.Errorf("templateName = %s", name)
	}
	if other := templateName(binaries{dir: bin.dir, version: "15.19"}, nil, now); other == name {
		t.Errorf("a new minor version keeps the template name %s", name)
	}
	for dir, want := range map[string]bool{
		"/tmp/" + name: false,
		"/tmp/" + templateName(bin, nil, now.AddDate(0, 0, -1)): false, // still in use across midnight
		"/tmp/" + templateName(bin, nil, now.AddDate(0, 0, -3)): true,
		"/tmp/pgtest-e2e-123":                     false,
		"/tmp/" + templatePrefix + "abc-notadate": false,
	} {
		if got := staleTemplate(dir, now); got != want {
			t.Errorf("staleTemplate(%s) = %v, want %v", dir, got, want)
		}
	}
}
