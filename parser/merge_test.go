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
	for _, tc := range []struct{ sql, want, shard string }{
		{"SELECT count(*) FROM users", "cols=[count] out=[c0] keys=[] limit=<nil> offset=<nil>", ""},
		{"SELECT count(id), sum(total), min(name), max(total), bool_and(ok), every(ok), bool_or(ok) FROM orders", "cols=[count sum min max and and or] out=[c0 c1 c2 c3 c4 c5 c6] keys=[] limit=<nil> offset=<nil>", ""},
		{"SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC, name LIMIT 3", "cols=[key count] out=[c0 c1] keys=[{1 true true} {0 false false}] limit=3 offset=<nil>",
			"SELECT name, count(*) FROM users GROUP BY name"},
		{"SELECT lower(name) AS n, sum(total) s FROM users GROUP BY 1 ORDER BY s OFFSET $1", "cols=[key sum] out=[c0 c1] keys=[{1 false false}] limit=<nil> offset=$1",
			"SELECT lower(name) AS n, sum(total) AS s FROM users GROUP BY 1"},
		{"SELECT user_id, count(*) FROM orders GROUP BY user_id", "cols=[key count] out=[c0 c1] keys=[] limit=<nil> offset=<nil>", ""},
		{"SELECT DISTINCT name, id % 2 FROM users ORDER BY 1", "cols=[key key] out=[c0 c1] keys=[{0 false false}] limit=<nil> offset=<nil>",
			"SELECT DISTINCT name, id % 2 FROM users"},
		{"SELECT name FROM users GROUP BY name", "cols=[key] out=[c0] keys=[] limit=<nil> offset=<nil>", ""},
		{"SELECT avg(total) FROM orders", "cols=[avg count] out=[avg(c0, c1)] keys=[] limit=<nil> offset=<nil>",
			"SELECT pg_catalog.sum(total) AS avg, pg_catalog.count(total) AS pgshard_merge_1 FROM orders"},
		{"SELECT name, avg(total) AS a, count(*) FROM orders GROUP BY name ORDER BY a", "cols=[key avg count count] out=[c0 avg(c1, c3) c2] keys=[{1 false false}] limit=<nil> offset=<nil>",
			"SELECT name, pg_catalog.sum(total) AS a, count(*), pg_catalog.count(total) AS pgshard_merge_1 FROM orders GROUP BY name"},
		// A GROUP BY key that is not an output column still makes groups.
		{"SELECT count(*) FROM users GROUP BY country", "cols=[count key] out=[c0] keys=[] limit=<nil> offset=<nil>",
			"SELECT count(*), country AS pgshard_merge_1 FROM users GROUP BY country"},
		// HAVING: evaluated on the merged groups, with what it needs added.
		{"SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > 1", "cols=[key count] out=[c0 c1] having=(c1 > 1) keys=[] limit=<nil> offset=<nil>",
			"SELECT name, count(*) FROM users GROUP BY name"},
		{"SELECT name FROM users GROUP BY name HAVING sum(score) >= -5 AND (max(name) <> 'x' OR NOT min(id) IS NULL) AND name IS NOT NULL",
			"cols=[key sum max min] out=[c0] having=((c1 >= -5) AND ((c2 <> \"x\") OR NOT c3 IS NULL) AND c0 IS NOT NULL) keys=[] limit=<nil> offset=<nil>",
			"SELECT name, sum(score) AS pgshard_merge_1, max(name) AS pgshard_merge_2, min(id) AS pgshard_merge_3 FROM users GROUP BY name"},
		{"SELECT count(*) FROM users HAVING avg(score) > 1.5 AND count(*) IN (3, 4)", "cols=[count avg count] out=[c0] having=((avg(c1, c2) > 1.5) AND ((c0 = 3) OR (c0 = 4))) keys=[] limit=<nil> offset=<nil>",
			"SELECT count(*), pg_catalog.sum(score) AS pgshard_merge_1, pg_catalog.count(score) AS pgshard_merge_2 FROM users"},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > $1", "cols=[key count] out=[c0 c1] having=(c1 > $1) keys=[] limit=<nil> offset=<nil>",
			"SELECT name, count(*) FROM users GROUP BY name"},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING name LIKE 'a%'", "HAVING with IN (subquery), LIKE, BETWEEN, IS DISTINCT FROM or another operator pgshard does not evaluate", ""},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING max(id) > (SELECT 1)", "HAVING with a subquery", ""},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING max(id) > length(name)", "HAVING with a function call other than an aggregate", ""},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING id > 1", "HAVING on a column that is not a GROUP BY key", ""},
		// count(DISTINCT x): the shards group by x.
		{"SELECT count(DISTINCT name) FROM users", "cols=[countdistinct] out=[c0] keys=[] limit=<nil> offset=<nil>",
			"SELECT name AS count FROM users GROUP BY name"},
		{"SELECT active, count(DISTINCT country), sum(score) FROM users GROUP BY active HAVING count(DISTINCT country) > 1",
			"cols=[key countdistinct sum] out=[c0 c1 c2] having=(c1 > 1) keys=[] limit=<nil> offset=<nil>",
			"SELECT active, country AS count, sum(score) FROM users GROUP BY active, country"},
		{"SELECT max(DISTINCT score) FROM users", "cols=[max] out=[c0] keys=[] limit=<nil> offset=<nil>", ""},
		{"SELECT sum(DISTINCT score) FROM users", "sum(DISTINCT)", ""},
		// Expressions over aggregates: computed after the merge.
		{"SELECT sum(a) / count(*), max(x) - min(x) AS spread FROM t", "cols=[expr expr sum count max min] out=[(c2 / c3) (c4 - c5)] keys=[] limit=<nil> offset=<nil>",
			"SELECT NULL AS \"?column?\", NULL AS spread, sum(a) AS pgshard_merge_1, count(*) AS pgshard_merge_2, max(x) AS pgshard_merge_3, min(x) AS pgshard_merge_4 FROM t"},
		{"SELECT g, -sum(a) * 2 FROM t GROUP BY g", "cols=[key expr sum] out=[c0 (-c2 * 2)] keys=[] limit=<nil> offset=<nil>",
			"SELECT g, NULL AS \"?column?\", sum(a) AS pgshard_merge_1 FROM t GROUP BY g"},
		{"SELECT string_agg(name, ',') FROM users", "string_agg()", ""},
		{"SELECT count(*) FILTER (WHERE id > 0) FROM users", "aggregates with FILTER", ""},
		{"SELECT lower(max(name)) FROM users", "an output expression with a function call other than an aggregate", ""},
		{"SELECT DISTINCT count(*) FROM users GROUP BY country", "DISTINCT with GROUP BY keys that are not output columns", ""},
		{"SELECT name, count(*) FROM users GROUP BY name ORDER BY max(id)", "ORDER BY an expression that is not an output column, with aggregates, GROUP BY or DISTINCT", ""},
		{"SELECT DISTINCT ON (name) name, id FROM users", "DISTINCT ON", ""},
		{"SELECT * FROM users ORDER BY id USING <", "ORDER BY ... USING", ""},
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
			having := ""
			if g.Having != nil {
				having = " having=" + g.Having.String()
			}
			got = fmt.Sprintf("cols=%v out=%v%s keys=%s limit=%s offset=%s", g.Cols, g.Out, having, keys, str(g.Limit), str(g.Offset))
			if g.Rewrite != (tc.shard != "") {
				t.Errorf("%s: Rewrite %v", tc.sql, g.Rewrite)
			}
			if g.Rewrite {
				q, err := GroupedShardQuery(tc.sql, g)
				if err != nil || q != tc.shard {
					t.Errorf("%s: GroupedShardQuery\n got  %q %v\n want %q", tc.sql, q, err, tc.shard)
				}
			}
		}
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
	}
}

func TestGroupedDistinctKey(t *testing.T) {
	as, err := Analyze("SELECT count(DISTINCT u.id), count(DISTINCT o.status), count(DISTINCT id + 1) FROM users u JOIN orders o ON o.user_id = u.id")
	if err != nil {
		t.Fatal(err)
	}
	g := as[0].Grouped
	if g == nil {
		t.Fatalf("not grouped: %s", as[0].NotMergeable)
	}
	want := []DistinctArg{{0, ColumnRef{TableRef{Name: "users", Alias: "u"}, "id"}}, {1, ColumnRef{TableRef{Name: "orders", Alias: "o"}, "status"}}, {2, ColumnRef{}}}
	if fmt.Sprint(g.Distinct) != fmt.Sprint(want) {
		t.Fatalf("Distinct %v, want %v", g.Distinct, want)
	}
	// The proxy found u.id to be the shard key: its count stays.
	g.Cols[0] = AggCount
	q, err := GroupedShardQuery("SELECT count(DISTINCT u.id), count(DISTINCT o.status), count(DISTINCT id + 1) FROM users u JOIN orders o ON o.user_id = u.id", g)
	if want := "SELECT count(DISTINCT u.id) AS count, o.status AS count, id + 1 AS count FROM users u JOIN orders o ON o.user_id = u.id GROUP BY o.status, id + 1"; err != nil || q != want {
		t.Errorf("GroupedShardQuery:\n got  %q %v\n want %q", q, err, want)
	}
}
