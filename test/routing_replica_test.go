package test

// Replicas (read_write_split: true): which statements s0's streaming
// replica serves, read-your-writes, and what happens when the replica is
// down or lags behind.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitReplicaCaughtUp waits until s0's replica has replayed all the WAL s0
// has written so far. (The insert position, not pg_current_wal_lsn(): with
// synchronous_commit off a commit may still be in WAL buffers.)
func (rc *routingCluster) waitReplicaCaughtUp(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	lsn, err := rc.shards[0].QueryString(ctx, "postgres", "SELECT pg_current_wal_insert_lsn()")
	if err != nil {
		t.Fatalf("s0 directly: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := rc.replica.QueryString(ctx, "postgres", "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn)
		if err == nil && ok == "t" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica has not replayed s0's WAL up to %s within 15s (%s, %v)", lsn, ok, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replicaLag is how many bytes of WAL s0 has written that its replica has
// not replayed.
func (rc *routingCluster) replicaLag(t testing.TB) int64 {
	t.Helper()
	ctx := context.Background()
	lsn, err := rc.shards[0].QueryString(ctx, "postgres", "SELECT pg_current_wal_insert_lsn()")
	if err != nil {
		t.Fatalf("s0 directly: %v", err)
	}
	n, err := rc.replica.QueryInt(ctx, "postgres", "SELECT pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::bigint", lsn)
	if err != nil {
		t.Fatalf("replica directly: %v", err)
	}
	return n
}

// pollRoute runs sql on c until its route notice is want, for up to
// timeout, and returns that result; what, in the failure message, says
// what was awaited.
func pollRoute(t testing.TB, c *routedConn, timeout time.Duration, what, want, sql string, args ...any) result {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last result
	var lastErr error
	for {
		last, lastErr = c.run(simple, sql, args...)
		if lastErr == nil && len(last.routes) == 1 && last.routes[0] == want {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: within %v, %s never got route notice %q; last try: rows %q, notices %q, error %v",
				what, timeout, sql, want, last.rows, last.routes, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicaReadWriteSplit: autocommit reads of s0 go to its replica
// (the notice says so, and pg_is_in_recovery() through pgshard is true);
// writes, DDL, locking reads, CTEs with DML, nextval, user functions not
// listed as read-only and everything in a read-write transaction go to the
// primary; READ ONLY transactions go to the replica; a shard without
// replicas serves reads from its primary.
func TestReplicaReadWriteSplit(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "misc", "calls")
	keys := rc.intKeys(t, usersRule, 1, 3)
	k0, k1 := keys[0][0], keys[1][0]
	directExec(t, rc.shards[0], "INSERT INTO users VALUES ($1, 'Zero@Example.com')", k0)
	directExec(t, rc.shards[1], "INSERT INTO users VALUES ($1, 'one')", k1)
	directExec(t, rc.shards[0], "INSERT INTO misc VALUES (1, 'm'); DROP TABLE IF EXISTS ddl_probe, select_into_probe")
	t.Cleanup(func() { directExec(t, rc.shards[0], "DROP TABLE IF EXISTS ddl_probe, select_into_probe") })
	rc.waitReplicaCaughtUp(t)
	p := startRoutingProxy(t, rc, routingOptions{readWriteSplit: true})
	replica, primary := routeNotice("replica", 0), routeNotice("primary", 0)
	{
		c := connectRouted(t, p)
		pollRoute(t, c, 10*time.Second, "a fresh client's read", replica, "SELECT note FROM misc WHERE id = 1")
	}

	key := strconv.Itoa(k0)
	cases := []struct {
		name   string
		before []string          // run first in the simple protocol, not checked
		mode   pgx.QueryExecMode // zero: simple
		sql    string            // its first column is pg_is_in_recovery()
		args   []any
		rows   []string // the other columns
		route  string
		after  []string
	}{
		{name: "key read", sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + key,
			rows: []string{"Zero@Example.com"}, route: replica},
		{name: "key read, text parameter", mode: pgx.QueryExecModeExec, sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = $1",
			args: []any{k0}, rows: []string{"Zero@Example.com"}, route: replica},
		{name: "key read, binary parameter", mode: pgx.QueryExecModeCacheStatement, sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = $1",
			args: []any{k0}, rows: []string{"Zero@Example.com"}, route: replica},
		{name: "table no rule names", sql: "SELECT pg_is_in_recovery(), note FROM misc WHERE id = 1",
			rows: []string{"m"}, route: replica},
		{name: "built-in functions", sql: "SELECT pg_is_in_recovery(), upper(name), length(name) FROM users WHERE id = " + key,
			rows: []string{"ZERO@EXAMPLE.COM", "16"}, route: replica},
		{name: "function listed in read_only_functions", sql: "SELECT pg_is_in_recovery(), lower_email(name) FROM users WHERE id = " + key,
			rows: []string{"zero@example.com"}, route: replica},
		{name: "shard without replicas", sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + strconv.Itoa(k1),
			rows: []string{"one"}, route: routeNotice("primary", 1)},
		{name: "FOR UPDATE", sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + key + " FOR UPDATE",
			rows: []string{"Zero@Example.com"}, route: primary},
		{name: "FOR SHARE", sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + key + " FOR SHARE",
			rows: []string{"Zero@Example.com"}, route: primary},
		{name: "CTE with DML", sql: "WITH u AS (UPDATE misc SET note = note WHERE id = 1 RETURNING note) SELECT pg_is_in_recovery(), note FROM u",
			rows: []string{"m"}, route: primary},
		{name: "nextval", sql: "SELECT pg_is_in_recovery(), nextval('misc_seq') > 0 FROM users WHERE id = " + key,
			rows: []string{"t"}, route: primary},
		{name: "user function not listed", sql: "SELECT pg_is_in_recovery(), record_call() FROM users WHERE id = " + key,
			rows: []string{"1"}, route: primary},
		{name: "write", sql: fmt.Sprintf("INSERT INTO users VALUES (%d, 'written') RETURNING pg_is_in_recovery(), name", keys[0][1]),
			rows: []string{"written"}, route: primary},
		{name: "write, binary parameters", mode: pgx.QueryExecModeCacheStatement, sql: "UPDATE users SET name = $1 WHERE id = $2 RETURNING pg_is_in_recovery(), name",
			args: []any{"rewritten", keys[0][1]}, rows: []string{"rewritten"}, route: primary},
		{name: "read in a transaction", before: []string{"BEGIN"}, sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + key,
			rows: []string{"Zero@Example.com"}, route: primary, after: []string{"COMMIT"}},
		{name: "read in a transaction, binary parameter", before: []string{"BEGIN"}, mode: pgx.QueryExecModeCacheStatement,
			sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = $1", args: []any{k0},
			rows: []string{"Zero@Example.com"}, route: primary, after: []string{"COMMIT"}},
		{name: "BEGIN READ ONLY", before: []string{"BEGIN READ ONLY"}, sql: "SELECT pg_is_in_recovery(), name FROM users WHERE id = " + key,
			rows: []string{"Zero@Example.com"}, route: replica, after: []string{"COMMIT"}},
		{name: "START TRANSACTION READ ONLY", before: []string{"START TRANSACTION READ ONLY"}, sql: "SELECT pg_is_in_recovery(), note FROM misc WHERE id = 1",
			rows: []string{"m"}, route: replica, after: []string{"COMMIT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := connectRouted(t, p) // a client without writes of its own
			for _, sql := range tc.before {
				c.mustRun(t, simple, sql)
			}
			mode := tc.mode
			if mode == 0 {
				mode = simple
			}
			r := c.mustRun(t, mode, tc.sql, tc.args...)
			recovery := "f"
			if strings.HasSuffix(tc.route, "(replica)") {
				recovery = "t"
			}
			r.wantRows(t, strings.Join(append([]string{recovery}, tc.rows...), "|"))
			r.wantRoute(t, tc.route)
			for _, sql := range tc.after {
				c.mustRun(t, simple, sql)
			}
		})
	}
	if n := directRows(t, rc.shards[0], "SELECT count(*) FROM calls"); n[0] != "1" {
		t.Errorf("s0 directly: record_call() ran %s times on the primary, want 1", n[0])
	}

	t.Run("scattered", func(t *testing.T) {
		// Each shard of a multi-shard read is read where a one-shard
		// read would be; a multi-shard write goes to every primary.
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
			c := connectRouted(t, p)
			sql, args := fmt.Sprintf("SELECT pg_is_in_recovery(), name FROM users WHERE id IN (%d, %d)", k0, k1), []any(nil)
			if mode != simple {
				sql, args = "SELECT pg_is_in_recovery(), name FROM users WHERE id = ANY($1)", []any{[]int32{int32(k0), int32(k1)}}
			}
			r := c.mustRun(t, mode, sql, args...)
			r.wantRows(t, "t|Zero@Example.com", "f|one")
			r.wantRoute(t, "routed to s0 (replica), s1 (primary)")
			r = c.mustRun(t, mode, fmt.Sprintf("UPDATE users SET name = name WHERE id IN (%d, %d) RETURNING pg_is_in_recovery(), name", k0, k1))
			r.wantRows(t, "f|Zero@Example.com", "f|one")
			r.wantRoute(t, routeNotice("primary", 0, 1))
		}
	})

	t.Run("DDL", func(t *testing.T) {
		c := connectRouted(t, p)
		// DDL runs on every shard's primary; SELECT ... INTO of a table
		// no rule names on the default shard's.
		r := c.mustRun(t, simple, "CREATE TABLE ddl_probe (a int)")
		r.wantRoute(t, routeNotice("primary", 0, 1, 2))
		t.Cleanup(func() {
			for _, s := range rc.shards {
				directExec(t, s, "DROP TABLE IF EXISTS ddl_probe")
			}
		})
		r = c.mustRun(t, simple, "SELECT pg_is_in_recovery() AS r INTO select_into_probe FROM misc")
		r.wantRoute(t, primary)
		for i, s := range rc.shards {
			want := []string{"t|f"}
			if i == 0 {
				want = []string{"t|t"}
			}
			if got := directRows(t, s, "SELECT to_regclass('ddl_probe') IS NOT NULL, to_regclass('select_into_probe') IS NOT NULL"); got[0] != want[0] {
				t.Errorf("%s directly: the tables made through pgshard exist: %s, want %s (ddl_probe everywhere, select_into_probe only on the default shard's primary)", shardName(i), got[0], want[0])
			}
		}
		if got := directRows(t, rc.shards[0], "SELECT r FROM select_into_probe"); len(got) != 1 || got[0] != "f" {
			t.Errorf("SELECT ... INTO ran with pg_is_in_recovery() = %q, want false (on the primary)", got)
		}
	})
}

// TestReplicaReadYourWrites: with read_your_writes: lsn, a client that
// has just committed a write always reads it back, however soon, even when
// its reads may go to the replica; another client's reads do go to the
// replica meanwhile, and the writer's do too once the replica has caught
// up.
func TestReplicaReadYourWrites(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "rywlog")
	rc.waitReplicaCaughtUp(t)
	p := startRoutingProxy(t, rc, routingOptions{readWriteSplit: true})
	writer, other := connectRouted(t, p), connectRouted(t, p)
	replica, primary := routeNotice("replica", 0), routeNotice("primary", 0)
	pollRoute(t, other, 10*time.Second, "a client without writes", replica, "SELECT count(*) FROM rywlog")

	const n = 200
	served := map[string]int{}
	otherServed := map[string]int{}
	misses := 0
	for i := range n {
		mode := simple
		if i%2 == 1 {
			mode = pgx.QueryExecModeCacheStatement
		}
		r := writer.mustRun(t, mode, "INSERT INTO rywlog (id, note) VALUES ($1, $2)", i, "w"+strconv.Itoa(i))
		r.wantRoute(t, primary)
		r = writer.mustRun(t, mode, "SELECT note FROM rywlog WHERE id = $1", i)
		route := strings.Join(r.routes, "; ")
		served[route]++
		if len(r.rows) != 1 || r.rows[0] != "w"+strconv.Itoa(i) {
			misses++
			if misses <= 5 {
				t.Errorf("read %d [%s] right after its commit got %q (route notices %q); want the row just written", i, modeName(mode), r.rows, r.routes)
			}
		}
		if last := len(r.routes) - 1; last < 0 || (mode == simple && last > 0) || r.routes[last] != replica && r.routes[last] != primary {
			t.Errorf("read %d [%s]: route notices %q, want %q or %q", i, modeName(mode), r.routes, replica, primary)
		}
		if i%10 == 0 {
			r = other.mustRun(t, simple, "SELECT count(*) FROM rywlog")
			otherServed[strings.Join(r.routes, "; ")]++
		}
	}
	t.Logf("the writer's %d reads: %v; the other client's: %v", n, served, otherServed)
	if misses > 0 {
		t.Errorf("%d of %d reads missed the client's own write", misses, n)
	}
	if otherServed[replica] == 0 {
		t.Errorf("none of the other client's reads went to the replica: %v", otherServed)
	}
	rc.checkShardRows(t, [][]string{{strconv.Itoa(n)}, {"0"}, {"0"}}, "SELECT count(*) FROM rywlog")

	// Once the replica has replayed the writer's writes, its reads go there.
	rc.waitReplicaCaughtUp(t)
	r := pollRoute(t, writer, 10*time.Second, "the writer's read once the replica caught up", replica, "SELECT note FROM rywlog WHERE id = $1", n-1)
	r.wantRows(t, "w"+strconv.Itoa(n-1))
}

// TestReplicaDown: with the replica killed, reads of s0 fall back to its
// primary and succeed; once it is back they go to it again.
func TestReplicaDown(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "misc")
	directExec(t, rc.shards[0], "INSERT INTO misc VALUES (1, 'm')")
	rc.waitReplicaCaughtUp(t)
	p := startRoutingProxy(t, rc, routingOptions{readWriteSplit: true})
	c := connectRouted(t, p)
	replica, primary := routeNotice("replica", 0), routeNotice("primary", 0)
	const probe = "SELECT pg_is_in_recovery(), note FROM misc WHERE id = 1"
	pollRoute(t, c, 10*time.Second, "before the kill", replica, probe)
	// Open a few more clients so the replica's pool holds several
	// connections when it dies.
	for range 3 {
		pollRoute(t, connectRouted(t, p), 10*time.Second, "before the kill", replica, probe)
	}

	if err := rc.replica.Kill(); err != nil {
		t.Fatal(err)
	}
	down := true
	t.Cleanup(func() {
		if down {
			if err := rc.replica.Restart(context.Background()); err != nil {
				t.Errorf("restarting the replica: %v", err)
			}
		}
	})
	for i := range 10 {
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
			cl := c
			if i%3 == 1 {
				cl = connectRouted(t, p)
			}
			r, err := cl.run(mode, "SELECT pg_is_in_recovery(), note FROM misc WHERE id = $1", 1)
			if err != nil {
				t.Fatalf("read %d [%s] with the replica down: %v (route notices %q); it should have gone to the primary", i, modeName(mode), err, r.routes)
			}
			r.wantRows(t, "f|m")
			r.wantRoute(t, primary)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rc.replica.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	down = false
	r := pollRoute(t, c, 30*time.Second, "after the replica's restart", replica, probe)
	r.wantRows(t, "t|m")
	r = pollRoute(t, connectRouted(t, p), 30*time.Second, "a new client after the replica's restart", replica, probe)
	r.wantRows(t, "t|m")
}

// TestReplicaLagging: a replica further behind than max_replica_lag is
// skipped (reads go to the primary) until it catches up.
func TestReplicaLagging(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "misc", "lagfill")
	directExec(t, rc.shards[0], "INSERT INTO misc VALUES (1, 'm')")
	rc.waitReplicaCaughtUp(t)
	p := startRoutingProxy(t, rc, routingOptions{readWriteSplit: true, maxReplicaLag: "64kB"})
	c := connectRouted(t, p)
	replica, primary := routeNotice("replica", 0), routeNotice("primary", 0)
	const probe = "SELECT pg_is_in_recovery(), note FROM misc WHERE id = 1"
	pollRoute(t, c, 10*time.Second, "before the replica lags", replica, probe).wantRows(t, "t|m")

	ctx := context.Background()
	if err := rc.replica.Exec(ctx, "postgres", "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := rc.replica.Exec(context.Background(), "postgres", "SELECT pg_wal_replay_resume()"); err != nil {
				t.Errorf("resuming replay on the replica: %v", err)
			}
		}
	}
	t.Cleanup(func() {
		resume()
		rc.truncate(t, "lagfill")
	})
	// About 1MB of WAL on s0, not replayed.
	directExec(t, rc.shards[0], "INSERT INTO lagfill SELECT g, repeat('x', 1000) FROM generate_series(1, 1000) g")
	if lag := rc.replicaLag(t); lag < 256<<10 {
		t.Fatalf("the replica is only %d bytes behind after the paused replay; the test needs it well past 64kB", lag)
	}
	pollRoute(t, c, 15*time.Second, fmt.Sprintf("with the replica %d bytes behind (max_replica_lag 64kB)", rc.replicaLag(t)), primary, probe)
	for range 5 {
		for _, cl := range []*routedConn{c, connectRouted(t, p)} {
			r := cl.mustRun(t, simple, probe)
			r.wantRows(t, "f|m")
			r.wantRoute(t, primary)
		}
	}

	resume()
	rc.waitReplicaCaughtUp(t)
	pollRoute(t, c, 15*time.Second, "after the replica caught up", replica, probe).wantRows(t, "t|m")
}
