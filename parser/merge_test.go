package parser

import (
	"fmt"
	"testing"
)

func TestSorted(t *testing.T) {
	for _, tc := range []struct {
		sql, want, shard string // want "": not mergeable by sorting
	}{
		{"SELECT id, name FROM users ORDER BY id", "keys=[{0 false false}] limit=<nil> offset=<nil> hidden=0", ""},
		{"SELECT id, name FROM users ORDER BY 2 DESC, id NULLS FIRST LIMIT 10", "keys=[{1 true true} {0 false true}] limit=10 offset=<nil> hidden=0", ""},
		{"SELECT id AS k, lower(name) FROM users ORDER BY k DESC NULLS LAST, lower(name)", "keys=[{0 true false} {1 false false}] limit=<nil> offset=<nil> hidden=0", ""},
		{"SELECT id FROM users ORDER BY name, id LIMIT $1 OFFSET $2", "keys=[{-1 false false} {0 false false}] limit=$1 offset=$2 hidden=1",
			"SELECT id, name AS pgshard_sort_1 FROM users ORDER BY name, id LIMIT $1::bigint + $2::bigint"},
		{"SELECT * FROM users ORDER BY name DESC, created_at OFFSET 5", "keys=[{-2 true true} {-1 false false}] limit=<nil> offset=5 hidden=2",
			"SELECT *, name AS pgshard_sort_1, created_at AS pgshard_sort_2 FROM users ORDER BY name DESC, created_at"},
		{"SELECT id FROM users LIMIT 3", "keys=[] limit=3 offset=<nil> hidden=0", ""},
		{"SELECT id FROM users LIMIT ALL OFFSET 2", "keys=[] limit=<nil> offset=2 hidden=0", "SELECT id FROM users LIMIT ALL"},
		{"SELECT * FROM users ORDER BY 2", "", ""},
		{"SELECT DISTINCT id FROM users ORDER BY id", "", ""},
		{"SELECT count(*) FROM users ORDER BY 1", "", ""},
		{"SELECT id FROM users ORDER BY id FETCH FIRST 2 ROWS WITH TIES", "", ""},
		{"SELECT id FROM users ORDER BY id USING >", "", ""},
		{"SELECT id FROM users", "", ""},
	} {
		as, err := Analyze(tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		got := ""
		if s := as[0].Sorted; s != nil {
			str := func(v *Value) string {
				if v == nil {
					return "<nil>"
				}
				return v.String()
			}
			got = fmt.Sprintf("keys=%v limit=%s offset=%s hidden=%d", s.Keys, str(s.Limit), str(s.Offset), s.Hidden)
			if s.Keys == nil {
				got = fmt.Sprintf("keys=[] limit=%s offset=%s hidden=%d", str(s.Limit), str(s.Offset), s.Hidden)
			}
			if s.Rewrite != (tc.shard != "") {
				t.Errorf("%s: Rewrite %v", tc.sql, s.Rewrite)
			}
			if s.Rewrite {
				q, err := ShardQuery(tc.sql)
				if err != nil || q != tc.shard {
					t.Errorf("%s: ShardQuery\n got  %q %v\n want %q", tc.sql, q, err, tc.shard)
				}
			}
		}
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
	}
}

func TestGrouped(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT count(*) FROM users", "cols=[count] keys=[] limit=<nil> offset=<nil>"},
		{"SELECT count(id), sum(total), min(name), max(total), bool_and(ok), every(ok), bool_or(ok) FROM orders", "cols=[count sum min max and and or] keys=[] limit=<nil> offset=<nil>"},
		{"SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC, name LIMIT 3", "cols=[key count] keys=[{1 true true} {0 false false}] limit=3 offset=<nil>"},
		{"SELECT lower(name) AS n, sum(total) s FROM users GROUP BY 1 ORDER BY s OFFSET $1", "cols=[key sum] keys=[{1 false false}] limit=<nil> offset=$1"},
		{"SELECT user_id, count(*) FROM orders GROUP BY user_id", "cols=[key count] keys=[] limit=<nil> offset=<nil>"},
		{"SELECT DISTINCT name, id % 2 FROM users ORDER BY 1", "cols=[key key] keys=[{0 false false}] limit=<nil> offset=<nil>"},
		{"SELECT name FROM users GROUP BY name", "cols=[key] keys=[] limit=<nil> offset=<nil>"},
		{"SELECT avg(total) FROM orders", "cols=[avg count] keys=[] limit=<nil> offset=<nil>"},
		{"SELECT name, avg(total) AS a, count(*) FROM orders GROUP BY name ORDER BY a", "cols=[key avg count count] keys=[{1 false false}] limit=<nil> offset=<nil>"},
		{"SELECT string_agg(name, ',') FROM users", "string_agg()"},
		{"SELECT count(DISTINCT name) FROM users", "aggregates with DISTINCT, ORDER BY, FILTER or OVER"},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > 1", "HAVING"},
		{"SELECT count(*) + 1 FROM users", "expressions over aggregates"},
		{"SELECT name, count(*) FROM users GROUP BY name ORDER BY max(id)", "ORDER BY an expression that is not an output column, with aggregates, GROUP BY or DISTINCT"},
		{"SELECT DISTINCT ON (name) name, id FROM users", "DISTINCT ON"},
		{"SELECT * FROM users ORDER BY id USING <", "ORDER BY ... USING"},
	} {
		as, err := Analyze(tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		a := as[0]
		got := a.NotMergeable
		if g := a.Grouped; g != nil {
			str := func(v *Value) string {
				if v == nil {
					return "<nil>"
				}
				return v.String()
			}
			keys := fmt.Sprint(g.Keys)
			if g.Keys == nil {
				keys = "[]"
			}
			got = fmt.Sprintf("cols=%v keys=%s limit=%s offset=%s", g.Cols, keys, str(g.Limit), str(g.Offset))
		}
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
	}
	q, err := GroupedShardQuery("SELECT name, avg(total), avg(id) AS a FROM t GROUP BY name")
	if want := "SELECT name, pg_catalog.sum(total) AS avg, pg_catalog.sum(id) AS a, pg_catalog.count(total) AS pgshard_avg_count_1, pg_catalog.count(id) AS pgshard_avg_count_2 FROM t GROUP BY name"; err != nil || q != want {
		t.Errorf("GroupedShardQuery:\n got  %q %v\n want %q", q, err, want)
	}
	q, err = GroupedShardQuery("SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC LIMIT 3 OFFSET 1")
	if want := "SELECT name, count(*) FROM users GROUP BY name"; err != nil || q != want {
		t.Errorf("GroupedShardQuery: %q %v, want %q", q, err, want)
	}
}
