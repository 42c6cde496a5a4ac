package proxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// testRoutes is three shards with a rule of each kind; key types given, so
// no catalog is needed.
func testRoutes(t testing.TB) *routes {
	d := &Database{
		Name:   "app",
		Shards: []Shard{{Name: "s0"}, {Name: "s1"}, {Name: "s2"}},
		Tables: []TableRule{
			{Name: "users", Key: "id", Method: "hash", KeyType: "bigint"},
			{Pattern: "^(orders|order_items)$", Key: "user_id", Method: "hash", KeyType: "bigint"},
			{Name: "events", Key: "day", Method: "range", KeyType: "date",
				Ranges: []Range{{To: "2025-01-01", Shard: "s0"}, {From: "2025-01-01", Shard: "s2"}}},
			{Name: "tenants", Key: "tenant", Method: "list", KeyType: "text",
				Lists: map[string][]string{"s0": {"acme"}, "s1": {"globex"}}},
			{Name: "countries", Replicated: true},
		},
	}
	rt, err := newRoutes(d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// shardOf is where PostgreSQL's hash partitioning puts an int key of 3.
func shardOf(t testing.TB, k int64) int {
	h, _ := routing.NewHash(routing.KeyInt, 3)
	i, err := h.Shard(fmt.Sprint(k))
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestDecide(t *testing.T) {
	rt := testRoutes(t)
	s7, s8 := shardOf(t, 7), shardOf(t, 8)
	both := []int{s7, s8}
	slices.Sort(both)
	both = slices.Compact(both)
	all := []int{0, 1, 2}
	for _, tc := range []struct {
		sql    string
		params []any // int64 (binary) or string (text)
		hint   hints
		shards []int
		write  bool
		concat bool
		code   string // error SQLSTATE, or "reject"
	}{
		{sql: "SELECT * FROM users WHERE id = 7", shards: []int{s7}, concat: true},
		{sql: "SELECT * FROM users u WHERE u.id = 7 AND u.name = 'x'", shards: []int{s7}, concat: true},
		{sql: "SELECT * FROM public.users WHERE id = $1", params: []any{int64(7)}, shards: []int{s7}, concat: true},
		{sql: "SELECT * FROM users WHERE id = $1", params: []any{"7"}, shards: []int{s7}, concat: true},
		{sql: "SELECT * FROM users WHERE id IN (7, 8)", shards: both, concat: true},
		{sql: "SELECT * FROM users WHERE id = 7 OR id = 8", shards: both, concat: true},
		{sql: "SELECT * FROM users WHERE id = ANY($1)", params: []any{"{7,8}"}, shards: both, concat: true},
		{sql: "SELECT * FROM users", shards: all, concat: true},
		{sql: "SELECT count(*) FROM users", shards: all},
		{sql: "SELECT * FROM users WHERE id = 7 ORDER BY name LIMIT 1", shards: []int{s7}},
		{sql: "SELECT * FROM users WHERE name = 'x' OR id = 7", shards: all, concat: true},
		{sql: "SELECT * FROM orders o JOIN order_items i ON o.user_id = i.user_id WHERE o.user_id = 7", shards: []int{s7}, concat: true},
		{sql: "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 8", shards: []int{s8}, concat: true},
		{sql: "SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = 8", code: "reject"},
		{sql: "SELECT * FROM orders o JOIN countries c ON c.code = o.country WHERE o.user_id = 7", shards: []int{s7}, concat: true},
		{sql: "INSERT INTO users (name, id) VALUES ('a', 7)", shards: []int{s7}, write: true, concat: true},
		{sql: "INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING *", params: []any{int64(8), "b"}, shards: []int{s8}, write: true, concat: true},
		{sql: "INSERT INTO users (id) SELECT 7", code: "0A000"},
		{sql: "INSERT INTO users (id) VALUES (now()::int)", code: "0A000"},
		{sql: "UPDATE users SET name = 'z' WHERE id = 7", shards: []int{s7}, write: true, concat: true},
		{sql: "UPDATE users SET id = 9 WHERE id = 7", code: "0A000"},
		{sql: "DELETE FROM users WHERE id = $1 RETURNING id", params: []any{int64(7)}, shards: []int{s7}, write: true, concat: true},
		{sql: "DELETE FROM users", shards: all, write: true, concat: true},
		{sql: "SELECT * FROM events WHERE day = '2024-12-31'", shards: []int{0}, concat: true},
		{sql: "SELECT * FROM events WHERE day = '2025-01-01'", shards: []int{2}, concat: true},
		{sql: "SELECT * FROM tenants WHERE tenant = 'globex'", shards: []int{1}, concat: true},
		{sql: "SELECT * FROM tenants WHERE tenant = 'initech'", code: "22023"},
		{sql: "SELECT * FROM users WHERE id = 'seven'", code: "22P02"},
		{sql: "SELECT * FROM countries", shards: []int{0}, concat: true},
		{sql: "INSERT INTO countries VALUES ('fr')", shards: all, write: true, concat: true},
		{sql: "SELECT * FROM plain", shards: []int{0}, concat: true},
		{sql: "SELECT 1", shards: []int{0}, concat: true},
		{sql: "SELECT nextval('s')", shards: []int{0}, write: true, concat: true},
		{sql: "SELECT * FROM users WHERE id = 7 FOR UPDATE", shards: []int{s7}, write: true, concat: true},
		{sql: "/* pgshard: shard=s2 */ SELECT * FROM users", shards: []int{2}, concat: true},
		{sql: "SELECT * FROM users /* pgshard: key=8 */", shards: []int{s8}, concat: true},
		{sql: "/* pgshard: shard=s9 */ SELECT 1", code: "22023"},
		{sql: "SELECT * FROM users", hint: hints{shard: "s1"}, shards: []int{1}, concat: true},
		{sql: "SELECT * FROM users", hint: hints{key: "7"}, shards: []int{s7}, concat: true},
		// Parts computed per shard: refused when the statement spans shards.
		{sql: "SELECT id FROM users WHERE id > (SELECT avg(id) FROM users)", code: "reject"},
		{sql: "SELECT count(*) FROM (SELECT DISTINCT name FROM users) s", code: "reject"},
		{sql: "WITH t AS (SELECT count(*) AS n FROM users) SELECT n FROM t", code: "reject"},
		{sql: "SELECT id FROM (SELECT id FROM users ORDER BY id LIMIT 3) s", code: "reject"},
		{sql: "UPDATE users SET name = (SELECT max(name) FROM users)", code: "reject"},
		{sql: "SELECT id FROM users WHERE id > (SELECT avg(id) FROM users) AND id = 7", code: "reject"},
		{sql: "SELECT * FROM orders WHERE user_id = 7 AND order_id = (SELECT max(order_id) FROM orders WHERE user_id = 7)", shards: []int{s7}, concat: true},
		{sql: "SELECT id FROM users WHERE id = 7 AND id > (SELECT count(*) FROM countries)", shards: []int{s7}, concat: true},
		{sql: "SELECT id FROM users WHERE id > (SELECT count(*) FROM countries)", shards: all, concat: true},
		{sql: "SELECT u.id, c.name FROM users u LEFT JOIN countries c ON c.code = u.name", shards: all, concat: true},
		{sql: "SELECT EXISTS (SELECT 1 FROM users WHERE name = 'x')", code: "reject"},
		{sql: "SELECT c.code FROM countries c LEFT JOIN users u ON u.name = c.code", code: "reject"},
		{sql: "SELECT code FROM countries UNION ALL SELECT name FROM users", code: "reject"},
		{sql: "SELECT code FROM countries WHERE code NOT IN (SELECT name FROM users)", code: "reject"},
		{sql: "SELECT u.id FROM users u JOIN countries c ON c.code = u.name", shards: all, concat: true},
		{sql: "SELECT id FROM users WHERE name = 'a' UNION ALL SELECT id FROM users WHERE name = 'b'", shards: all, concat: true},
		{sql: "SELECT * FROM users WHERE id = 7; SELECT * FROM users WHERE id = 8", shards: []int{s7}, code: map[bool]string{true: "", false: "reject"}[s7 == s8]},
	} {
		check := func(t *testing.T, as []parser.Analysis, p *bindParams) {
			t.Helper()
			d, err := rt.decide(rt.router.Load(), as, p, tc.hint, tc.sql)
			code := ""
			if err != nil {
				code = toPgError(err).Code
			} else if d.reject != "" {
				code = "reject"
			}
			if code != tc.code {
				t.Fatalf("error %q (%v, reject %q), want %q", code, err, d.reject, tc.code)
			}
			if code != "" {
				return
			}
			if !slices.Equal(d.shards, tc.shards) || d.write != tc.write || d.concat != tc.concat {
				t.Errorf("shards %v write %v concat %v, want %v %v %v", d.shards, d.write, d.concat, tc.shards, tc.write, tc.concat)
			}
		}
		t.Run(tc.sql, func(t *testing.T) {
			as, err := parser.Analyze(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			check(t, as, bindOf(tc.params))
		})
		if tc.params != nil {
			continue
		}
		t.Run(tc.sql+" (normalized)", func(t *testing.T) {
			// As a simple Query: the cached analysis of the text with its
			// literals as parameters decides the same.
			as, lits, err := parser.NewCache(1<<20).AnalyzeQuery(tc.sql, &parser.Scratch{})
			if err != nil {
				t.Fatal(err)
			}
			var p *bindParams
			if lits != nil {
				p = &bindParams{literals: lits}
			}
			check(t, as, p)
		})
	}
}

// A multi-row INSERT is split into one statement per shard.
func TestDecideSplitsInsert(t *testing.T) {
	rt := testRoutes(t)
	var keys []int64
	for k := int64(1); len(keys) < 4; k++ {
		if shardOf(t, k) == len(keys)%2 {
			keys = append(keys, k) // alternating s0, s1, s0, s1
		}
	}
	sql := fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'a'), (%d, 'b'), (%d, 'c'), (%d, 'd')", keys[0], keys[1], keys[2], keys[3])
	as, _ := parser.Analyze(sql)
	d, err := rt.decide(rt.router.Load(), as, nil, hints{}, sql)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'a'), (%d, 'c')", keys[0], keys[2]),
		fmt.Sprintf("INSERT INTO users (id, name) VALUES (%d, 'b'), (%d, 'd')", keys[1], keys[3]),
	}
	if !slices.Equal(d.shards, []int{0, 1}) || !slices.Equal(d.split, want) {
		t.Fatalf("shards %v split %q, want [0 1] %q", d.shards, d.split, want)
	}
}

// bindOf encodes parameters as a Bind message's parameter section: int64
// in binary, strings in text.
func bindOf(params []any) *bindParams {
	if params == nil {
		return nil
	}
	p := &bindParams{}
	for _, v := range params {
		switch v := v.(type) {
		case int64:
			p.formats = append(p.formats, 1)
			p.values = append(p.values, binary.BigEndian.AppendUint64(nil, uint64(v)))
		case string:
			p.formats = append(p.formats, 0)
			p.values = append(p.values, []byte(v))
		}
	}
	return p
}

// BenchmarkRoute measures the routing decision for a point SELECT: cached
// (the parse cache holds the text, as for a prepared statement or a
// repeated query) and uncached (a cgo parse each time).
func BenchmarkRoute(b *testing.B) {
	rt := testRoutes(b)
	r := rt.router.Load()
	const sql = "SELECT abalance FROM users WHERE id = $1"
	p := bindOf([]any{int64(12345)})
	b.Run("cached", func(b *testing.B) {
		cache := parser.NewCache(1 << 20)
		b.ReportAllocs()
		for b.Loop() {
			as, _ := cache.Analyze(sql)
			if _, err := rt.decide(r, as, p, hints{}, sql); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("simple, new literal each time", func(b *testing.B) {
		// pgbench -S in simple mode: the same statement, a new aid each
		// time; the cache is keyed by the text without its literals.
		cache := parser.NewCache(1 << 20)
		var sc parser.Scratch
		texts := make([]string, 1000)
		for i := range texts {
			texts[i] = fmt.Sprintf("SELECT abalance FROM users WHERE id = %d;", i*7919)
		}
		var lp bindParams
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			text := texts[i%len(texts)]
			as, lits, _ := cache.AnalyzeQuery(text, &sc)
			lp.literals = lits
			if _, err := rt.decide(r, as, &lp, hints{}, text); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			as, _ := parser.Analyze(sql)
			if _, err := rt.decide(r, as, p, hints{}, sql); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCutBind: the part of a split INSERT that keeps parameters 2 and 3
// gets their values, their format codes (one per parameter, or the shared
// one) and their types, and the result formats unchanged.
func TestCutBind(t *testing.T) {
	bind := func(formats []int16, values [][]byte, results []int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(formats)))
		for _, f := range formats {
			b = binary.BigEndian.AppendUint16(b, uint16(f))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(values)))
		for _, v := range values {
			if v == nil {
				b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
				continue
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(results)))
		for _, f := range results {
			b = binary.BigEndian.AppendUint16(b, uint16(f))
		}
		return b
	}
	vals := [][]byte{[]byte("a"), nil, []byte("ccc"), []byte("d")}
	for _, tc := range []struct {
		name          string
		formats, want []int16
	}{
		{"no format codes", nil, nil},
		{"one shared", []int16{1}, []int16{1}},
		{"one each", []int16{0, 1, 0, 1}, []int16{1, 0}},
	} {
		got := cutBind(bind(tc.formats, vals, []int16{1, 0}), []int{2, 3})
		if want := bind(tc.want, [][]byte{nil, []byte("ccc")}, []int16{1, 0}); !bytes.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, want)
		}
	}
	types := []byte{0, 3, 0, 0, 0, 23, 0, 0, 0, 25, 0, 0, 0, 20}
	if got, want := cutTypes(types, []int{2, 4}), []byte{0, 2, 0, 0, 0, 25, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("cutTypes: got %v, want %v", got, want)
	}
}

// A count(DISTINCT) of shard keys adds up; any other makes the shards
// group by its values, and then every count(DISTINCT) is counted after
// the merge. A parameter in HAVING is a normalized literal or refused.
func TestDecideGrouped(t *testing.T) {
	rt := testRoutes(t)
	for _, tc := range []struct {
		sql  string
		lits []string // a simple Query's literals: analysed normalized
		want string   // the grouped columns, or why not mergeable
	}{
		{"SELECT count(DISTINCT id) FROM users", nil, "[count]"},
		{"SELECT count(DISTINCT u.id), count(*) FROM users u JOIN orders o ON o.user_id = u.id", nil, "[count count]"},
		{"SELECT count(DISTINCT user_id), count(DISTINCT id) FROM orders", nil, "[countdistinct countdistinct]"},
		{"SELECT count(DISTINCT u.id), count(DISTINCT o.user_id) FROM users u JOIN orders o ON o.user_id = u.id", nil, "[count count]"},
		{"SELECT count(DISTINCT code) FROM countries, users", nil, "[countdistinct]"},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > $1", nil, "a parameter in HAVING or in an expression over aggregates; write its value in the statement"},
		{"SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > 2", []string{"2"}, "[key count] having=(c1 > 2)"},
	} {
		var as []parser.Analysis
		var p *bindParams
		var err error
		if tc.lits != nil {
			as, _, err = parser.NewCache(1<<20).AnalyzeQuery(tc.sql, &parser.Scratch{})
			p = &bindParams{literals: tc.lits}
		} else {
			as, err = parser.Analyze(tc.sql)
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := rt.decide(rt.router.Load(), as, p, hints{}, tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		got := d.notMergeable
		if d.grouped != nil {
			got = fmt.Sprint(d.grouped.Cols)
			if d.grouped.Having != nil {
				got += " having=" + d.grouped.Having.String()
			}
		}
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.sql, got, tc.want)
		}
	}
	// The analysis the cache holds is not changed.
	as, _ := parser.Analyze("SELECT count(DISTINCT id) FROM users")
	if _, err := rt.decide(rt.router.Load(), as, nil, hints{}, ""); err != nil || as[0].Grouped.Cols[0] != parser.AggCountDistinct {
		t.Errorf("decide changed the analysis: %v %v", as[0].Grouped.Cols, err)
	}
}
