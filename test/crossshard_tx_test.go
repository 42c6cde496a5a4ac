package test

// Transactions that span shards (two-phase commit), DDL run on every
// shard, and recovery of prepared transactions a crash left behind. Every
// check looks at the shards directly.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// noPrepared fails the test if any shard still holds a prepared
// transaction.
func (rc *routingCluster) noPrepared(t testing.TB) {
	t.Helper()
	for i, rows := range rc.onShards(t, "SELECT gid FROM pg_prepared_xacts") {
		if len(rows) > 0 {
			t.Errorf("shard %d: prepared transactions left: %q", i, rows)
		}
	}
}

func TestCrossShardTransaction(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "misc")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 1000, 2)
	k0, k1, k2 := keys[0][0], keys[1][0], keys[2][0]

	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(modeName(mode), func(t *testing.T) {
			rc.truncate(t, "users")
			// COMMIT: every shard has its rows, nothing stays prepared.
			c.mustRun(t, simple, "BEGIN")
			c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'a')", k0)
			c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'b')", k1)
			r := c.mustRun(t, mode, "SELECT id FROM users WHERE id = $1", k0)
			r.wantRows(t, strconv.Itoa(k0))
			// A statement on every shard inside the transaction sees the
			// transaction's own rows and joins the third shard.
			c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'c')", k2)
			r = c.mustRun(t, mode, "UPDATE users SET name = name || $1", "!")
			r.wantTag(t, "UPDATE 3")
			c.mustRun(t, mode, "COMMIT")
			rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|a!", k0)}, {fmt.Sprintf("%d|b!", k1)}, {fmt.Sprintf("%d|c!", k2)}}, "SELECT id, name FROM users")
			rc.noPrepared(t)

			// ROLLBACK: no shard keeps anything.
			c.mustRun(t, simple, "BEGIN")
			c.mustRun(t, mode, "UPDATE users SET name = 'x' WHERE id = $1", k0)
			c.mustRun(t, mode, "DELETE FROM users WHERE id = $1", k1)
			c.mustRun(t, mode, "ROLLBACK")
			rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|a!", k0)}, {fmt.Sprintf("%d|b!", k1)}, {fmt.Sprintf("%d|c!", k2)}}, "SELECT id, name FROM users")
			rc.noPrepared(t)

			// An error on one shard fails the whole transaction; COMMIT
			// then rolls back everywhere.
			c.mustRun(t, simple, "BEGIN")
			c.mustRun(t, mode, "UPDATE users SET name = 'y' WHERE id = $1", k0)
			c.mustFail(t, "23505", mode, "INSERT INTO users (id, name) VALUES ($1, 'dup')", k1)
			c.mustFail(t, "25P02", mode, "SELECT id FROM users WHERE id = $1", k0)
			r = c.mustRun(t, simple, "COMMIT")
			r.wantTag(t, "ROLLBACK")
			rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|a!", k0)}, {fmt.Sprintf("%d|b!", k1)}, {fmt.Sprintf("%d|c!", k2)}}, "SELECT id, name FROM users")
			c.checkUsable(t)
		})
	}

	// pgx's own transactions (BEGIN, statements, COMMIT through pgx.Tx).
	rc.truncate(t, "users")
	ctx := context.Background()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []int{k0, k1, k2} {
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", k, "tx"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|tx0", k0)}, {fmt.Sprintf("%d|tx1", k1)}, {fmt.Sprintf("%d|tx2", k2)}}, "SELECT id, name FROM users")
	rc.noPrepared(t)

	// Savepoints reach every shard of the transaction.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'sp' WHERE id = %d", k0))
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'sp' WHERE id = %d", k1))
	c.mustRun(t, simple, "SAVEPOINT a")
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'undone' WHERE id = %d", k0))
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'undone' WHERE id = %d", k2))
	c.mustRun(t, simple, "ROLLBACK TO SAVEPOINT a")
	c.mustRun(t, simple, "RELEASE a")
	c.mustRun(t, simple, "COMMIT")
	rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|sp", k0)}, {fmt.Sprintf("%d|sp", k1)}, {fmt.Sprintf("%d|tx2", k2)}}, "SELECT id, name FROM users")
	rc.noPrepared(t)

	// A savepoint taken while the transaction was on one shard holds on
	// the shards it reaches later.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'b' WHERE id = %d", k0))
	c.mustRun(t, simple, "SAVEPOINT b")
	c.mustRun(t, simple, fmt.Sprintf("UPDATE users SET name = 'undone' WHERE id = %d", k2))
	c.mustRun(t, simple, "ROLLBACK TO SAVEPOINT b")
	c.mustRun(t, simple, "COMMIT")
	rc.checkShardRows(t, [][]string{{fmt.Sprintf("%d|b", k0)}, {fmt.Sprintf("%d|sp", k1)}, {fmt.Sprintf("%d|tx2", k2)}}, "SELECT id, name FROM users")
	rc.noPrepared(t)
}

// TestCrossShardPrepareFails: when one shard cannot prepare (a deferred
// unique constraint fails there), COMMIT fails with that shard's error and
// no shard keeps anything.
func TestCrossShardPrepareFails(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "misc")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 2000, 1)
	// misc lives on the default shard s0; users rows on s1 make s1 the
	// coordinator, s0 a participant whose PREPARE fails.
	for _, s := range rc.shards {
		directExec(t, s, "ALTER TABLE misc DROP CONSTRAINT IF EXISTS misc_note_key; ALTER TABLE misc ADD CONSTRAINT misc_note_key UNIQUE (note) DEFERRABLE INITIALLY DEFERRED")
	}
	t.Cleanup(func() {
		for _, s := range rc.shards {
			directExec(t, s, "ALTER TABLE misc DROP CONSTRAINT IF EXISTS misc_note_key")
		}
	})
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'kept?')", keys[1][0]))
	c.mustRun(t, simple, "INSERT INTO misc (id, note) VALUES (1, 'same'), (2, 'same')")
	pe, _ := c.mustFail(t, "23505", simple, "COMMIT")
	if !strings.Contains(pe.Message, "s0") {
		t.Errorf("error %q does not name the shard", pe.Message)
	}
	rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM users")
	rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM misc")
	rc.noPrepared(t)
	c.checkUsable(t)
}

// TestCrossShardDDL: schema changes run on every shard, in autocommit and
// inside a transaction (committed with the rest, or rolled back), and
// VACUUM, which cannot run in a transaction block, runs on each.
func TestCrossShardDDL(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := connectRouted(t, p)
	exists := "SELECT count(*) FROM pg_class WHERE relname = 'ddl_t'"
	every := func(n string) [][]string { return [][]string{{n}, {n}, {n}} }

	c.mustRun(t, simple, "DROP TABLE IF EXISTS ddl_t")
	c.mustRun(t, simple, "CREATE TABLE ddl_t (id int PRIMARY KEY, v text)")
	rc.checkShardRows(t, every("1"), exists)
	r := c.mustRun(t, simple, "CREATE INDEX ddl_t_v ON ddl_t (v)")
	r.wantTag(t, "CREATE INDEX")
	rc.checkShardRows(t, every("1"), "SELECT count(*) FROM pg_indexes WHERE indexname = 'ddl_t_v'")
	c.mustRun(t, pgx.QueryExecModeExec, "ALTER TABLE ddl_t ADD COLUMN w int")
	rc.checkShardRows(t, every("1"), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ddl_t' AND column_name = 'w'")
	c.mustRun(t, simple, "COMMENT ON TABLE ddl_t IS 'everywhere'")
	rc.checkShardRows(t, every("everywhere"), "SELECT obj_description('ddl_t'::regclass)")
	c.mustRun(t, simple, "VACUUM ANALYZE ddl_t")
	c.mustRun(t, simple, "CREATE INDEX CONCURRENTLY ddl_t_w ON ddl_t (w)")
	rc.checkShardRows(t, every("1"), "SELECT count(*) FROM pg_indexes WHERE indexname = 'ddl_t_w'")

	// A failing DDL changes no shard.
	for _, s := range rc.shards[2:] {
		directExec(t, s, "CREATE TABLE ddl_clash (x int)")
	}
	c.mustFail(t, "42P07", simple, "CREATE TABLE ddl_clash (x int)")
	rc.checkShardRows(t, [][]string{{"0"}, {"0"}, {"1"}}, "SELECT count(*) FROM pg_class WHERE relname = 'ddl_clash'")
	directExec(t, rc.shards[2], "DROP TABLE ddl_clash")

	// In a transaction, with rows: committed together...
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, "CREATE TABLE ddl_tx (id int)")
	c.mustRun(t, simple, "INSERT INTO ddl_tx VALUES (1)")
	c.mustRun(t, simple, "COMMIT")
	rc.checkShardRows(t, every("1"), "SELECT count(*) FROM pg_class WHERE relname = 'ddl_tx'")
	rc.checkShardRows(t, [][]string{{"1"}, nil, nil}, "SELECT id FROM ddl_tx")
	// ...or rolled back together.
	c.mustRun(t, simple, "BEGIN")
	c.mustRun(t, simple, "DROP TABLE ddl_tx")
	c.mustRun(t, simple, "DROP TABLE ddl_t")
	c.mustRun(t, simple, "ROLLBACK")
	rc.checkShardRows(t, every("1"), exists)
	c.mustRun(t, simple, "DROP TABLE ddl_tx, ddl_t")
	rc.checkShardRows(t, every("0"), exists)
	rc.noPrepared(t)
}

// TestTwoPhaseRecovery: prepared transactions left by a crashed pgshard
// (made here by hand, as it would have left them) are decided when a
// pgshard with the same instance id starts: committed where the
// coordinator committed the decision, rolled back where it did not.
func TestTwoPhaseRecovery(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	// The decision table exists once a pgshard has started.
	startRoutingProxy(t, rc, routingOptions{noNotices: true, instanceID: "crashed"})
	keys := rc.intKeys(t, usersRule, 3000, 2)
	// Transaction ids of their own, so that the test can run again while
	// the decisions of an earlier run are not cleaned yet.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	gid := func(xid string, part int) string { return fmt.Sprintf("pgshard:crashed:%s%s:%d", xid, run, part) }
	prepare := func(shard, id int, gid string) {
		directExec(t, rc.shards[shard], fmt.Sprintf("SET ROLE app; BEGIN; INSERT INTO users (id, name) VALUES (%d, 'r'); PREPARE TRANSACTION '%s'", id, gid))
	}
	// xid A: coordinator (part 0, shard 0) committed its decision; part 1
	// on shard 1 and part 2 on shard 2 are left prepared.
	directExec(t, rc.shards[0], fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'r'); INSERT INTO pgshard.commit_decisions (xid) VALUES ('crashed:A%s')", keys[0][0], run))
	prepare(1, keys[1][0], gid("A", 1))
	prepare(2, keys[2][0], gid("A", 2))
	// xid B: everything prepared, the coordinator too: not decided.
	prepare(0, keys[0][1], gid("B", 0))
	prepare(1, keys[1][1], gid("B", 1))
	// xid C: the coordinator never prepared (no decision): roll back.
	prepare(2, keys[2][1], gid("C", 1))
	// Another instance's, recent: left alone.
	other := "pgshard:other:D" + run + ":1"
	prepare(1, 3999999, other)
	t.Cleanup(func() { directExec(t, rc.shards[1], "ROLLBACK PREPARED '"+other+"'") })

	startRoutingProxy(t, rc, routingOptions{noNotices: true, instanceID: "crashed"})
	rc.checkShardRows(t, [][]string{{strconv.Itoa(keys[0][0])}, {strconv.Itoa(keys[1][0])}, {strconv.Itoa(keys[2][0])}}, "SELECT id FROM users WHERE id < 3999999")
	rc.checkShardRows(t, [][]string{nil, {other}, nil}, "SELECT gid FROM pg_prepared_xacts")
}

// TestCrossShardCopy: COPY FROM STDIN into a sharded table sends each
// row to its shard (text, csv with a header, binary through pgx), all or
// nothing; inside a transaction it is part of it; COPY TO STDOUT gathers
// every shard's rows with one header.
func TestCrossShardCopy(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users", "countries")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := connectRouted(t, p)
	ctx := context.Background()
	keys := rc.intKeys(t, usersRule, 5000, 3)
	var all []int
	for _, ks := range keys {
		all = append(all, ks...)
	}
	copyIn := func(sql, data string) (pgconn.CommandTag, error) {
		return c.PgConn().CopyFrom(ctx, strings.NewReader(data), sql)
	}
	placed := map[string]int{}

	// Text format, rows of every shard.
	var b strings.Builder
	for _, k := range all[:5] {
		fmt.Fprintf(&b, "%d\tt%d\n", k, k)
	}
	tag, err := copyIn("COPY users (id, name) FROM STDIN", b.String())
	if err != nil || tag.String() != "COPY 5" {
		t.Fatalf("COPY text: %v, %v", tag, err)
	}
	// CSV with a header, no column list (key position from the catalog).
	b.Reset()
	b.WriteString("id,name\n")
	for _, k := range all[5:] {
		fmt.Fprintf(&b, "%d,\"c,%d\"\n", k, k)
	}
	if tag, err = copyIn("COPY users FROM STDIN WITH (FORMAT csv, HEADER true)", b.String()); err != nil || tag.String() != fmt.Sprintf("COPY %d", len(all)-5) {
		t.Fatalf("COPY csv: %v, %v", tag, err)
	}
	for s, ks := range keys {
		for _, k := range ks {
			placed[strconv.Itoa(k)] = s
		}
	}
	rc.checkPlacement(t, "users", "id", placed)
	rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM users WHERE name NOT IN ('t' || id, 'c,' || id)")

	// Bad data on one row: nothing of the COPY stays anywhere.
	fresh := rc.intKeys(t, usersRule, 6000, 1)
	_, err = copyIn("COPY users (id, name) FROM STDIN", fmt.Sprintf("%d\tok\n%d\tok\nnot-a-number\tbad\n", fresh[0][0], fresh[1][0]))
	if sqlstate(err) != "22P02" {
		t.Fatalf("COPY with a bad key: %v, want 22P02", err)
	}
	// A shard's own error (a duplicate key) fails it too.
	_, err = copyIn("COPY users (id, name) FROM STDIN", fmt.Sprintf("%d\tok\n%d\tdup\n", fresh[0][0], keys[2][0]))
	if sqlstate(err) != "23505" {
		t.Fatalf("COPY with a duplicate: %v, want 23505", err)
	}
	rc.checkPlacement(t, "users", "id", placed)
	c.checkUsable(t)

	// Binary, through pgx's CopyFrom, in a transaction rolled back, then
	// committed.
	rowsOf := func(ids ...int) [][]any {
		var out [][]any
		for _, id := range ids {
			out = append(out, []any{int32(id), "bin" + strconv.Itoa(id)})
		}
		return out
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "name"}, pgx.CopyFromRows(rowsOf(fresh[0][0], fresh[1][0], fresh[2][0])))
	if err != nil || n != 3 {
		t.Fatalf("binary COPY in a transaction: %d, %v", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	rc.checkPlacement(t, "users", "id", placed)
	n, err = c.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "name"}, pgx.CopyFromRows(rowsOf(fresh[0][0], fresh[1][0], fresh[2][0])))
	if err != nil || n != 3 {
		t.Fatalf("binary COPY: %d, %v", n, err)
	}
	for s, ks := range fresh {
		placed[strconv.Itoa(ks[0])] = s
	}
	rc.checkPlacement(t, "users", "id", placed)
	rc.noPrepared(t)

	// A replicated table: every copy gets every row, counted once.
	if tag, err = copyIn("COPY countries FROM STDIN", "fr\tFrance\nde\tGermany\n"); err != nil || tag.String() != "COPY 2" {
		t.Fatalf("COPY into a replicated table: %v, %v", tag, err)
	}
	rc.checkEverywhere(t, []string{"de|Germany", "fr|France"}, "SELECT code || '|' || name FROM countries")

	// COPY TO STDOUT: every shard's rows, one header.
	var out bytes.Buffer
	tag, err = c.PgConn().CopyTo(ctx, &out, "COPY users (id) TO STDOUT WITH (FORMAT csv, HEADER)")
	if err != nil || tag.String() != fmt.Sprintf("COPY %d", len(placed)) {
		t.Fatalf("COPY TO: %v, %v", tag, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "id" || len(lines) != len(placed)+1 {
		t.Fatalf("COPY TO gave %d lines starting %q, want a header and %d rows", len(lines), lines[0], len(placed))
	}
	got := map[string]int{}
	for _, l := range lines[1:] {
		got[l] = placed[l]
	}
	if len(got) != len(placed) {
		t.Errorf("COPY TO rows %v, want the keys of %v", lines[1:], placed)
	}
	out.Reset()
	if _, err = c.PgConn().CopyTo(ctx, &out, "COPY (SELECT id FROM users WHERE name LIKE 'bin%') TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("COPY (SELECT) TO: %q, want 3 rows", out.String())
	}
	// Binary COPY TO: one signature and one trailer around every shard's
	// tuples; PostgreSQL itself reads it back.
	out.Reset()
	if _, err = c.PgConn().CopyTo(ctx, &out, "COPY users (id, name) TO STDOUT (FORMAT binary)"); err != nil {
		t.Fatal(err)
	}
	direct := superConn(t, rc.shards[0], "app")
	if _, err := direct.Exec(ctx, "CREATE TEMP TABLE back (id int, name text)"); err != nil {
		t.Fatal(err)
	}
	if tag, err := direct.PgConn().CopyFrom(ctx, bytes.NewReader(out.Bytes()), "COPY back FROM STDIN (FORMAT binary)"); err != nil || tag.RowsAffected() != int64(len(placed)) {
		t.Fatalf("binary COPY TO output read back: %v, %v", tag, err)
	}
	c.checkUsable(t)
}

// TestCrossShardTransactionDeny: with cross_shard: deny a transaction
// cannot reach a second shard; the refusal fails it and nothing of it is
// committed.
func TestCrossShardTransactionDeny(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true, crossShard: "deny"})
	c := connectRouted(t, p)
	keys := rc.intKeys(t, usersRule, 7000, 1)
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec} {
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'a')", keys[0][0])
		pe, _ := c.mustFail(t, "0A000", mode, "INSERT INTO users (id, name) VALUES ($1, 'b')", keys[1][0])
		if !strings.Contains(pe.Message, "cross_shard: deny") {
			t.Errorf("message %q does not name the setting", pe.Message)
		}
		c.mustFail(t, "25P02", mode, "SELECT id FROM users WHERE id = $1", keys[0][0])
		c.mustRun(t, simple, "COMMIT").wantTag(t, "ROLLBACK")
		rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM users")
		c.checkUsable(t)
	}
}

// TestCrossShardMergeMemory: a merge that must hold every group fails with
// 54000 past max_merge_memory, and the connection goes on.
func TestCrossShardMergeMemory(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	keys := usersOnShards(t, rc, 9000, 40)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true, maxMergeMemory: "2kB"})
	c := connectRouted(t, p)
	pe, _ := c.mustFail(t, "54000", simple, "SELECT name, count(*) FROM users GROUP BY name")
	if !strings.Contains(pe.Message, "max_merge_memory") {
		t.Errorf("message %q does not name the setting", pe.Message)
	}
	c.checkUsable(t)
	// Few groups fit.
	r := c.mustRun(t, simple, "SELECT count(*) FROM users")
	r.wantRows(t, strconv.Itoa(len(keys)*40))
}

// TestCrossShardCancel: a cancel request stops a statement running on
// several shards on each of them, and the connection goes on.
func TestCrossShardCancel(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	usersOnShards(t, rc, 9500, 1)
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	c := &routedConn{Conn: pgxConnect(t, p.url("app", "app", "app"), withCancelRequests)}
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeExec} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		_, err := c.Exec(ctx, "SELECT id FROM users WHERE pg_sleep(20) IS NOT NULL", mode)
		cancel()
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("[%s] the canceled statement ran %s", modeName(mode), took)
		}
		if sqlstate(err) != "57014" && !strings.Contains(fmt.Sprint(err), "context deadline") {
			t.Errorf("[%s] canceled statement: %v, want 57014", modeName(mode), err)
		}
		c.checkUsable(t)
		// No shard still runs it.
		for i, rows := range rc.onShards(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND state = 'active' AND pid <> pg_backend_pid()") {
			if rows[0] != "0" {
				t.Errorf("[%s] shard %d still runs the statement", modeName(mode), i)
			}
		}
	}
}

// TestCrossShardParkedBackendDies: a backend that dies while it waits,
// parked, in a transaction that spans shards (its server restarted, or an
// administrator ended it) fails the client's next statement on those
// shards with 08006 instead of hanging it; the transaction then rolls
// back everywhere and the session goes on. The soak found the hang: a
// statement scattered to every shard waited forever for the dead
// backend's reply.
func TestCrossShardParkedBackendDies(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "users")
	p := startRoutingProxy(t, rc, routingOptions{noNotices: true})
	keys := rc.intKeys(t, usersRule, 3000, 1)
	k0, k1 := keys[0][0], keys[1][0]
	ctx := t.Context()
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
		t.Run(modeName(mode), func(t *testing.T) {
			c := connectRouted(t, p)
			c.mustRun(t, simple, "BEGIN")
			c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'a')", k0)
			c.mustRun(t, mode, "INSERT INTO users (id, name) VALUES ($1, 'b')", k1)
			// The transaction holds a backend on s1 (the client's now) and
			// one parked on s0; s0's goes.
			pid, err := rc.shards[0].QueryInt(ctx, "postgres",
				"SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'")
			if err != nil {
				t.Fatalf("the transaction's backend on s0: %v", err)
			}
			if err := rc.shards[0].Exec(ctx, "postgres", "SELECT pg_terminate_backend($1, 5000)", pid); err != nil {
				t.Fatal(err)
			}
			// pgshard reads the backend's FATAL and its end on its own; give
			// it the moment it takes, so the statement below finds the
			// backend gone rather than racing with its end (either way it
			// must fail).
			time.Sleep(200 * time.Millisecond)
			c.mustFail(t, "08006", mode, "SELECT count(*) FROM users")
			r := c.mustRun(t, simple, "COMMIT")
			r.wantTag(t, "ROLLBACK")
			c.checkUsable(t)
			rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM users")
			rc.noPrepared(t)
		})
	}
}
