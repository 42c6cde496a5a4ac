package routing

import (
	"errors"
	"regexp"
	"slices"
	"testing"
)

// testRouter: shards s0, s1, s2 (default s0).
//   - users: hash on id over all shards
//   - orders, order_items (pattern): hash on user_id over all shards
//   - pairs: hash on id over s1, s2 only
//   - events: range on created_at (date): before 2025 on s0, from 2025 on s1
//   - tenant_data: list on tenant: acme, globex → s0; initech → s2; no default
//   - countries: replicated
//
// With MODULUS 3, PostgreSQL puts integer keys 1 → 2, 2 → 0, 3 → 1, 5 → 2,
// 42 → 0 (checked against real hash-partitioned tables in test/).
func testRouter(t testing.TB) *Router {
	t.Helper()
	h3, err := NewHash(KeyInt, 3)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := NewHash(KeyInt, 2)
	rng, err := NewRange(KeyDate, []Bound{{To: "2025-01-01", Shard: 0}, {From: "2025-01-01", Shard: 1}})
	if err != nil {
		t.Fatal(err)
	}
	lst, err := NewList(KeyText, map[int][]string{0: {"acme", "globex"}, 1: {"initech"}}, -1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter([]string{"s0", "s1", "s2"}, 0, []Rule{
		{Name: "users", Key: "id", Method: h3},
		{Pattern: regexp.MustCompile(`^(orders|order_items)$`), Key: "user_id", Method: h3},
		{Name: "pairs", Key: "id", Method: h2, Shards: []int{1, 2}},
		{Name: "events", Key: "created_at", Method: rng, Shards: []int{0, 1}},
		{Name: "tenant_data", Key: "tenant", Method: lst, Shards: []int{0, 2}},
		{Name: "countries", Replicated: true},
		{Name: "public.audit", Key: "id", Method: h3},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tbl(name string) TableRef { return TableRef{Name: name} }

func key(table, col string, vals ...string) KeyPred {
	return KeyPred{ColumnRef: ColumnRef{Table: tbl(table), Column: col}, Values: vals, Known: true}
}

func join(a, ac, b, bc string) JoinEq {
	return JoinEq{A: ColumnRef{Table: tbl(a), Column: ac}, B: ColumnRef{Table: tbl(b), Column: bc}}
}

func TestRoute(t *testing.T) {
	r := testRouter(t)
	cases := []struct {
		name   string
		st     Statement
		kind   PlanKind
		shards []string
	}{
		{"point read by key", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "1")}}, Single, []string{"s2"}},
		{"key 42", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "42")}}, Single, []string{"s0"}},
		{"IN over shards", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "1", "2", "5")}}, Multi, []string{"s0", "s2"}},
		{"no key: all shards of the rule", Statement{Tables: []TableRef{tbl("users")}}, All, []string{"s0", "s1", "s2"}},
		{"unbound parameter: all shards", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{{ColumnRef: ColumnRef{Table: tbl("users"), Column: "id"}}}}, All, []string{"s0", "s1", "s2"}},
		{"schema-qualified, key column case", Statement{Tables: []TableRef{{Schema: "public", Name: "users"}}, Keys: []KeyPred{{ColumnRef: ColumnRef{Table: tbl("users"), Column: "ID"}, Values: []string{"3"}, Known: true}}}, Single, []string{"s1"}},
		{"quoted name is another table", Statement{Tables: []TableRef{tbl("Users")}}, Single, []string{"s0"}},
		{"qualified rule, unqualified reference", Statement{Tables: []TableRef{tbl("audit")}, Keys: []KeyPred{key("audit", "id", "3")}}, Single, []string{"s1"}},
		{"qualified rule, other schema", Statement{Tables: []TableRef{{Schema: "archive", Name: "audit"}}}, Single, []string{"s0"}},
		{"pattern sees the bare name", Statement{Tables: []TableRef{{Schema: "sales", Name: "orders"}}, Keys: []KeyPred{key("orders", "user_id", "1")}}, Single, []string{"s2"}},
		{"pattern rule", Statement{Tables: []TableRef{tbl("order_items")}, Keys: []KeyPred{key("order_items", "user_id", "5")}}, Single, []string{"s2"}},
		{"rule over a shard subset", Statement{Tables: []TableRef{tbl("pairs")}}, All, []string{"s1", "s2"}},
		{"unlisted table: default shard", Statement{Tables: []TableRef{tbl("settings")}}, Single, []string{"s0"}},
		{"no table", Statement{}, Single, []string{"s0"}},
		{"range before", Statement{Tables: []TableRef{tbl("events")}, Keys: []KeyPred{key("events", "created_at", "2024-12-31")}}, Single, []string{"s0"}},
		{"range from (inclusive)", Statement{Tables: []TableRef{tbl("events")}, Keys: []KeyPred{key("events", "created_at", "2025-01-01")}}, Single, []string{"s1"}},
		{"list", Statement{Tables: []TableRef{tbl("tenant_data")}, Keys: []KeyPred{key("tenant_data", "tenant", "initech")}}, Single, []string{"s2"}},
		{"replicated read", Statement{Tables: []TableRef{tbl("countries")}}, Single, []string{"s0"}},
		{"replicated write", Statement{Tables: []TableRef{tbl("countries")}, Write: true}, Broadcast, []string{"s0", "s1", "s2"}},
		{"join with replicated table", Statement{Tables: []TableRef{tbl("users"), tbl("countries")}, Keys: []KeyPred{key("users", "id", "3")}}, Single, []string{"s1"}},
		{"co-located join, key pinned on one side", Statement{Tables: []TableRef{tbl("users"), tbl("orders")}, Keys: []KeyPred{key("users", "id", "1")},
			Joins: []JoinEq{join("orders", "user_id", "users", "id")}}, Single, []string{"s2"}},
		{"co-located join, no key", Statement{Tables: []TableRef{tbl("users"), tbl("orders")}, Joins: []JoinEq{join("users", "id", "orders", "user_id")}}, All, []string{"s0", "s1", "s2"}},
		{"join of tables both pinned to one shard", Statement{Tables: []TableRef{tbl("users"), tbl("settings")}, Keys: []KeyPred{key("users", "id", "2")}}, Single, []string{"s0"}},
		{"hint shard", Statement{Tables: []TableRef{tbl("users")}, HintShard: "s1"}, Single, []string{"s1"}},
		{"hint key", Statement{Tables: []TableRef{tbl("users")}, HintKey: "5"}, Single, []string{"s2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Route(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tc.kind || !slices.Equal(p.Shards, tc.shards) {
				t.Fatalf("plan %+v, want %s %v", p, tc.kind, tc.shards)
			}
		})
	}
}

func TestRouteRejects(t *testing.T) {
	r := testRouter(t)
	cases := []struct {
		name string
		st   Statement
	}{
		{"join not on the keys", Statement{Tables: []TableRef{tbl("users"), tbl("orders")}, Joins: []JoinEq{join("users", "id", "orders", "id")}}},
		{"join of differently sharded tables", Statement{Tables: []TableRef{tbl("users"), tbl("pairs")}, Joins: []JoinEq{join("users", "id", "pairs", "id")}}},
		{"keys on different shards", Statement{Tables: []TableRef{tbl("users"), tbl("orders")}, Keys: []KeyPred{key("users", "id", "1"), key("orders", "user_id", "2")},
			Joins: []JoinEq{join("users", "id", "orders", "user_id")}}},
		{"unsharded table with unpinned sharded table", Statement{Tables: []TableRef{tbl("settings"), tbl("users")}}},
		{"write to replicated table with others", Statement{Tables: []TableRef{tbl("countries"), tbl("users")}, Write: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Route(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != Reject || p.Reason == "" {
				t.Fatalf("plan %+v, want a reject with a reason", p)
			}
		})
	}
}

func TestRouteErrors(t *testing.T) {
	r := testRouter(t)
	if _, err := r.Route(Statement{HintShard: "s9"}); !errors.Is(err, ErrUnknownShard) {
		t.Errorf("unknown hint shard: %v", err)
	}
	if _, err := r.Route(Statement{Tables: []TableRef{tbl("tenant_data")}, Keys: []KeyPred{key("tenant_data", "tenant", "umbrella")}}); !errors.Is(err, ErrNoShard) {
		t.Errorf("list value no shard holds: %v", err)
	}
	if _, err := r.Route(Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "abc")}}); err == nil {
		t.Error("a non-integer key for an integer column was accepted")
	}
}

func TestMethods(t *testing.T) {
	if _, err := NewHash(KeyDate, 2); err == nil {
		t.Error("hash of a date key accepted")
	}
	if _, err := NewRange(KeyInt, []Bound{{From: "10", To: "5"}}); err == nil {
		t.Error("range with from above to accepted")
	}
	if _, err := NewRange(KeyInt, []Bound{{To: "10"}, {From: "5", To: "20"}}); err == nil {
		t.Error("overlapping ranges accepted")
	}
	rng, err := NewRange(KeyNumeric, []Bound{{To: "1.5", Shard: 0}, {From: "1.5", To: "100", Shard: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]int{"1.49999": 0, "1.5": 1, "1.50": 1, "99.99": 1} {
		if got, err := rng.Shard(v); err != nil || got != want {
			t.Errorf("numeric range %s: %d, %v; want %d", v, got, err, want)
		}
	}
	if _, err := rng.Shard("100"); !errors.Is(err, ErrNoShard) {
		t.Errorf("value past the last range: %v", err)
	}
	ts, err := NewRange(KeyTimestampTZ, []Bound{{To: "2025-01-01 00:00:00+00", Shard: 0}, {From: "2025-01-01 00:00:00+00", Shard: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ts.Shard("2025-01-01 01:30:00+02"); got != 0 {
		t.Errorf("timestamptz range compares instants: 01:30+02 is 2024-12-31 23:30 UTC, got shard %d", got)
	}
	lst, err := NewList(KeyInt, map[int][]string{0: {"1", "2"}, 1: {"3"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := lst.Shard("007"); got != 1 {
		t.Errorf("list default: got %d", got)
	}
	if got, _ := lst.Shard("+2"); got != 0 {
		t.Errorf("list compares values, not spellings: got %d", got)
	}
	if _, err := NewList(KeyText, map[int][]string{0: {"a"}, 1: {"a"}}, -1); err == nil {
		t.Error("a value listed for two shards accepted")
	}
	u := Hash{Type: KeyUUID, N: 4}
	a, err1 := u.Shard("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
	b, err2 := u.Shard("{a0eebc999c0b4ef8bb6d6bb9bd380a11}")
	if err1 != nil || err2 != nil || a != b {
		t.Errorf("uuid spellings placed apart: %d %d %v %v", a, b, err1, err2)
	}
}
