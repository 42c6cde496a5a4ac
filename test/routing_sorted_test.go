package test

// Multi-shard SELECTs with ORDER BY, LIMIT and OFFSET: the shards' sorted
// streams are merged by pgshard. Each statement's result through pgshard
// must equal, row for row, what one PostgreSQL server holding all the rows
// returns for it (a copy of the rows in one table on s0's postgres
// database).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// mergeFixture loads orders and users through pgshard onto the 3 shards
// (s2's users with one order each, totals with duplicates and negatives)
// and the same rows into one table of one server, the oracle. expect runs
// a statement on the oracle.
func mergeFixture(t *testing.T) (rc *routingCluster, c *routedConn, keys [][]int, expect func(t *testing.T, sql string, args ...any) []string, oracle *pgx.Conn) {
	rc = routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "orders", "users")
	keys = rc.intKeys(t, ordersRule, 1, 3) // 3 users per shard
	// Orders: totals with duplicates and negatives; s2's users have only
	// one order each.
	var rows [][3]int
	for s, ks := range keys {
		for j, k := range ks {
			n := 3
			if s == 2 {
				n = 1
			}
			for o := 1; o <= n; o++ {
				rows = append(rows, [3]int{k, o, ((k*7+o*13)%11 - 4) * (1 + j%2)})
			}
		}
	}
	p := startRoutingProxy(t, rc, routingOptions{})
	c = connectRouted(t, p)
	for _, r := range rows {
		c.mustRun(t, simple, fmt.Sprintf("INSERT INTO orders (user_id, order_id, total) VALUES (%d, %d, %d)", r[0], r[1], r[2]))
	}
	names := []string{"bob", "Alice", "alice", "zoë", "Bob", "carol", "Émile", "dave", "bob"}
	for i, k := range slices.Concat(keys...) {
		c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, '%s')", k, names[i]))
	}

	// The oracle: the same rows in one table of one server.
	ctx := context.Background()
	oracle = superConn(t, rc.shards[0], "postgres")
	if _, err := oracle.Exec(ctx, `DROP TABLE IF EXISTS orders, users;
		CREATE TABLE orders (user_id bigint NOT NULL, order_id integer NOT NULL, total integer NOT NULL DEFAULT 0, PRIMARY KEY (user_id, order_id));
		CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oracle.Exec(context.Background(), "DROP TABLE IF EXISTS orders, users") })
	for _, r := range rows {
		if _, err := oracle.Exec(ctx, "INSERT INTO orders VALUES ($1, $2, $3)", r[0], r[1], r[2]); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range slices.Concat(keys...) {
		if _, err := oracle.Exec(ctx, "INSERT INTO users VALUES ($1, $2)", k, names[i]); err != nil {
			t.Fatal(err)
		}
	}
	expect = func(t *testing.T, sql string, args ...any) []string {
		t.Helper()
		rs, err := oracle.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
		if err != nil {
			t.Fatalf("oracle: %s: %v", sql, err)
		}
		got, err := textRows(rs)
		if err != nil {
			t.Fatalf("oracle: %s: %v", sql, err)
		}
		return got
	}

	t.Cleanup(func() { rc.truncate(t, "orders", "users") })
	return rc, c, keys, expect, oracle
}

func TestRoutingMultiShardSorted(t *testing.T) {
	_, c, keys, expect, _ := mergeFixture(t)
	two := fmt.Sprintf("%d, %d, %d", keys[0][0], keys[1][1], keys[1][2])
	for _, tc := range []struct {
		sql     string
		args    []any
		ordered bool // the ORDER BY fixes the order of every row
	}{
		{"SELECT user_id, order_id, total FROM orders ORDER BY total DESC, user_id, order_id", nil, true},
		{"SELECT user_id, order_id, total FROM orders ORDER BY total, order_id DESC, user_id LIMIT 5", nil, true},
		{"SELECT user_id, order_id, total FROM orders ORDER BY 3 DESC, 1, 2 LIMIT 4 OFFSET 3", nil, true},
		{"SELECT user_id, order_id FROM orders ORDER BY total, user_id DESC, order_id LIMIT 6 OFFSET 2", nil, true},
		{"SELECT * FROM orders ORDER BY total DESC, user_id DESC, order_id DESC LIMIT 3", nil, true},
		{"SELECT order_id AS o, user_id FROM orders WHERE user_id IN (" + two + ") ORDER BY o DESC, user_id", nil, true},
		{"SELECT user_id, total FROM orders ORDER BY total * -1, user_id, order_id OFFSET 10", nil, true},
		{"SELECT user_id, order_id FROM orders ORDER BY user_id, order_id LIMIT $1 OFFSET $2", []any{4, 2}, true},
		{"SELECT user_id, order_id FROM orders ORDER BY user_id LIMIT 0", nil, true},
		{"SELECT user_id, order_id FROM orders WHERE total > 100 ORDER BY user_id", nil, true},
		{"SELECT name, id FROM users ORDER BY name DESC, id LIMIT 5", nil, true},
		{"SELECT id FROM users ORDER BY name, id", nil, true},
		{"SELECT user_id FROM orders LIMIT 3", nil, false},
	} {
		checkLikeOracle(t, c, expect, tc.sql, tc.ordered, tc.args...)
	}
	// Keys pgshard cannot compare as PostgreSQL does are refused, once
	// the shards' column types are known.
	pe, _ := c.mustFail(t, "0A000", simple, "SELECT user_id FROM orders ORDER BY make_interval(days => total)")
	if !strings.Contains(pe.Message, "type OID 1186") {
		t.Errorf("refused with %q; want it to name the type", pe.Message)
	}
	c.checkUsable(t)
}

// checkLikeOracle runs sql through pgshard in every mode (the simple
// protocol only without args) and checks it returns what the oracle
// returns: the same rows (in the same order when ordered) and tag, routed
// to every shard.
func checkLikeOracle(t *testing.T, c *routedConn, expect func(t *testing.T, sql string, args ...any) []string, sql string, ordered bool, args ...any) {
	t.Helper()
	want := expect(t, sql, args...)
	for _, mode := range keyModes {
		if mode == simple && len(args) > 0 {
			continue
		}
		r, err := c.run(mode, sql, args...)
		if err != nil {
			t.Errorf("%s [%s] %v: %v", sql, modeName(mode), args, err)
			continue
		}
		got, w := r.rows, want
		if !ordered {
			got, w = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(w))
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s [%s]:\n got  %q\n want %q", sql, modeName(mode), r.rows, want)
		}
		if wantTag := fmt.Sprintf("SELECT %d", len(want)); r.tag != wantTag {
			t.Errorf("%s [%s]: tag %q, want %q", sql, modeName(mode), r.tag, wantTag)
		}
		if !strings.Contains(sql, " IN (") {
			r.wantRoute(t, routeNotice("primary", 0, 1, 2))
		}
	}
}

// TestRoutingMultiShardGrouped: aggregates, GROUP BY and DISTINCT over
// several shards combine the shards' partial results into exactly what one
// server holding all the rows returns, in both protocols and result
// formats.
func TestRoutingMultiShardGrouped(t *testing.T) {
	_, c, keys, expect, oracle := mergeFixture(t)
	in := fmt.Sprintf("%d, %d, %d", keys[0][0], keys[2][1], keys[2][2])
	for _, tc := range []struct {
		sql     string
		args    []any
		ordered bool
	}{
		{"SELECT count(*) FROM orders", nil, true},
		{"SELECT count(*), count(total), sum(total), min(total), max(total), min(order_id), max(user_id) FROM orders", nil, true},
		{"SELECT sum(total::numeric / 3), sum(total::float8 / 4), sum(user_id), bool_and(total > -5), bool_or(total > 5), every(order_id < 3) FROM orders", nil, true},
		{"SELECT count(*), sum(total), min(total) FROM orders WHERE total > 1000", nil, true},
		{"SELECT user_id, count(*), sum(total) FROM orders GROUP BY user_id", nil, false},
		{"SELECT order_id, count(*) AS n, sum(total) FROM orders GROUP BY order_id ORDER BY n DESC, order_id", nil, true},
		{"SELECT total % 3 AS r, count(*), min(user_id) FROM orders GROUP BY 1 ORDER BY 1 LIMIT 2", nil, true},
		{"SELECT total, count(*) FROM orders GROUP BY total ORDER BY total DESC LIMIT $1 OFFSET $2", []any{3, 1}, true},
		{"SELECT DISTINCT order_id FROM orders ORDER BY order_id", nil, true},
		{"SELECT DISTINCT total % 2, order_id FROM orders", nil, false},
		{"SELECT name, count(*) FROM users GROUP BY name ORDER BY name", nil, true},
		{"SELECT min(name), max(name), count(DISTINCT name), count(DISTINCT id) FROM users WHERE id IN (" + in + ")", nil, true},
		{"SELECT user_id, count(*) FROM orders GROUP BY user_id HAVING count(*) > 1", nil, false},
		{"SELECT count(*) + 1, sum(total) / count(*) FROM orders", nil, true},
		{"SELECT (total > 0) AS pos, count(*) FROM orders GROUP BY pos ORDER BY pos", nil, true},
		{"SELECT avg(total), avg(user_id), avg(total::numeric / 7), avg(total::float8), avg(order_id::smallint) FROM orders", nil, true},
		{"SELECT order_id, avg(total) AS a, count(*) FROM orders GROUP BY order_id ORDER BY a DESC, order_id", nil, true},
		{"SELECT avg(total) FROM orders WHERE total > 1000", nil, true},
	} {
		checkLikeOracle(t, c, expect, tc.sql, tc.ordered, tc.args...)
	}
	// Binary results (pgx's default for these types): the values pgshard
	// encodes decode to what the oracle sends.
	ctx := context.Background()
	for _, sql := range []string{
		"SELECT count(*), sum(total), sum(total::numeric / 3), sum(total::numeric * 1000000), sum(total::float8 / 4), sum(total::float4), bool_and(total > -5), min(user_id), max(order_id::smallint), min(order_id) FROM orders",
		"SELECT order_id, sum(total - 0.5), avg(total) FROM orders GROUP BY order_id ORDER BY order_id",
	} {
		var got, want []string
		for i, conn := range []interface {
			Query(context.Context, string, ...any) (pgx.Rows, error)
		}{c.Conn, oracle} {
			rows, err := conn.Query(ctx, sql, pgx.QueryExecModeCacheStatement)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					t.Fatal(err)
				}
				line := fmt.Sprintf("%#v", vals)
				if i == 0 {
					got = append(got, line)
				} else {
					want = append(want, line)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s in binary format:\n got  %q\n want %q", sql, got, want)
		}
	}

	// Not merged yet: refused with 0A000, never answered wrongly.
	// avg of float4 sums in float4 on each shard, where PostgreSQL would use
	// float8: refused once the shards' column types are known.
	if pe, _ := c.mustFail(t, "0A000", simple, "SELECT avg(total::float4) FROM orders"); !strings.Contains(pe.Message, "avg") {
		t.Errorf("avg(float4) refused with %q", pe.Message)
	}
	for _, sql := range []string{
		"SELECT user_id, count(*) FROM orders GROUP BY user_id HAVING sum(total) BETWEEN 1 AND 5",
		"SELECT abs(sum(total)) FROM orders",
	} {
		c.mustFailUnrouted(t, "0A000", simple, sql)
	}
}
