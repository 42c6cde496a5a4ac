package parser

import (
	"fmt"
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		sql, key string
		lits     []string // nil: nothing replaced
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", []string{"42"}},
		{"UPDATE t SET a = a + 5, b = 'x''y' WHERE id IN (1, 2.5, .5e3)", "UPDATE t SET a = a + $1, b = $2 WHERE id IN ($3, $4, $5)", []string{"5", "x'y", "1", "2.5", ".5e3"}},
		{"INSERT INTO t (a, b) VALUES (1, 'a'), (-2, E'b\\'c')", "INSERT INTO t (a, b) VALUES ($1, $2), (-2, E'b\\'c')", []string{"1", "a"}},
		{"select * from t where a like 'x%' and b between 1 and 2 limit 10 offset 20", "select * from t where a like $1 and b between $2 and $3 limit $4 offset $5", []string{"x%", "1", "2", "10", "20"}},
		{"SELECT 1", "SELECT $1", []string{"1"}},
		{"SELECT 1 /* pgshard: key=42 */ -- 7\n", "SELECT $1 /* pgshard: key=42 */ -- 7\n", []string{"1"}},
		{"SELECT a[1] FROM t WHERE x = ANY('{1,2}') AND y = 3::bigint", "SELECT a[$1] FROM t WHERE x = ANY($2) AND y = $3::bigint", []string{"1", "{1,2}", "3"}},
		// Positions in ORDER BY and GROUP BY stay; LIMIT after them does not.
		{"SELECT a, count(*) FROM t WHERE b = 1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3", "SELECT a, count(*) FROM t WHERE b = $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2", []string{"1", "3"}},
		{"SELECT rank() OVER (ORDER BY 1) FROM t WHERE a = 2", "SELECT rank() OVER (ORDER BY 1) FROM t WHERE a = $1", []string{"2"}},
		// Typed literals, prefixed strings, negative numbers, odd numbers.
		{"SELECT interval '1 day', date '2025-01-01', x'1F', b'101', n'x', U&'d\\0061t' FROM t", "", nil},
		{"SELECT -1, - 2, 0x1F, 1abc FROM t", "", nil},
		{"SELECT * FROM t WHERE ts AT TIME ZONE 'UTC' > now()", "", nil},
		{"SELECT * FROM t WHERE a = ANY(5) OR b = all ((6)) OR c = SOME('{7}')", "SELECT * FROM t WHERE a = ANY(5) OR b = all ((6)) OR c = SOME($1)", []string{"{7}"}},
		// Dollar quotes, parameters of its own, no literal at all.
		{"SELECT $$a 'b' 1$$", "", nil},
		{"SELECT $tag$ 1 $tag$ FROM t WHERE a = 1", "SELECT $tag$ 1 $tag$ FROM t WHERE a = $1", []string{"1"}},
		{"SELECT * FROM t WHERE a = $1 AND b = 2", "", nil},
		{"SELECT * FROM t", "", nil},
		{`SELECT "1" FROM t WHERE "a'b" = 'c'`, `SELECT "1" FROM t WHERE "a'b" = $1`, []string{"c"}},
	} {
		key, lits, ok := Normalize([]byte("junk"), []string{"old"}, tc.sql)
		if string(key[:4]) != "junk" || lits[0] != "old" {
			t.Fatalf("%s: Normalize overwrote what dst and lits held", tc.sql)
		}
		key, lits = key[4:], lits[1:]
		if tc.lits == nil {
			if ok || len(key) != 0 || len(lits) != 0 {
				t.Errorf("%s: normalized to %q %q, want it left alone", tc.sql, key, lits)
			}
			continue
		}
		if !ok || string(key) != tc.key || !slices.Equal(lits, tc.lits) {
			t.Errorf("%s:\ngot  %q %q (%v)\nwant %q %q", tc.sql, key, lits, ok, tc.key, tc.lits)
		}
	}
}

// normalizeCorpus adds statements where a careless normalizer would change
// the meaning to the analyser's cases.
var normalizeCorpus = []string{
	"SELECT * FROM users WHERE id = -5",
	"SELECT * FROM users WHERE id = -(5) OR id = - ((6))",
	"SELECT * FROM users WHERE id IN (-1, 2, 3) ORDER BY 1 LIMIT 5",
	"SELECT name, count(*) FROM users GROUP BY 1 HAVING count(*) > 2 ORDER BY 2 DESC",
	"SELECT id, name FROM users WHERE id > 5 ORDER BY 2 DESC, id LIMIT 10 OFFSET 20",
	"SELECT * FROM users ORDER BY name, lower(name) LIMIT 3",
	"SELECT name, count(*), sum(id * 2) FROM users WHERE id > 3 GROUP BY 1 ORDER BY 2 DESC LIMIT 5 OFFSET 1",
	"INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b') ON CONFLICT (id) DO UPDATE SET name = 'c' RETURNING id, 'x'",
	"UPDATE users SET name = 'n' WHERE id = 7 AND tenant = 'acme'",
	"DELETE FROM users WHERE id = ANY('{1,2,3}'::int[])",
	"SELECT * FROM events WHERE created_at = '2025-03-01' AND kind = E'a\\'b'",
	"SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 3 AND o.id = 4",
	"SELECT nextval('misc_seq'), set_config('a', 'b', false) FROM users WHERE id = 1",
	"SELECT 'a'\n'b' FROM users WHERE id = 1",
	"CREATE TABLE x (a varchar(20) DEFAULT 'q' CHECK (a <> 'z'))",
	"SET search_path = 'shard_1'",
}

// TestNormalizeKeepsAnalysis: for every statement of the analyser's tests
// and a corpus of tricky ones, the analysis of the normalized text, with
// each parameter read as its literal, is the analysis of the text itself
// — or the normalized text does not parse, and the cache falls back to the
// text itself.
func TestNormalizeKeepsAnalysis(t *testing.T) {
	sqls := slices.Clone(normalizeCorpus)
	for _, tc := range analyzeCases {
		sqls = append(sqls, tc.sql)
	}
	normalized, fallback := 0, 0
	for _, sql := range sqls {
		key, lits, ok := Normalize(nil, nil, sql)
		if !ok {
			continue
		}
		want, werr := Analyze(sql)
		got, gerr := Analyze(string(key))
		if gerr != nil {
			fallback++
			continue
		}
		normalized++
		if werr != nil {
			continue // the server reports the raw text's error either way
		}
		if g, w := canonical(got, lits), canonical(want, nil); g != w {
			t.Errorf("%s\nnormalized %s changes the analysis:\n got  %s\n want %s", sql, key, g, w)
		}
	}
	t.Logf("%d statements normalized, %d fell back to their own text", normalized, fallback)
	if normalized < 50 {
		t.Errorf("only %d statements normalized", normalized)
	}
}

// canonical prints analyses with literal values and the parameters that
// stand for them (lits) in one form.
func canonical(as []Analysis, lits []string) string {
	val := func(v Value) string {
		switch {
		case v.Kind == ValueParam && lits != nil:
			return "lit(" + lits[v.Param-1] + ")" + v.Cast
		case v.Kind == ValueInt || v.Kind == ValueNumeric || v.Kind == ValueString:
			return "lit(" + v.Text + ")" + v.Cast
		}
		return v.String()
	}
	var out string
	for _, a := range as {
		a.Preds = slices.Clone(a.Preds)
		var preds, ins []string
		for _, p := range a.Preds {
			var vs []string
			for _, v := range p.Values {
				vs = append(vs, val(v))
			}
			// The analyser drops repeated literals; parameters are
			// distinct even when their values are not.
			slices.Sort(vs)
			vs = slices.Compact(vs)
			preds = append(preds, fmt.Sprintf("%v.%s%v=%v", p.Table, p.Column, p.Array, vs))
		}
		for _, in := range a.Inserts {
			var rows []string
			for _, r := range in.Rows {
				for _, v := range r {
					rows = append(rows, val(v))
				}
			}
			ins = append(ins, fmt.Sprintf("%v%v%v", in.Table, in.Columns, rows))
		}
		sorted := "-"
		if s := a.Sorted; s != nil {
			opt := func(v *Value) string {
				if v == nil {
					return "none"
				}
				return val(*v)
			}
			sorted = fmt.Sprintf("%v limit=%s offset=%s hidden=%d rewrite=%v", s.Keys, opt(s.Limit), opt(s.Offset), s.Hidden, s.Rewrite)
		}
		if g := a.Grouped; g != nil {
			opt := func(v *Value) string {
				if v == nil {
					return "none"
				}
				return val(*v)
			}
			sorted += fmt.Sprintf(" grouped=%v %v limit=%s offset=%s", g.Cols, g.Keys, opt(g.Limit), opt(g.Offset))
		}
		out += fmt.Sprintf("{%v ro=%v concat=%v sorted=%s funcs=%v user=%v tables=%v joins=%v hint=%v assigned=%v preds=%v inserts=%v}",
			a.Kind, a.ReadOnly, a.Concat, sorted, a.Functions, a.UserFunctions, a.Tables, a.Joins, a.Hint, a.Assigned, preds, ins)
	}
	return out
}
