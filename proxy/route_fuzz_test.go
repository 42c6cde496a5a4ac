package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// routeOutcome is what a routing decision says, in a form to compare.
type routeOutcome struct {
	code   string // SQLSTATE of the error, "reject" for a refusal, "" when routed
	shards []int
	write  bool
	concat bool
}

func (o routeOutcome) String() string {
	if o.code != "" {
		return o.code
	}
	return fmt.Sprintf("shards %v write %v concat %v", o.shards, o.write, o.concat)
}

// decideChecked runs the routing decision for analysed statements and
// checks what any decision must be: an error that is pgshard's own, with a
// SQLSTATE of the data or feature classes (never a connection failure, which
// is what toPgError makes of an error without one), or shards in range,
// ascending, one for each split part.
func decideChecked(t *testing.T, rt *routes, as []parser.Analysis, p *bindParams, h hints, sql string) routeOutcome {
	t.Helper()
	d, err := rt.decide(rt.router.Load(), as, p, h, sql)
	if err != nil {
		var pe *pgError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: decide failed with %v (%T), which carries no SQLSTATE", sql, err, err)
		}
		switch pe.Code[:2] {
		case "0A", "22", "42":
		default:
			t.Fatalf("%q: decide failed with SQLSTATE %s: %v", sql, pe.Code, err)
		}
		return routeOutcome{code: pe.Code}
	}
	if d.reject != "" {
		return routeOutcome{code: "reject"}
	}
	if len(d.shards) == 0 {
		t.Fatalf("%q: routed nowhere", sql)
	}
	for i, sh := range d.shards {
		if sh < 0 || sh >= len(rt.shards) || i > 0 && sh <= d.shards[i-1] {
			t.Fatalf("%q: shards %v", sql, d.shards)
		}
	}
	if d.split != nil && (len(d.split) != len(d.shards) || len(d.splitParams) != len(d.shards)) {
		t.Fatalf("%q: %d split statements for shards %v", sql, len(d.split), d.shards)
	}
	return routeOutcome{shards: d.shards, write: d.write, concat: d.concat}
}

// FuzzRoute runs arbitrary SQL through the routing decision of a database
// of three shards with a rule of each kind (testRoutes), as the session
// does: the text analysed as it is (the extended protocol's Parse), and
// analysed normalized with its literals as parameters (a simple Query).
// Both must decide the same, and every decision must pass decideChecked.
// Then statements with a single-key equality on the hashed users.id, built
// from the fuzzed key and text, must go to the one shard the hash says.
func FuzzRoute(f *testing.F) {
	f.Add("SELECT * FROM users WHERE id = 7", int64(7), "x")
	f.Add("SELECT * FROM users WHERE id = ANY('{1,2,3}') ORDER BY name LIMIT 2 OFFSET 1", int64(-1), "o'neil")
	f.Add("INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c') RETURNING id", int64(1<<62), "")
	f.Add("UPDATE orders SET total = total + 1 WHERE user_id IN (4, 5) AND id = 3", int64(0), "/*")
	f.Add("SELECT tenant, count(*), sum(x) FROM tenants WHERE tenant = 'acme' GROUP BY 1 HAVING count(*) > 2", int64(9), "$$")
	f.Add("SELECT * FROM events WHERE day = '2025-01-01'; SELECT * FROM countries", int64(-9223372036854775808), "\\")
	f.Add("/* pgshard: shard=s1 */ DELETE FROM users", int64(3), "; DROP TABLE users; --")
	f.Add("SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 7 AND o.id = ANY(5)", int64(8), "x")
	f.Add("COPY users (id, name) FROM STDIN", int64(5), "")
	for _, sql := range []string{
		"SELECT * FROM users WHERE id = 7 OR id = 8",
		"SELECT count(*) FROM users",
		"SELECT * FROM orders o JOIN order_items i ON o.user_id = i.user_id WHERE o.user_id = 7",
		"SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = 8",
		"INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING *",
		"INSERT INTO users (id) VALUES (now()::int)",
		"UPDATE users SET id = 9 WHERE id = 7",
		"SELECT * FROM events WHERE day = '2024-12-31'",
		"SELECT * FROM tenants WHERE tenant = 'initech'",
		"SELECT * FROM users WHERE id = 'seven'",
		"INSERT INTO countries VALUES ('fr')",
		"SELECT nextval('s')",
		"SELECT * FROM users WHERE id = 7 FOR UPDATE",
		"SELECT * FROM users /* pgshard: key=8 */",
		"/* pgshard: shard=s9 */ SELECT 1",
		"SELECT id FROM users WHERE id > (SELECT avg(id) FROM users)",
		"WITH t AS (SELECT count(*) AS n FROM users) SELECT n FROM t",
		"SELECT code FROM countries UNION ALL SELECT name FROM users",
		"SELECT name, count(DISTINCT id), avg(id) FROM users GROUP BY name ORDER BY 2 DESC LIMIT 5",
		"SELECT count(DISTINCT user_id), count(DISTINCT id) FROM orders",
		"BEGIN; UPDATE users SET name = 'a' WHERE id = 1; COMMIT",
		"CREATE TABLE users (id bigint PRIMARY KEY, name text)",
		"COPY (SELECT * FROM users) TO STDOUT",
	} {
		f.Add(sql, int64(len(sql)), sql[:3])
	}
	rt := testRoutes(f)
	h, err := routing.NewHash(routing.KeyInt, 3)
	if err != nil {
		f.Fatal(err)
	}
	cache := parser.NewCache(1 << 20)
	var sc parser.Scratch
	f.Fuzz(func(t *testing.T, sql string, key int64, name string) {
		// Arbitrary text, both ways.
		if as, err := parser.Analyze(sql); err == nil {
			raw := decideChecked(t, rt, as, nil, hints{}, sql)
			nas, lits, err := cache.AnalyzeQuery(sql, &sc)
			if err != nil {
				t.Fatalf("%q parses, but not through the cache: %v", sql, err)
			}
			var p *bindParams
			if lits != nil {
				p = &bindParams{literals: slices.Clone(lits)}
			}
			if norm := decideChecked(t, rt, nas, p, hints{}, sql); norm.String() != raw.String() {
				t.Fatalf("%q: as a simple Query %v, as its text %v", sql, norm, raw)
			}
			// A session hint pins what names no shard of its own.
			decideChecked(t, rt, as, nil, hints{shard: "s1"}, sql)
			decideChecked(t, rt, as, nil, hints{key: name}, sql)
		}

		// Single-key equalities go where the hash puts the key.
		want, err := h.Shard(fmt.Sprint(key))
		if err != nil {
			t.Fatalf("hash of %d: %v", key, err)
		}
		// Text PostgreSQL would take: valid UTF-8, no NUL.
		name = strings.ReplaceAll(strings.ToValidUTF8(name, "?"), "\x00", "")
		lit := "'" + strings.ReplaceAll(name, "'", "''") + "'"
		for _, q := range []string{
			fmt.Sprintf("SELECT * FROM users WHERE id = %d", key),
			fmt.Sprintf("SELECT name FROM users WHERE name = %s AND id = %d ORDER BY name LIMIT 3", lit, key),
			fmt.Sprintf("SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE o.user_id = %d AND o.note <> %s", key, lit),
			fmt.Sprintf("UPDATE users SET name = %s WHERE id = %d", lit, key),
			fmt.Sprintf("DELETE FROM users WHERE id = '%d' RETURNING id", key),
			fmt.Sprintf("INSERT INTO users (name, id) VALUES (%s, %d) ON CONFLICT (id) DO NOTHING", lit, key),
			fmt.Sprintf("SELECT count(*) FROM orders WHERE user_id = %d AND note = %s", key, lit),
		} {
			as, err := parser.Analyze(q)
			if err != nil {
				t.Fatalf("%q: %v", q, err)
			}
			got := decideChecked(t, rt, as, nil, hints{}, q)
			if got.code != "" || !slices.Equal(got.shards, []int{want}) {
				t.Fatalf("%q: %v, want shard %d", q, got, want)
			}
			nas, lits, err := cache.AnalyzeQuery(q, &sc)
			if err != nil {
				t.Fatalf("%q: %v", q, err)
			}
			var p *bindParams
			if lits != nil {
				p = &bindParams{literals: slices.Clone(lits)}
			}
			if got := decideChecked(t, rt, nas, p, hints{}, q); got.code != "" || !slices.Equal(got.shards, []int{want}) {
				t.Fatalf("%q as a simple Query: %v, want shard %d", q, got, want)
			}
		}
		// The same key as a Bind parameter, binary and text.
		const q = "SELECT * FROM users WHERE id = $1 AND name <> $2"
		as, err := parser.Analyze(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*bindParams{bindOf([]any{key, name}), bindOf([]any{fmt.Sprint(key), name})} {
			if got := decideChecked(t, rt, as, p, hints{}, q); got.code != "" || !slices.Equal(got.shards, []int{want}) {
				t.Fatalf("%q with $1 = %d: %v, want shard %d", q, key, got, want)
			}
		}
		// And as a hint, for a statement with no key of its own.
		const nokey = "SELECT * FROM users WHERE name <> $1"
		if as, err = parser.Analyze(nokey); err != nil {
			t.Fatal(err)
		}
		if got := decideChecked(t, rt, as, bindOf([]any{name}), hints{key: fmt.Sprint(key)}, nokey); !slices.Equal(got.shards, []int{want}) {
			t.Fatalf("%q with hint key %d: %v, want shard %d", nokey, key, got, want)
		}
	})
}
