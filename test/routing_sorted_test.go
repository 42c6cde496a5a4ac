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

func TestRoutingMultiShardSorted(t *testing.T) {
	rc := routingServers(t)
	checkNoGoroutineLeak(t)
	rc.truncate(t, "orders", "users")
	keys := rc.intKeys(t, ordersRule, 1, 3) // 3 users per shard
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
	c := connectRouted(t, p)
	for _, r := range rows {
		c.mustRun(t, simple, fmt.Sprintf("INSERT INTO orders (user_id, order_id, total) VALUES (%d, %d, %d)", r[0], r[1], r[2]))
	}
	names := []string{"bob", "Alice", "alice", "zoë", "Bob", "carol", "Émile", "dave", "bob"}
	for i, k := range slices.Concat(keys...) {
		c.mustRun(t, simple, fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, '%s')", k, names[i]))
	}

	// The oracle: the same rows in one table of one server.
	ctx := context.Background()
	oracle := superConn(t, rc.shards[0], "postgres")
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
	expect := func(t *testing.T, sql string, args ...any) []string {
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
		for _, mode := range keyModes {
			if mode == simple && len(tc.args) > 0 {
				continue
			}
			r := c.mustRun(t, mode, tc.sql, tc.args...)
			want := expect(t, tc.sql, tc.args...)
			switch {
			case tc.ordered && !slices.Equal(r.rows, want):
				t.Errorf("%s [%s]:\n got  %q\n want %q", tc.sql, modeName(mode), r.rows, want)
			case !tc.ordered && len(r.rows) != len(want):
				t.Errorf("%s [%s]: %d rows, want %d", tc.sql, modeName(mode), len(r.rows), len(want))
			}
			if wantTag := fmt.Sprintf("SELECT %d", len(want)); r.tag != wantTag {
				t.Errorf("%s [%s]: tag %q, want %q", tc.sql, modeName(mode), r.tag, wantTag)
			}
			if !strings.HasPrefix(tc.sql, "SELECT order_id AS o") {
				r.wantRoute(t, routeNotice("primary", 0, 1, 2))
			}
		}
	}
	// Keys pgshard cannot compare as PostgreSQL does are refused, once
	// the shards' column types are known.
	pe, _ := c.mustFail(t, "0A000", simple, "SELECT user_id FROM orders ORDER BY make_interval(days => total)")
	if !strings.Contains(pe.Message, "type OID 1186") {
		t.Errorf("refused with %q; want it to name the type", pe.Message)
	}
	c.checkUsable(t)
	rc.truncate(t, "orders", "users")
}
