package test

// Migrations through pgshard with the frameworks applications use: Django
// (its own contrib apps' migrations) and SQLAlchemy (metadata.create_all),
// from Debian's python3-django, python3-sqlalchemy and python3-psycopg2.
// Their tables must exist on every shard afterwards.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// python returns Debian's python3, which has the packages the migration
// tests use (a python3 earlier on PATH may not).
func python(t testing.TB, modules ...string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("%s not found: install python3 and %s (Debian packages)", py, strings.Join(modules, ", "))
	}
	check := exec.Command(py, "-c", "import "+strings.Join(modules, ", "))
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import %s: %v\n%s\ninstall python3-django, python3-sqlalchemy and python3-psycopg2", py, strings.Join(modules, ", "), err, out)
	}
	return py
}

// runPython runs a script of testdata/migrate against pgshard p as app.
func runPython(t testing.TB, py string, p *testProxy, script string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "migrate", script))
	cmd.Env = append(libpqEnv("app"), "PGHOST="+p.host, "PGPORT="+p.port, "PGUSER=app", "PGDATABASE=app")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func TestMigrationDjango(t *testing.T) {
	py := python(t, "django", "psycopg2")
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	tables := []string{"django_migrations", "django_content_type", "auth_user", "auth_group", "auth_permission", "auth_user_groups", "django_session"}
	drop := func() {
		for _, s := range rc.shards {
			directExec(t, s, "DROP TABLE IF EXISTS "+strings.Join(tables, ", ")+", auth_group_permissions, auth_user_user_permissions CASCADE")
		}
	}
	drop()
	t.Cleanup(drop)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	out := runPython(t, py, p, "django_migrate.py")
	if !strings.Contains(out, "orm ok 1") {
		t.Fatalf("django_migrate.py output:\n%s", out)
	}
	list := "'" + strings.Join(tables, "','") + "'"
	n := strconv.Itoa(len(tables))
	rc.checkShardRows(t, [][]string{{n}, {n}, {n}}, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ("+list+")")
	// Indexes and constraints of the migrations too.
	idx := rc.onShards(t, "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'auth_%'")
	if idx[0][0] == "0" || idx[1][0] != idx[0][0] || idx[2][0] != idx[0][0] {
		t.Errorf("indexes of auth_ tables per shard: %v, want the same non-zero count", idx)
	}
	// Rows of tables no rule names live on the default shard only.
	rc.checkShardRows(t, [][]string{{"ada"}, nil, nil}, "SELECT username FROM auth_user")
	applied := rc.onShards(t, "SELECT count(*) FROM django_migrations")
	if applied[0][0] == "0" || applied[1][0] != "0" || applied[2][0] != "0" {
		t.Errorf("django_migrations rows per shard: %v, want them on s0 only", applied)
	}
	rc.noPrepared(t)
	// Run again: nothing to apply, and it says so.
	if out := runPython(t, py, p, "django_migrate.py"); !strings.Contains(out, "No migrations to apply") || !strings.Contains(out, "orm ok 1") {
		t.Errorf("second migrate:\n%s", out)
	}
}

func TestMigrationSQLAlchemy(t *testing.T) {
	py := python(t, "sqlalchemy", "psycopg2")
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	for _, s := range rc.shards {
		directExec(t, s, "DROP TABLE IF EXISTS sa_books, sa_authors")
	}
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	keys := rc.intKeys(t, usersRule, 8000, 1)
	ids := []string{strconv.Itoa(keys[0][0]), strconv.Itoa(keys[1][0]), strconv.Itoa(keys[2][0])}
	// Created, checked on every shard, then dropped by the script: run
	// the creation alone first to look at the shards in between.
	out := runPython(t, py, p, "sqlalchemy_create.py", "USER_IDS="+strings.Join(ids, ","))
	for _, want := range []string{"created", "rows 3"} {
		if !strings.Contains(out, want) {
			t.Fatalf("sqlalchemy_create.py output:\n%s", out)
		}
	}
	rc.checkShardRows(t, [][]string{{ids[0]}, {ids[1]}, {ids[2]}}, "SELECT id FROM users")
	every := [][]string{{"2|1|1"}, {"2|1|1"}, {"2|1|1"}}
	probe := `SELECT (SELECT count(*) FROM pg_tables WHERE tablename IN ('sa_books', 'sa_authors')) || '|' ||
		(SELECT count(*) FROM pg_indexes WHERE indexname = 'sa_books_title') || '|' ||
		(SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'sa_books'::regclass)`
	rc.checkShardRows(t, every, probe)
	c := connectRouted(t, p)
	c.mustRun(t, simple, "DROP TABLE sa_books, sa_authors")
	rc.checkShardRows(t, [][]string{{"0"}, {"0"}, {"0"}}, "SELECT count(*) FROM pg_tables WHERE tablename IN ('sa_books', 'sa_authors')")
	rc.noPrepared(t)
}
