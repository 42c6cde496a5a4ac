package config

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgshard/pgshard/proxy"
)

// shardedDB is the issue 3 example: two shards and every kind of rule.
const shardedDB = `databases:
  - name: app
    shards:
      - {name: s0, primary: "postgres://127.0.0.1:5433/app", replicas: ["postgres://127.0.0.1:5434/app"]}
      - {name: s1, primary: "postgres://127.0.0.1:5435/app", schema: shard_1}
    default_shard: s0
    tables:
      - name: users
        key: id
        method: hash
        key_type: bigint
      - pattern: "^(orders|order_items)$"
        key: user_id
        method: hash
        shards: [s1, s0]
      - {name: events, key: created_at, method: range, ranges: [{to: "2025-01-01", shard: s0}, {from: "2025-01-01", shard: s1}]}
      - {name: tenant_data, key: tenant, method: list, lists: {s0: [acme, globex], s1: [initech]}, default: s1}
      - {name: countries, replicated: true}
    read_write_split: true
    load_balance: least_busy
    read_your_writes: 5s
    max_replica_lag: 1MB
    route_notices: true
    read_only_functions: [lower_email, public.price_of]
    cross_shard: deny
`

func TestRoutingParse(t *testing.T) {
	c, err := Parse([]byte(okUsers + shardedDB))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Databases[0]
	want := Database{
		Name:     "app",
		PoolSize: 20,
		Shards: []Shard{
			{Name: "s0", Primary: "postgres://127.0.0.1:5433/app", Replicas: []string{"postgres://127.0.0.1:5434/app"}},
			{Name: "s1", Primary: "postgres://127.0.0.1:5435/app", Schema: "shard_1"},
		},
		DefaultShard: "s0",
		Tables: []TableRule{
			{Name: "users", Key: "id", Method: MethodHash, KeyType: KeyBigint, Shards: []string{"s0", "s1"}},
			{Pattern: "^(orders|order_items)$", Key: "user_id", Method: MethodHash, Shards: []string{"s1", "s0"}},
			{Name: "events", Key: "created_at", Method: MethodRange, Shards: []string{"s0", "s1"},
				Ranges: []Range{{To: "2025-01-01", Shard: "s0"}, {From: "2025-01-01", Shard: "s1"}}},
			{Name: "tenant_data", Key: "tenant", Method: MethodList, Shards: []string{"s0", "s1"},
				Lists: map[string][]string{"s0": {"acme", "globex"}, "s1": {"initech"}}, Default: "s1"},
			{Name: "countries", Replicated: true},
		},
		ReadWriteSplit:    true,
		LoadBalance:       LoadBalanceLeastBusy,
		ReadYourWrites:    ReadYourWrites{Mode: ReadYourWritesWindow, Window: 5 * time.Second},
		MaxReplicaLag:     1 << 20,
		RouteNotices:      true,
		ReadOnlyFunctions: []string{"lower_email", "public.price_of"},
		CrossShard:        CrossShardDeny,
		Hints:             HintsDeny,
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got\n%#v\nwant\n%#v", d, want)
	}

	// The defaults, with the same shards and no routing keys.
	c, err = Parse([]byte(okUsers + "databases:\n  - name: app\n    shards: [{name: a, primary: \"host=a\"}, {name: b, primary: \"host=b\"}]\n    tables: [{name: t, key: k, method: hash}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d = c.Databases[0]
	if d.DefaultShard != "a" || d.ReadWriteSplit || d.LoadBalance != LoadBalanceRoundRobin ||
		d.ReadYourWrites != (ReadYourWrites{Mode: ReadYourWritesLSN}) || d.MaxReplicaLag != 16<<20 || d.RouteNotices ||
		d.ReadOnlyFunctions != nil || !reflect.DeepEqual(d.Tables[0].Shards, []string{"a", "b"}) || d.Tables[0].KeyType != "" {
		t.Errorf("defaults not applied: %+v", d)
	}
}

// TestRoutingHintsDefault: hints follow cross_shard when left out (deny
// with deny, allow otherwise), and an explicit value wins either way.
func TestRoutingHintsDefault(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  Hints
	}{
		{nil, HintsAllow},
		{[]string{"cross_shard: allow"}, HintsAllow},
		{[]string{"cross_shard: log"}, HintsAllow},
		{[]string{"cross_shard: deny"}, HintsDeny},
		{[]string{"cross_shard: deny", "hints: allow"}, HintsAllow},
		{[]string{"hints: deny"}, HintsDeny},
	} {
		c, err := Parse([]byte(rdb(tc.lines...)))
		if err != nil {
			t.Fatalf("%q: %v", tc.lines, err)
		}
		if got := c.Databases[0].Hints; got != tc.want {
			t.Errorf("%q: hints %q, want %q", tc.lines, got, tc.want)
		}
		o, err := c.ProxyOptions(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if got := o.Databases[0].DenyHints; got != (tc.want == HintsDeny) {
			t.Errorf("%q: proxy DenyHints %v", tc.lines, got)
		}
	}
}

// TestRoutingInProxyOptions checks that the routing keys reach the proxy.
func TestRoutingInProxyOptions(t *testing.T) {
	c, err := Parse([]byte(okUsers + shardedDB))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.ProxyOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := o.Databases[0]
	d.Shards, d.PoolSize, d.Name = nil, 0, ""
	want := proxy.Database{
		DefaultShard: "s0",
		Tables: []proxy.TableRule{
			{Name: "users", Key: "id", Method: "hash", KeyType: "bigint", Shards: []string{"s0", "s1"}},
			{Pattern: "^(orders|order_items)$", Key: "user_id", Method: "hash", Shards: []string{"s1", "s0"}},
			{Name: "events", Key: "created_at", Method: "range", Shards: []string{"s0", "s1"},
				Ranges: []proxy.Range{{To: "2025-01-01", Shard: "s0"}, {From: "2025-01-01", Shard: "s1"}}},
			{Name: "tenant_data", Key: "tenant", Method: "list", Shards: []string{"s0", "s1"},
				Lists: map[string][]string{"s0": {"acme", "globex"}, "s1": {"initech"}}, Default: "s1"},
			{Name: "countries", Replicated: true},
		},
		ReadWriteSplit:    true,
		LoadBalance:       proxy.LoadBalanceLeastBusy,
		ReadYourWrites:    proxy.ReadYourWrites{Window: 5 * time.Second},
		MaxReplicaLag:     1 << 20,
		RouteNotices:      true,
		ReadOnlyFunctions: []string{"lower_email", "public.price_of"},
		CrossShard:        proxy.CrossShardDeny,
		DenyHints:         true,
	}
	if fmt.Sprintf("%+v", d) != fmt.Sprintf("%+v", want) {
		t.Errorf("got\n%+v\nwant\n%+v", d, want)
	}
	if got := o.Databases[0].Shards[1].Schema; got != "shard_1" {
		t.Errorf("shard schema = %q", got)
	}
}

func TestRoutingRoundTrip(t *testing.T) {
	c, err := Parse([]byte(okUsers + shardedDB))
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse([]byte(c.String()))
	if err != nil {
		t.Fatalf("String does not parse: %v\n%s", err, c)
	}
	before := c.String()
	if again.String() != before {
		t.Errorf("String does not round-trip:\n%s\nthen\n%s", c, again)
	}

	r := c.Redacted()
	r.Databases[0].Tables[0].Shards[0] = "changed"
	r.Databases[0].Tables[2].Ranges[0].Shard = "changed"
	r.Databases[0].Tables[3].Lists["s0"][0] = "changed"
	r.Databases[0].Tables[3].Lists["s9"] = nil
	r.Databases[0].ReadOnlyFunctions[0] = "changed"
	if c.String() != before {
		t.Error("Redacted shares routing memory with the original")
	}
}

// rdb is a database with two shards s0 and s1 (s0 with a replica) and the
// given extra lines (indented as its keys).
func rdb(lines ...string) string {
	return okUsers + db(append([]string{"name: app", "shards:",
		`  - {name: s0, primary: "host=a", replicas: ["host=b"]}`,
		`  - {name: s1, primary: "host=c"}`}, lines...)...)
}

// rule is rdb with one table rule written in flow style.
func rule(r string) string { return rdb("tables:", "  - "+r) }

func TestRoutingValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"no routing keys", rdb()},
		{"read_write_split without replicas", okUsers + db("name: app", okShards, "read_write_split: true")},
		{"read_your_writes lsn", rdb("read_your_writes: lsn")},
		{"read_your_writes off", rdb("read_your_writes: \"off\"")},
		{"read_your_writes duration", rdb("read_your_writes: 1m30s")},
		{"max_replica_lag 0", rdb("max_replica_lag: 0")},
		{"load_balance random", rdb("load_balance: random")},
		{"schema-qualified name", rule("{name: public.users, key: id, method: hash}")},
		{"same name in two schemas", rdb("tables:", "  - {name: users, key: id, method: hash}", "  - {name: public.users, key: id, method: hash}")},
		{"hash subset", rule("{name: t, key: k, method: hash, shards: [s1]}")},
		{"hash every key type", rdb("tables:",
			"  - {name: a, key: k, method: hash, key_type: smallint}", "  - {name: b, key: k, method: hash, key_type: integer}",
			"  - {name: c, key: k, method: hash, key_type: text}", "  - {name: d, key: k, method: hash, key_type: varchar}",
			"  - {name: e, key: k, method: hash, key_type: uuid}", "  - {name: f, key: k, method: hash, key_type: numeric}",
			"  - {name: g, key: k, method: hash, key_type: date}", "  - {name: h, key: k, method: hash, key_type: timestamp}",
			"  - {name: i, key: k, method: hash, key_type: timestamptz}")},
		{"integer ranges", rule("{name: t, key: k, method: range, key_type: integer, ranges: [{from: -5, to: 10, shard: s0}, {from: 10, to: 200, shard: s1}]}")},
		{"inferred numeric ranges with a gap", rule("{name: t, key: k, method: range, ranges: [{to: 9, shard: s0}, {from: 10, shard: s1}]}")},
		{"numeric ranges", rule("{name: t, key: k, method: range, key_type: numeric, ranges: [{from: \"1.5\", to: \"1e3\", shard: s0}]}")},
		{"text ranges", rule("{name: t, key: k, method: range, key_type: text, ranges: [{to: m, shard: s0}, {from: m, shard: s1}]}")},
		{"timestamp ranges", rule(`{name: t, key: k, method: range, key_type: timestamptz, ranges: [{from: "2024-01-01T00:00:00Z", to: "2024-06-01 00:00:00", shard: s0}, {from: "2024-06-01", shard: s1}]}`)},
		{"uuid list", rule("{name: t, key: k, method: list, key_type: uuid, lists: {s0: [A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11], s1: [\"{b0eebc999c0b4ef8bb6d6bb9bd380a11}\"]}}")},
		{"list without default", rule("{name: t, key: k, method: list, lists: {s0: [1, 2], s1: [3]}}")},
		{"replicated with empty keys", rule(`{name: t, replicated: true, key: "", shards: [], ranges: [], lists: {}}`)},
		{"read_only_functions", rdb("read_only_functions: [f, s.g, \"_x$1\"]")},
		{"schema", okUsers + db("name: app", "shards: [{name: s0, primary: \"host=a\", schema: Shard_é1}]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse([]byte(c.String())); err != nil {
				t.Errorf("String does not parse: %v\n%s", err, c)
			}
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	const p = "databases[0].tables[0]"
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		// database keys
		{"shard schema", okUsers + db("name: app", `shards: [{name: s0, primary: "host=a", schema: "shard-1"}]`),
			[]string{`databases[0].shards[0].schema: "shard-1" is not a valid identifier`}},
		{"shard schema too long", okUsers + db("name: app", `shards: [{name: s0, primary: "host=a", schema: `+strings.Repeat("s", 64)+`}]`),
			[]string{"databases[0].shards[0].schema: ", "is longer than 63 bytes"}},
		{"default_shard unknown", rdb("default_shard: s2"), []string{`databases[0].default_shard: unknown shard "s2"; the shards are s0, s1 (line 8)`}},
		{"default_shard empty", rdb(`default_shard: ""`), []string{"databases[0].default_shard: must name a shard"}},
		{"load_balance", rdb("load_balance: roundrobin"), []string{`databases[0].load_balance: unknown load_balance "roundrobin"; use round_robin, random or least_busy (line 8)`}},
		{"cross_shard", rdb("cross_shard: never"), []string{`databases[0].cross_shard: unknown cross_shard "never"; use allow, deny or log (line 8)`}},
		{"hints", rdb("hints: ignore"), []string{`databases[0].hints: unknown hints "ignore"; use allow or deny (line 8)`}},
		{"hints empty", rdb("hints:"), []string{`databases[0].hints: unknown hints ""; use allow or deny`}},
		{"read_your_writes word", rdb("read_your_writes: on"), []string{`databases[0].read_your_writes: invalid read_your_writes "on": use lsn, off or a positive duration such as 5s (line 8)`}},
		{"read_your_writes zero", rdb("read_your_writes: 0s"), []string{`databases[0].read_your_writes: invalid read_your_writes "0s"`}},
		{"read_your_writes negative", rdb("read_your_writes: -5s"), []string{`databases[0].read_your_writes: invalid read_your_writes "-5s"`}},
		{"read_your_writes empty", rdb("read_your_writes:"), []string{"databases[0].read_your_writes: required: lsn, off or a positive duration"}},
		{"read_your_writes list", rdb("read_your_writes: [lsn]"), []string{"databases[0].read_your_writes: expected lsn, off or a duration such as 5s, got a list"}},
		{"max_replica_lag", rdb("max_replica_lag: 16mb"), []string{`databases[0].max_replica_lag: invalid size "16mb"`}},
		{"read_write_split not a boolean", rdb("read_write_split: often"), []string{`databases[0].read_write_split: expected a boolean, got a string "often" (line 8)`}},
		{"read_only_functions", rdb("read_only_functions: [ok, \"a.b.c\", \"1f\", \"\"]"),
			[]string{`databases[0].read_only_functions[1]: "a.b.c" has too many dots`, `databases[0].read_only_functions[2]: "1f" is not a valid identifier`,
				"databases[0].read_only_functions[3]: must not be empty"}},
		{"tables not a list", rdb("tables: {name: t}"), []string{"databases[0].tables: expected a list, got a mapping"}},
		{"unknown rule key", rule("{name: t, key: k, method: hash, modulus: 4}"),
			[]string{p + ".modulus: unknown key; valid keys here: name, pattern, replicated, key, method, key_type, shards, ranges, lists, default (line 9)"}},
		{"unknown range key", rule("{name: t, key: k, method: range, ranges: [{until: 5, shard: s0}]}"),
			[]string{p + ".ranges[0].until: unknown key; valid keys here: from, to, shard"}},

		// name and pattern
		{"name and pattern", rule("{name: t, pattern: t, key: k, method: hash}"), []string{p + ": set name or pattern, not both (line 9)"}},
		{"neither name nor pattern", rule("{key: k, method: hash}"), []string{p + ": name or pattern is required (line 9)"}},
		{"bad name", rule("{name: \"my table\", key: k, method: hash}"), []string{p + `.name: "my table" is not a valid identifier`}},
		{"bad schema-qualified name", rule("{name: \"public.\", key: k, method: hash}"), []string{p + `.name: in "public.": must not be empty`}},
		{"bad pattern", rule("{pattern: \"^(orders\", key: k, method: hash}"), []string{p + ".pattern: invalid regular expression: error parsing regexp: missing closing ): `^(orders`"}},
		{"duplicate name", rdb("tables:", "  - {name: t, key: k, method: hash}", "  - {name: t, replicated: true}"),
			[]string{`databases[0].tables[1].name: a rule for table "t" already exists (tables[0]) (line 10)`}},

		// replicated
		{"replicated with key and method", rule("{name: t, replicated: true, key: k, method: hash, key_type: text}"),
			[]string{p + ".key: not allowed with replicated: true", p + ".method: not allowed with replicated: true", p + ".key_type: not allowed with replicated: true"}},
		{"replicated with shards, ranges, lists, default", rule("{name: t, replicated: true, shards: [s0], ranges: [{to: 1, shard: s0}], lists: {s0: [1]}, default: s0}"),
			[]string{p + ".shards: not allowed with replicated: true", p + ".ranges: not allowed", p + ".lists: not allowed", p + ".default: not allowed"}},

		// key, method, key_type
		{"key missing", rule("{name: t, method: hash}"), []string{p + ".key: required (the shard key column), or set replicated: true (line 9)"}},
		{"key invalid", rule("{name: t, key: \"a b\", method: hash}"), []string{p + `.key: "a b" is not a valid identifier`}},
		{"method missing", rule("{name: t, key: k}"), []string{p + ".method: required: hash, range or list (or set replicated: true)"}},
		{"method unknown", rule("{name: t, key: k, method: modulo}"), []string{p + `.method: unknown method "modulo"; use hash, range or list`}},
		{"key_type unknown", rule("{name: t, key: k, method: hash, key_type: int8}"),
			[]string{p + `.key_type: unknown key_type "int8"; use smallint, integer, bigint, text, varchar, uuid, numeric, date, timestamp, timestamptz, or leave it out`}},
		{"hash with ranges and lists", rule("{name: t, key: k, method: hash, ranges: [{to: 1, shard: s0}], lists: {s0: [1]}, default: s0}"),
			[]string{p + ".ranges: not allowed with method hash", p + ".lists: not allowed with method hash", p + ".default: not allowed with method hash"}},
		{"range with lists", rule("{name: t, key: k, method: range, ranges: [{to: 1, shard: s0}], lists: {s0: [1]}, default: s0}"),
			[]string{p + ".lists: not allowed with method range", p + ".default: not allowed with method range"}},
		{"list with ranges", rule("{name: t, key: k, method: list, lists: {s0: [1]}, ranges: [{to: 1, shard: s0}]}"),
			[]string{p + ".ranges: not allowed with method list"}},

		// shards subset
		{"subset empty", rule("{name: t, key: k, method: hash, shards: []}"), []string{p + ".shards: must name at least one shard (leave it out for all of them)"}},
		{"subset unknown", rule("{name: t, key: k, method: hash, shards: [s0, s9]}"), []string{p + `.shards[1]: unknown shard "s9"; the shards are s0, s1`}},
		{"subset duplicate", rule("{name: t, key: k, method: hash, shards: [s1, s1]}"), []string{p + `.shards[1]: shard "s1" is listed twice (also shards[0])`}},

		// ranges
		{"range without ranges", rule("{name: t, key: k, method: range}"), []string{p + ".ranges: required for method range"}},
		{"range without bounds", rule("{name: t, key: k, method: range, ranges: [{shard: s0}]}"), []string{p + ".ranges[0]: needs from, to or both"}},
		{"range from not below to", rule("{name: t, key: k, method: range, ranges: [{from: 10, to: 5, shard: s0}]}"), []string{p + ".ranges[0].to: must be greater than from (10)"}},
		{"range from equals to", rule("{name: t, key: k, method: range, key_type: date, ranges: [{from: 2025-01-01, to: 2025-01-01, shard: s0}]}"), []string{p + ".ranges[0].to: must be greater than from (2025-01-01)"}},
		{"range inferred numbers not text", rule("{name: t, key: k, method: range, ranges: [{from: 9, to: 10, shard: s0}, {from: 2, to: 5, shard: s1}]}"),
			[]string{p + ".ranges[1].from: overlaps ranges[0], which ends at 10; list ranges in ascending order without overlap"}},
		{"range overlap", rule("{name: t, key: k, method: range, key_type: bigint, ranges: [{from: 0, to: 100, shard: s0}, {from: 50, to: 200, shard: s1}]}"),
			[]string{p + ".ranges[1].from: overlaps ranges[0], which ends at 100"}},
		{"range after unbounded", rule("{name: t, key: k, method: range, ranges: [{from: 0, shard: s0}, {from: 50, shard: s1}]}"),
			[]string{p + ".ranges[1]: overlaps ranges[0], which has no upper bound (to)"}},
		{"second range without from", rule("{name: t, key: k, method: range, ranges: [{to: 10, shard: s0}, {to: 50, shard: s1}]}"),
			[]string{p + ".ranges[1]: overlaps ranges[0]: only the first range may leave out from"}},
		{"range out of order", rule("{name: t, key: k, method: range, key_type: timestamp, ranges: [{from: \"2025-01-01\", shard: s1}, {to: \"2025-01-01 00:00:00\", shard: s0}]}"),
			[]string{p + ".ranges[1]: overlaps ranges[0], which has no upper bound"}},
		{"range timestamps overlap", rule(`{name: t, key: k, method: range, key_type: timestamptz, ranges: [{to: "2025-01-01T02:00:00+01:00", shard: s0}, {from: "2025-01-01T00:30:00Z", shard: s1}]}`),
			[]string{p + ".ranges[1].from: overlaps ranges[0]"}},
		{"range shard unknown", rule("{name: t, key: k, method: range, ranges: [{to: 1, shard: s7}, {from: 1}]}"),
			[]string{p + `.ranges[0].shard: unknown shard "s7"`, p + ".ranges[1].shard: required (a shard name)"}},
		{"range shard outside subset", rule("{name: t, key: k, method: range, shards: [s1], ranges: [{to: 1, shard: s0}]}"),
			[]string{p + `.ranges[0].shard: shard "s0" is not one of this rule's shards (s1)`}},
		{"range bigint", rule("{name: t, key: k, method: range, key_type: bigint, ranges: [{from: 1.5, to: 99999999999999999999, shard: s0}]}"),
			[]string{p + `.ranges[0].from: "1.5" is not an integer (key_type bigint)`, p + `.ranges[0].to: "99999999999999999999" is out of range for bigint`}},
		{"range smallint", rule("{name: t, key: k, method: range, key_type: smallint, ranges: [{to: 40000, shard: s0}]}"), []string{p + `.ranges[0].to: "40000" is out of range for smallint`}},
		{"range integer", rule("{name: t, key: k, method: range, key_type: integer, ranges: [{to: 3000000000, shard: s0}]}"), []string{p + `.ranges[0].to: "3000000000" is out of range for integer`}},
		{"range numeric", rule("{name: t, key: k, method: range, key_type: numeric, ranges: [{to: NaN, shard: s0}, {from: 1/3, shard: s1}]}"),
			[]string{p + `.ranges[0].to: "NaN" is not a number (key_type numeric)`, p + `.ranges[1].from: "1/3" is not a number`}},
		{"range date", rule("{name: t, key: k, method: range, key_type: date, ranges: [{to: 2025-13-01, shard: s0}]}"), []string{p + `.ranges[0].to: "2025-13-01" is not a date: use 2006-01-02`}},
		{"range timestamp", rule("{name: t, key: k, method: range, key_type: timestamptz, ranges: [{to: \"01/02/2025\", shard: s0}]}"),
			[]string{p + `.ranges[0].to: "01/02/2025" is not a timestamptz: use RFC 3339`}},
		{"range uuid", rule("{name: t, key: k, method: range, key_type: uuid, ranges: [{to: not-a-uuid, shard: s0}]}"), []string{p + `.ranges[0].to: "not-a-uuid" is not a UUID`}},

		// lists
		{"list without lists", rule("{name: t, key: k, method: list}"), []string{p + ".lists: required for method list"}},
		{"list value twice", rdb("tables:", "  - name: t", "    key: k", "    method: list", "    lists:", "      s1: [acme, initech]", "      s0: [globex, acme]"),
			[]string{p + `.lists.s0[1]: "acme" is also listed under s1; a value may appear under one shard only (line 14)`}},
		{"list value twice in one shard", rule("{name: t, key: k, method: list, lists: {s0: [a, b, a]}}"), []string{p + `.lists.s0[2]: "a" is listed twice under s0`}},
		{"list same value by key type", rule("{name: t, key: k, method: list, key_type: integer, lists: {s0: [\"1\"], s1: [\"+1\"]}}"),
			[]string{p + `.lists.s1[0]: "+1" is also listed under s0`}},
		{"list value type", rule("{name: t, key: k, method: list, key_type: integer, lists: {s0: [x]}}"), []string{p + `.lists.s0[0]: "x" is not an integer (key_type integer)`}},
		{"list unknown shard", rule("{name: t, key: k, method: list, lists: {s3: [x]}}"), []string{p + `.lists.s3: unknown shard "s3"; the shards are s0, s1`}},
		{"list shard outside subset", rule("{name: t, key: k, method: list, shards: [s0], lists: {s1: [x]}}"), []string{p + `.lists.s1: shard "s1" is not one of this rule's shards (s0)`}},
		{"list empty", rule("{name: t, key: k, method: list, lists: {s0: []}}"), []string{p + ".lists.s0: needs at least one value"}},
		{"list not a mapping", rule("{name: t, key: k, method: list, lists: [a]}"), []string{p + ".lists: expected a mapping, got a list"}},
		{"list default unknown", rule("{name: t, key: k, method: list, lists: {s0: [x]}, default: s5}"), []string{p + `.default: unknown shard "s5"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; config:\n%s", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			for _, fe := range fieldErrors(t, err) {
				if fe.Path == "" || fe.Line == 0 {
					t.Errorf("error without a path or line: %v", fe)
				}
			}
		})
	}
}

// TestRoutingManyErrors checks that routing errors are all reported at once.
func TestRoutingManyErrors(t *testing.T) {
	_, err := Parse([]byte(rdb("default_shard: nope", "load_balance: x", "tables:",
		"  - {name: a, key: k, method: hash, shards: [zz]}",
		"  - {pattern: \"(\", key: k, method: range, ranges: [{from: 5, to: 1, shard: s0}]}",
		"  - {name: c, replicated: true, key: k}")))
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(fieldErrors(t, err)); n != 6 {
		t.Errorf("got %d errors, want 6:\n%v", n, err)
	}
}

// TestExampleSharded keeps the commented-out sharded database at the end of
// proxy.yaml.example valid.
func TestExampleSharded(t *testing.T) {
	data, err := os.ReadFile("../proxy.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(data), "\n# A sharded database")
	if !ok {
		t.Fatal(`proxy.yaml.example has no "# A sharded database" example`)
	}
	var b strings.Builder
	b.WriteString(okUsers + "databases:\n")
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "#  ") {
			b.WriteString(line[1:] + "\n")
		}
	}
	c, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if d := c.Databases[0]; d.Name != "shop" || len(d.Shards) != 3 || len(d.Tables) != 5 {
		t.Errorf("sharded example: %+v", d)
	}
}
