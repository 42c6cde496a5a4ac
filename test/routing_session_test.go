package test

// Routing that depends on more than one statement's text: hints (comments,
// SET pgshard.shard / pgshard.key, SET LOCAL) and transactions, which run
// on the shard of their first keyed statement.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// hintFixture fills users, misc and logs directly with different contents
// on each shard, so that a count or a note tells which shard answered:
// users has s+1 rows on shard s, logs s+3, and misc one row (id 1) whose
// note is "on s<s>". It returns where key 42 goes under the users and the
// logs rules.
func hintFixture(t testing.TB, rc *routingCluster) (users42, logs42 int) {
	t.Helper()
	rc.truncate(t, "users", "misc", "logs")
	for s := range 3 {
		directExec(t, rc.shards[s], "INSERT INTO users SELECT g, 'fixture' FROM generate_series(9001, 9001 + $1) g", s)
		directExec(t, rc.shards[s], "INSERT INTO logs SELECT g, 'fixture' FROM generate_series(1, $1) g", s+3)
		directExec(t, rc.shards[s], "INSERT INTO misc VALUES (1, $1)", "on "+shardName(s))
	}
	return rc.owners(t, usersRule, "42")["42"], rc.owners(t, logsRule, "42")["42"]
}

// TestRoutingHintComments: a /* pgshard: shard=... */ or -- pgshard:
// comment runs the statement on that shard; key=... routes it as that key
// would under the rule of the statement's sharded table. Both protocols.
func TestRoutingHintComments(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	users42, logs42 := hintFixture(t, rc)
	p := startRoutingProxy(t, rc, routingOptions{})
	c := connectRouted(t, p)

	cases := []struct {
		sql   string
		rows  []string
		shard int
	}{
		{"/* pgshard: shard=s1 */ SELECT note FROM misc", []string{"on s1"}, 1},
		{"SELECT note FROM misc /* pgshard: shard=s2 */", []string{"on s2"}, 2},
		{"-- pgshard: shard=s1\nSELECT note FROM misc", []string{"on s1"}, 1},
		{"/* pgshard: shard='s2' */ SELECT note FROM misc", []string{"on s2"}, 2},
		{"/* pgshard: shard=s0 */ SELECT note FROM misc", []string{"on s0"}, 0},
		{"/* pgshard: shard=s2 */ SELECT current_setting('port')", []string{strconv.Itoa(rc.shards[2].Port())}, 2},
		{"/* pgshard: shard=s1 */ SELECT current_setting('port')", []string{strconv.Itoa(rc.shards[1].Port())}, 1},
		// A pinned shard needs no merging: aggregates are fine.
		{"/* pgshard: shard=s1 */ SELECT count(*) FROM users", []string{"2"}, 1},
		{"/* pgshard: shard=s2 */ SELECT count(*) FROM logs", []string{"5"}, 2},
		// key=42 under the users rule (3 shards) and the logs rule (s1, s2).
		{"/* pgshard: key=42 */ SELECT count(*) FROM users", []string{strconv.Itoa(users42 + 1)}, users42},
		{"/* pgshard: key=42 */ SELECT count(*) FROM logs", []string{strconv.Itoa(logs42 + 3)}, logs42},
		{"SELECT count(*) FROM logs -- pgshard: key=42", []string{strconv.Itoa(logs42 + 3)}, logs42},
	}
	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
		for _, tc := range cases {
			r := c.mustRun(t, mode, tc.sql)
			r.wantRows(t, tc.rows...)
			r.wantRoute(t, routeNotice("primary", tc.shard))
		}
	}

	// Writes follow hints too.
	r := c.mustRun(t, simple, "/* pgshard: shard=s2 */ INSERT INTO misc VALUES (2, 'hinted')")
	r.wantTag(t, "INSERT 0 1")
	r.wantRoute(t, routeNotice("primary", 2))
	r = c.mustRun(t, pgx.QueryExecModeCacheStatement, "/* pgshard: shard=s1 */ INSERT INTO misc VALUES ($1, $2)", 3, "hinted by param")
	r.wantRoute(t, routeNotice("primary", 1))
	r = c.mustRun(t, simple, "/* pgshard: key=42 */ UPDATE users SET name = 'touched'")
	r.wantTag(t, fmt.Sprintf("UPDATE %d", users42+1))
	r.wantRoute(t, routeNotice("primary", users42))
	rc.checkShardRows(t, [][]string{{"1|on s0"}, {"1|on s1", "3|hinted by param"}, {"1|on s2", "2|hinted"}}, "SELECT id || '|' || note FROM misc")
	want := make([][]string, 3)
	for s := range 3 {
		name := "fixture"
		if s == users42 {
			name = "touched"
		}
		want[s] = slices.Repeat([]string{name}, s+1)
	}
	rc.checkShardRows(t, want, "SELECT name FROM users")
}

// TestRoutingHintSettings: SET pgshard.shard sends the following
// statements to that shard until RESET; SET LOCAL until the transaction
// ends; SET pgshard.key routes as that key would.
func TestRoutingHintSettings(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	users42, logs42 := hintFixture(t, rc)
	p := startRoutingProxy(t, rc, routingOptions{})
	port := func(s int) string { return strconv.Itoa(rc.shards[s].Port()) }

	t.Run("shard", func(t *testing.T) {
		c := connectRouted(t, p)
		c.mustRun(t, simple, "SET pgshard.shard = 's2'")
		for range 3 { // several statements, each on whatever backend the pool gives
			for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
				r := c.mustRun(t, mode, "SELECT note FROM misc")
				r.wantRows(t, "on s2")
				r.wantRoute(t, routeNotice("primary", 2))
				r = c.mustRun(t, mode, "SELECT count(*) FROM users")
				r.wantRows(t, "3")
				r.wantRoute(t, routeNotice("primary", 2))
				r = c.mustRun(t, mode, "SELECT current_setting('port')")
				r.wantRows(t, port(2))
				r.wantRoute(t, routeNotice("primary", 2))
			}
		}
		c.mustRun(t, simple, "SET pgshard.shard TO 's1'")
		r := c.mustRun(t, simple, "SELECT note FROM misc")
		r.wantRows(t, "on s1")
		r.wantRoute(t, routeNotice("primary", 1))
		c.mustRun(t, simple, "RESET pgshard.shard")
		r = c.mustRun(t, simple, "SELECT note FROM misc")
		r.wantRows(t, "on s0")
		r.wantRoute(t, routeNotice("primary", 0))
		c.mustRun(t, simple, "SELECT count(*) FROM users").wantRoute(t, routeNotice("primary", 0, 1, 2))
	})

	t.Run("local", func(t *testing.T) {
		c := connectRouted(t, p)
		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, "SET LOCAL pgshard.shard = 's1'")
		r := c.mustRun(t, simple, "SELECT note FROM misc")
		r.wantRows(t, "on s1")
		r.wantRoute(t, routeNotice("primary", 1))
		r = c.mustRun(t, pgx.QueryExecModeCacheStatement, "INSERT INTO misc VALUES ($1, $2)", 10, "set local")
		r.wantRoute(t, routeNotice("primary", 1))
		c.mustRun(t, simple, "COMMIT")
		r = c.mustRun(t, simple, "SELECT note FROM misc WHERE id = 1")
		r.wantRows(t, "on s0")
		r.wantRoute(t, routeNotice("primary", 0))

		c.mustRun(t, simple, "BEGIN")
		c.mustRun(t, simple, "SET LOCAL pgshard.shard = 's2'")
		r = c.mustRun(t, simple, "INSERT INTO misc VALUES (11, 'rolled back')")
		r.wantRoute(t, routeNotice("primary", 2))
		c.mustRun(t, simple, "ROLLBACK")
		r = c.mustRun(t, simple, "SELECT note FROM misc WHERE id = 1")
		r.wantRows(t, "on s0")
		r.wantRoute(t, routeNotice("primary", 0))
		rc.checkShardRows(t, [][]string{{"1|on s0"}, {"1|on s1", "10|set local"}, {"1|on s2"}}, "SELECT id || '|' || note FROM misc")
	})

	t.Run("key", func(t *testing.T) {
		c := connectRouted(t, p)
		c.mustRun(t, simple, "SET pgshard.key = '42'")
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
			r := c.mustRun(t, mode, "SELECT count(*) FROM users")
			r.wantRows(t, strconv.Itoa(users42+1))
			r.wantRoute(t, routeNotice("primary", users42))
			r = c.mustRun(t, mode, "SELECT count(*) FROM logs")
			r.wantRows(t, strconv.Itoa(logs42+3))
			r.wantRoute(t, routeNotice("primary", logs42))
		}
		c.mustRun(t, simple, "RESET pgshard.key")
		c.mustRun(t, simple, "SELECT count(*) FROM users").wantRoute(t, routeNotice("primary", 0, 1, 2))
	})

	t.Run("unknown shard", func(t *testing.T) {
		c := connectRouted(t, p)
		check := func(pe *pgconn.PgError) {
			t.Helper()
			text := pe.Message + " " + pe.Detail + " " + pe.Hint
			for _, name := range []string{"s0", "s1", "s2"} {
				if !strings.Contains(text, name) {
					t.Errorf("error %q (detail %q, hint %q) does not name shard %s; it should name the known shards", pe.Message, pe.Detail, pe.Hint, name)
				}
			}
			if !strings.Contains(text, "s9") {
				t.Logf("error %q does not name the unknown shard s9", pe.Message)
			}
		}
		for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
			check(c.mustFailUnrouted(t, "22023", mode, "/* pgshard: shard=s9 */ SELECT 1"))
			c.checkUsable(t)
			check(c.mustFailUnrouted(t, "22023", mode, "/* pgshard: shard=s9 */ SELECT note FROM misc"))
			c.checkUsable(t)
		}
		check(c.mustFailUnrouted(t, "22023", simple, "SET pgshard.shard = 's9'"))
		c.checkUsable(t)
		// The failed SET changed nothing.
		r := c.mustRun(t, simple, "SELECT note FROM misc WHERE id = 1")
		r.wantRows(t, "on s0")
		r.wantRoute(t, routeNotice("primary", 0))
	})
}

// TestRoutingTransactions: BEGIN picks no shard; the first statement with
// a key binds the transaction to its shard and the later ones run there;
// a statement needing another shard makes the transaction span shards,
// and a rolled-back one leaves nothing anywhere.
func TestRoutingTransactions(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	p := startRoutingProxy(t, rc, routingOptions{})
	txStatus := func(t *testing.T, c *routedConn, want byte) {
		t.Helper()
		if got := c.PgConn().TxStatus(); got != want {
			t.Errorf("transaction status %q, want %q", got, want)
		}
	}

	for _, mode := range []pgx.QueryExecMode{simple, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := connectRouted(t, p)
			status := func(t *testing.T, want byte) { t.Helper(); txStatus(t, c, want) }
			// begin sends sql, BEGIN or START TRANSACTION, which pgshard
			// answers without a shard.
			begin := func(t *testing.T, sql string) {
				t.Helper()
				r := c.mustRun(t, simple, sql)
				r.wantTag(t, sql)
				r.wantRoute(t, "")
				status(t, 'T')
			}
			rc.truncate(t, "users", "misc")
			keys := rc.intKeys(t, usersRule, 1, 4)
			ins := "INSERT INTO users (id, name) VALUES ($1, $2)"

			// Rolled back: nothing anywhere.
			begin(t, "BEGIN")
			r := c.mustRun(t, mode, ins, keys[1][0], "rb")
			r.wantRoute(t, routeNotice("primary", 1))
			r = c.mustRun(t, mode, ins, keys[1][1], "rb")
			r.wantRoute(t, routeNotice("primary", 1))
			r = c.mustRun(t, mode, "SELECT name FROM users WHERE id = $1", keys[1][0])
			r.wantRows(t, "rb") // uncommitted: the same transaction on the same shard
			r.wantRoute(t, routeNotice("primary", 1))
			r = c.mustRun(t, mode, "SELECT current_setting('port')")
			r.wantRows(t, strconv.Itoa(rc.shards[1].Port()))
			c.mustRun(t, simple, "ROLLBACK").wantTag(t, "ROLLBACK")
			status(t, 'I')
			rc.checkPlacement(t, "users", "id", map[string]int{})

			// Committed: on the transaction's shard only.
			begin(t, "BEGIN")
			r = c.mustRun(t, mode, ins, keys[2][0], "c1")
			r.wantRoute(t, routeNotice("primary", 2))
			r = c.mustRun(t, mode, "UPDATE users SET name = $1 WHERE id = $2", "c1 updated", keys[2][0])
			r.wantTag(t, "UPDATE 1")
			r.wantRoute(t, routeNotice("primary", 2))
			r = c.mustRun(t, mode, ins, keys[2][1], "c2")
			r.wantRoute(t, routeNotice("primary", 2))
			r = c.mustRun(t, mode, "SELECT 1")
			r.wantRows(t, "1")
			c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
			status(t, 'I')
			rc.checkPlacement(t, "users", "id", map[string]int{strconv.Itoa(keys[2][0]): 2, strconv.Itoa(keys[2][1]): 2})
			rc.checkShardRows(t, [][]string{nil, nil, {fmt.Sprintf("%d|c1 updated", keys[2][0]), fmt.Sprintf("%d|c2", keys[2][1])}}, "SELECT id || '|' || name FROM users")

			// Another shard's key: refused, the transaction failed, nothing
			// of it committed.
			for _, other := range []struct {
				sql  string
				args []any
			}{
				{ins, []any{keys[1][2], "other shard"}},
				{"SELECT name FROM users WHERE id = $1", []any{keys[1][2]}},
				{"SELECT name FROM users WHERE id IN ($1, $2)", []any{keys[0][3], keys[1][3]}},
			} {
				begin(t, "START TRANSACTION")
				r = c.mustRun(t, mode, ins, keys[0][2], "first")
				r.wantRoute(t, routeNotice("primary", 0))
				c.mustRun(t, mode, other.sql, other.args...) // the transaction spans shards now
				status(t, 'T')
				c.mustRun(t, simple, "ROLLBACK").wantTag(t, "ROLLBACK")
				status(t, 'I')
				c.checkUsable(t)
				rc.checkShardRows(t, [][]string{nil, nil, {fmt.Sprintf("%d|c1 updated", keys[2][0]), fmt.Sprintf("%d|c2", keys[2][1])}}, "SELECT id || '|' || name FROM users")
			}

			// A statement on a table no rule names binds the transaction
			// to the default shard.
			begin(t, "BEGIN")
			r = c.mustRun(t, mode, "INSERT INTO misc VALUES ($1, $2)", 1, "default shard")
			r.wantRoute(t, routeNotice("primary", 0))
			c.mustRun(t, mode, ins, keys[2][3], "other shard")
			c.mustRun(t, simple, "ROLLBACK")
			rc.checkShardRows(t, [][]string{nil, nil, nil}, "SELECT id FROM misc")

			// Empty transactions touch no shard and get no notice.
			for _, end := range []string{"COMMIT", "ROLLBACK"} {
				begin(t, "BEGIN")
				r = c.mustRun(t, simple, end)
				r.wantTag(t, end)
				r.wantRoute(t, "")
				status(t, 'I')
			}

			// Statements without a table, outside and inside transactions.
			r = c.mustRun(t, mode, "SELECT 1")
			r.wantRows(t, "1")
			begin(t, "BEGIN")
			c.mustRun(t, mode, "SELECT 1").wantRows(t, "1")
			c.mustRun(t, simple, "COMMIT").wantTag(t, "COMMIT")
			status(t, 'I')
		})
	}

	// pgx's own transaction API, binary parameters.
	t.Run("pgx.Tx", func(t *testing.T) {
		c := connectRouted(t, p)
		rc.truncate(t, "users")
		keys := rc.intKeys(t, usersRule, 1000, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[0] {
			if _, err := tx.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", k, "tx"); err != nil {
				t.Fatalf("insert %d: %v", k, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		want := map[string]int{strconv.Itoa(keys[0][0]): 0, strconv.Itoa(keys[0][1]): 0}
		rc.checkPlacement(t, "users", "id", want)

		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", keys[1][0], "tx"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", keys[2][0], "tx"); err != nil {
			t.Fatalf("insert on another shard in the transaction: %v", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, name) VALUES ($1, $2)", keys[2][0], "dup"); sqlstate(err) != "23505" {
			t.Fatalf("duplicate insert: %v, want SQLSTATE 23505", err)
		}
		if err := tx.Commit(ctx); err == nil {
			t.Error("COMMIT of the failed transaction succeeded")
		} else if !errors.Is(err, pgx.ErrTxCommitRollback) {
			t.Logf("COMMIT of the failed transaction: %v (PostgreSQL answers ROLLBACK, which pgx reports as ErrTxCommitRollback)", err)
		}
		rc.checkPlacement(t, "users", "id", want)
		c.checkUsable(t)
	})
}
