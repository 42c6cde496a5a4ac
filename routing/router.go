package routing

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rule says where the rows of one table, or of the tables a pattern
// matches, live.
type Rule struct {
	// Name is an exact table name as PostgreSQL stores it, bare ("users")
	// or schema-qualified ("public.users"). Pattern, when set instead, is
	// matched against the bare table name.
	Name    string
	Pattern *regexp.Regexp
	// Key is the shard key column, lower case; Method places its values.
	Key    string
	Method Method
	// Type is the key column's type: Bind parameters in binary format are
	// decoded with it (see BindText).
	Type KeyType
	// Shards are the database's shards (indexes) this rule spreads over;
	// the method's result indexes this list.
	Shards []int
	// Replicated tables have a full copy on every shard of Shards: reads
	// go to one, writes to all.
	Replicated bool
	// placement identifies how rows are spread: rules with equal
	// placement are co-located (same method, same shards).
	placement string
}

// Router is one database's routing table. It is immutable and safe for
// concurrent use; a reload builds a new one.
type Router struct {
	shards []string
	def    int
	rules  []Rule
	exact  map[string]int
}

// NewRouter checks the rules against the shard list. def is the index of
// the shard that holds every table no rule names.
func NewRouter(shards []string, def int, rules []Rule) (*Router, error) {
	if def < 0 || def >= len(shards) {
		return nil, errors.New("default shard out of range")
	}
	r := &Router{shards: shards, def: def, rules: rules, exact: map[string]int{}}
	for i := range r.rules {
		ru := &r.rules[i]
		if len(ru.Shards) == 0 {
			for s := range shards {
				ru.Shards = append(ru.Shards, s)
			}
		}
		for _, s := range ru.Shards {
			if s < 0 || s >= len(shards) {
				return nil, fmt.Errorf("rule %d: shard %d out of range", i, s)
			}
		}
		if !ru.Replicated && ru.Method == nil {
			return nil, fmt.Errorf("rule %d: a sharded table needs a method", i)
		}
		ru.placement = fmt.Sprintf("%T%+v%v", ru.Method, ru.Method, ru.Shards)
		if ru.Name != "" {
			if _, dup := r.exact[ru.Name]; dup {
				return nil, fmt.Errorf("rule %d: table %q has two rules", i, ru.Name)
			}
			r.exact[ru.Name] = i
		}
	}
	return r, nil
}

// Shards returns the shard names, in configuration order.
func (r *Router) Shards() []string { return r.shards }

// Rule returns the rule for a table, or nil when the table lives on the
// default shard. Names compare as PostgreSQL stores them (the parser has
// already folded unquoted identifiers to lower case). A schema-qualified
// reference matches a rule for that schema or an unqualified rule; an
// unqualified reference matches an unqualified rule, or else a qualified
// rule for a table of that name (pgshard cannot see the client's
// search_path, and sending a sharded table to the default shard would
// misplace rows). Patterns see the bare table name; exact names win over
// patterns, and the first matching pattern wins.
func (r *Router) Rule(t TableRef) *Rule {
	if t.Schema != "" {
		if i, ok := r.exact[t.Schema+"."+t.Name]; ok {
			return &r.rules[i]
		}
	}
	if i, ok := r.exact[t.Name]; ok {
		return &r.rules[i]
	}
	if t.Schema == "" {
		for i := range r.rules {
			if _, name, ok := strings.Cut(r.rules[i].Name, "."); ok && name == t.Name {
				return &r.rules[i]
			}
		}
	}
	for i := range r.rules {
		if p := r.rules[i].Pattern; p != nil && p.MatchString(t.Name) {
			return &r.rules[i]
		}
	}
	return nil
}

// TableRef names a table as a statement does.
type TableRef struct{ Schema, Name string }

// ColumnRef is a column of a table in a statement.
type ColumnRef struct {
	Table  TableRef
	Column string
}

// KeyPred says the statement only touches rows whose Column equals one of
// Values (text forms). Known is false when a value is not known yet (a
// parameter not bound).
type KeyPred struct {
	ColumnRef
	Values []string
	Known  bool
}

// Statement is what routing needs to know of a statement. The proxy fills
// it from the parser's analysis and the Bind parameters.
type Statement struct {
	Tables []TableRef
	Keys   []KeyPred
	// Joins are equality conditions between columns of two tables; a join
	// on both tables' shard keys keeps co-located tables on one shard.
	Joins []JoinEq
	Write bool
	// Hints from /* pgshard: shard=... */, key=..., or SET pgshard.*.
	HintShard string
	HintKey   string
}

// JoinEq is a.col = b.col.
type JoinEq struct{ A, B ColumnRef }

// PlanKind says how many shards a statement goes to.
type PlanKind string

const (
	// Single: one shard.
	Single PlanKind = "single"
	// Multi: some shards, each holding part of the answer.
	Multi PlanKind = "multi"
	// All: every shard of the rules involved.
	All PlanKind = "all"
	// Broadcast: a write to a replicated table, applied on every shard.
	Broadcast PlanKind = "broadcast"
	// Reject: the statement cannot be served; Reason says why.
	Reject PlanKind = "reject"
)

// Plan is a routing decision: a plain value that can be printed, compared
// in tests and shown by SHOW ROUTE.
type Plan struct {
	Kind   PlanKind `json:"kind"`
	Shards []string `json:"shards,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// ErrUnknownShard is returned for a hint naming a shard that does not
// exist. Callers report it as SQLSTATE 22023.
var ErrUnknownShard = errors.New("unknown shard")

// Route decides where a statement goes. Errors are for bad input (an
// unparseable key value, a hint naming no shard, a key no shard holds);
// statements that cannot be served get a Reject plan instead.
func (r *Router) Route(st Statement) (Plan, error) {
	if st.HintShard != "" {
		i := slices.Index(r.shards, st.HintShard)
		if i < 0 {
			return Plan{}, fmt.Errorf("%w %q: the database has %s", ErrUnknownShard, st.HintShard, strings.Join(r.shards, ", "))
		}
		return r.plan(Single, []int{i}, "hint"), nil
	}
	var parts []part
	for _, t := range st.Tables {
		ru := r.Rule(t)
		p := part{rule: ru, table: t}
		switch {
		case ru == nil:
			p.shards, p.pinned = []int{r.def}, true
		case ru.Replicated:
			p.shards = ru.Shards
		default:
			vals, ok := r.keyValues(st, t, ru)
			if ok {
				set, err := r.place(ru, vals)
				if err != nil {
					return Plan{}, fmt.Errorf("table %s: %w", t.Name, err)
				}
				p.shards, p.pinned = set, true
			} else {
				p.shards = ru.Shards
			}
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		// No table: a function call, SHOW, SELECT 1... The default shard
		// answers.
		return r.plan(Single, []int{r.def}, "no table"), nil
	}

	// Writes to replicated tables go to every copy, and only alone.
	if st.Write {
		for _, p := range parts {
			if p.rule != nil && p.rule.Replicated {
				if len(parts) > 1 {
					return Plan{Kind: Reject, Reason: fmt.Sprintf("a write to the replicated table %s cannot involve other tables", p.table.Name)}, nil
				}
				return r.plan(Broadcast, p.rule.Shards, "replicated write"), nil
			}
		}
	}

	// Sharded and unsharded tables must agree on the shards; replicated
	// tables (read) fit anywhere their rule spreads. Two tables on several
	// shards may run there only if they are co-located and joined on their
	// keys, so that each shard's join sees all the rows that match.
	var need []int
	first := true
	var anchor *part
	for i := range parts {
		p := &parts[i]
		if p.rule != nil && p.rule.Replicated {
			continue
		}
		if first {
			need, first, anchor = slices.Clone(p.shards), false, p
			continue
		}
		single := len(p.shards) == 1 && sameSet(p.shards, need)
		switch {
		case single && p.pinned && anchor.pinned:
			// Both on the same one shard.
		case colocated(st, anchor, p) && (p.pinned || anchor.pinned):
			if !p.pinned {
				break
			}
			if anchor.pinned {
				need = intersect(need, p.shards)
			} else {
				need, anchor = slices.Clone(p.shards), p
			}
		case colocated(st, anchor, p):
			// Neither pinned: every shard joins its own rows.
		default:
			return Plan{Kind: Reject, Reason: fmt.Sprintf("%s and %s are not on one shard: pin both shard keys to one shard, or join tables sharded alike on their keys", anchor.table.Name, p.table.Name)}, nil
		}
		if len(need) == 0 {
			return Plan{Kind: Reject, Reason: fmt.Sprintf("the keys given for %s and %s are on different shards", anchor.table.Name, p.table.Name)}, nil
		}
	}
	if first {
		// Only replicated tables: any one copy answers a read.
		return r.plan(Single, parts[0].rule.Shards[:1], "replicated read"), nil
	}
	for _, p := range parts {
		if p.rule != nil && p.rule.Replicated && !subset(need, p.rule.Shards) {
			return Plan{Kind: Reject, Reason: fmt.Sprintf("the replicated table %s has no copy on every shard this statement needs", p.table.Name)}, nil
		}
	}
	switch {
	case len(need) == 1:
		return r.plan(Single, need, ""), nil
	case anchor.rule != nil && !anchor.pinned:
		return r.plan(All, need, "shard key not pinned"), nil
	default:
		return r.plan(Multi, need, ""), nil
	}
}

// part is one table of a statement being routed.
type part struct {
	rule   *Rule
	table  TableRef
	shards []int
	pinned bool
}

// colocated reports whether two sharded tables keep the rows they join on
// the same shard: same placement (method and shards) and a join on both
// shard keys.
func colocated(st Statement, a, b *part) bool {
	if a.rule == nil || b.rule == nil || a.rule.Replicated || b.rule.Replicated || a.rule.placement != b.rule.placement {
		return false
	}
	for _, j := range st.Joins {
		if joinsKeys(j.A, j.B, a, b) || joinsKeys(j.B, j.A, a, b) {
			return true
		}
	}
	return false
}

func joinsKeys(x, y ColumnRef, a, b *part) bool {
	return sameTable(x.Table, a.table) && strings.EqualFold(x.Column, a.rule.Key) &&
		sameTable(y.Table, b.table) && strings.EqualFold(y.Column, b.rule.Key)
}

func (r *Router) keyValues(st Statement, t TableRef, ru *Rule) ([]string, bool) {
	for _, k := range st.Keys {
		if sameTable(k.Table, t) && strings.EqualFold(k.Column, ru.Key) {
			return k.Values, k.Known && len(k.Values) > 0
		}
	}
	if st.HintKey != "" {
		return []string{st.HintKey}, true
	}
	return nil, false
}

// place returns the shards (database indexes, sorted, unique) holding the
// given key values.
func (r *Router) place(ru *Rule, vals []string) ([]int, error) {
	var out []int
	for _, v := range vals {
		i, err := ru.Method.Shard(v)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(ru.Shards) {
			return nil, fmt.Errorf("method placed key %q on shard %d of %d", v, i, len(ru.Shards))
		}
		if s := ru.Shards[i]; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (r *Router) plan(k PlanKind, shards []int, reason string) Plan {
	p := Plan{Kind: k, Reason: reason}
	for _, s := range shards {
		p.Shards = append(p.Shards, r.shards[s])
	}
	return p
}

func sameTable(a, b TableRef) bool {
	return a.Name == b.Name && (a.Schema == "" || b.Schema == "" || a.Schema == b.Schema)
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func sameSet(a, b []int) bool { return subset(a, b) && subset(b, a) }

func subset(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
