package config

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The statement-routing keys of a database: which shard holds which rows of
// which table, and how reads use replicas. Parse fills in their defaults and
// validates them; ProxyOptions passes them to the proxy, which routes with
// them (docs/config.md, "How statements are routed").

// Defaults of the routing keys; docs/config.md lists the same values.
const (
	defaultLoadBalance   = LoadBalanceRoundRobin
	defaultCrossShard    = CrossShardAllow
	defaultMaxReplicaLag = 16 * megabyte
)

var defaultReadYourWrites = ReadYourWrites{Mode: ReadYourWritesLSN}

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names are truncated
// by the server, so a longer one here would never match.
const maxIdentifierLen = 63

// TableRule says where the rows of one table (Name) or of every table whose
// name matches Pattern live. Exactly one of Name and Pattern is set. A
// Replicated rule has nothing else set; any other rule has Key and Method
// and, for range and list, Ranges or Lists.
//
// Tables no rule names live on the database's DefaultShard. The rules are
// plain data: Pattern is validated but not compiled here (compile it with
// regexp.MustCompile, which cannot fail after Parse).
type TableRule struct {
	// Name is a table name, optionally schema-qualified ("public.users"),
	// as PostgreSQL stores it (unquoted names in SQL are folded to lower
	// case). No two rules have the same Name.
	Name string `yaml:"name"`
	// Pattern is a Go (RE2) regular expression matched against table names
	// without their schema; it is not anchored unless written with ^ and $.
	Pattern string `yaml:"pattern"`
	// Replicated means every shard holds a full copy of the table.
	Replicated bool `yaml:"replicated"`
	// Key is the shard key column.
	Key string `yaml:"key"`
	// Method is how Key values map to shards.
	Method ShardMethod `yaml:"method"`
	// KeyType is the key column's type; empty means the proxy learns it from
	// the catalog. When set, Ranges and Lists values were checked against it.
	KeyType KeyType `yaml:"key_type"`
	// Shards are the shards this rule spreads rows over, in order: hash
	// remainder i goes to Shards[i]. Parse sets it to all of the
	// database's shards, in order, when the file leaves it out; it is
	// empty for a Replicated rule.
	Shards []string `yaml:"shards"`
	// Ranges, for method range, in ascending order without overlap.
	Ranges []Range `yaml:"ranges"`
	// Lists, for method list, maps a shard name to the key values it holds;
	// a value appears under one shard only.
	Lists map[string][]string `yaml:"lists"`
	// Default, for method list, is the shard of values no list names; empty
	// means such values are an error.
	Default string `yaml:"default"`
}

// Range is one range of a range rule: key values from From (inclusive) to
// To (exclusive) live on Shard, as in PostgreSQL's FOR VALUES FROM ... TO.
// An empty From is unbounded below, an empty To unbounded above; at least
// one is set.
type Range struct {
	From  string `yaml:"from"`
	To    string `yaml:"to"`
	Shard string `yaml:"shard"`
}

// ShardMethod is how a table rule maps key values to shards.
type ShardMethod string

// The shard methods.
const (
	// MethodHash places a row where PostgreSQL's PARTITION BY HASH with
	// MODULUS len(Shards) would put it (see routing.PartitionIndex).
	MethodHash ShardMethod = "hash"
	// MethodRange places a row by the Range its key falls in.
	MethodRange ShardMethod = "range"
	// MethodList places a row by the list its key appears in.
	MethodList ShardMethod = "list"
)

// KeyType is the PostgreSQL type of a shard key column.
type KeyType string

// The key types a rule may name.
const (
	KeySmallint    KeyType = "smallint"
	KeyInteger     KeyType = "integer"
	KeyBigint      KeyType = "bigint"
	KeyText        KeyType = "text"
	KeyVarchar     KeyType = "varchar"
	KeyUUID        KeyType = "uuid"
	KeyNumeric     KeyType = "numeric"
	KeyDate        KeyType = "date"
	KeyTimestamp   KeyType = "timestamp"
	KeyTimestamptz KeyType = "timestamptz"
)

var keyTypes = []KeyType{KeySmallint, KeyInteger, KeyBigint, KeyText, KeyVarchar, KeyUUID, KeyNumeric, KeyDate, KeyTimestamp, KeyTimestamptz}

// LoadBalance is how reads are spread over a shard's replicas.
type LoadBalance string

// The load-balancing policies.
const (
	LoadBalanceRoundRobin LoadBalance = "round_robin"
	LoadBalanceRandom     LoadBalance = "random"
	LoadBalanceLeastBusy  LoadBalance = "least_busy"
)

// CrossShard is what pgshard does with a statement that needs more than
// one shard.
type CrossShard string

// The cross-shard policies.
const (
	CrossShardAllow CrossShard = "allow" // run it on every shard it needs
	CrossShardDeny  CrossShard = "deny"  // refuse it (SQLSTATE 0A000)
	CrossShardLog   CrossShard = "log"   // run it, and log that it ran
)

// Hints says whether a database honours routing hints.
type Hints string

// The hint policies.
const (
	HintsAllow Hints = "allow" // honour them
	HintsDeny  Hints = "deny"  // refuse them (SQLSTATE 42501)
)

// ReadYourWritesMode is how a client is kept from reading, on a replica,
// data older than its own writes.
type ReadYourWritesMode string

// The read-your-writes modes.
const (
	// ReadYourWritesLSN sends a client's reads to a replica only once it has
	// replayed the client's last write (its WAL position).
	ReadYourWritesLSN ReadYourWritesMode = "lsn"
	// ReadYourWritesOff does nothing: a read may miss the client's writes.
	ReadYourWritesOff ReadYourWritesMode = "off"
	// ReadYourWritesWindow keeps a client's reads on the primary for
	// ReadYourWrites.Window after each of its writes.
	ReadYourWritesWindow ReadYourWritesMode = "window"
)

// ReadYourWrites is the read_your_writes key: "lsn", "off", or a positive Go
// duration (Mode ReadYourWritesWindow with that Window).
type ReadYourWrites struct {
	Mode ReadYourWritesMode
	// Window is set for Mode ReadYourWritesWindow only.
	Window time.Duration
}

// UnmarshalYAML parses "lsn", "off" or a positive duration.
func (w *ReadYourWrites) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "expected lsn, off or a duration such as 5s, got %s", kindName(n))
	}
	switch v := ReadYourWritesMode(n.Value); v {
	case ReadYourWritesLSN, ReadYourWritesOff:
		*w = ReadYourWrites{Mode: v}
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		return nodeError(n, "invalid read_your_writes %q: use lsn, off or a positive duration such as 5s", n.Value)
	}
	*w = ReadYourWrites{Mode: ReadYourWritesWindow, Window: d}
	return nil
}

// String returns the form UnmarshalYAML reads: "lsn", "off" or a duration.
func (w ReadYourWrites) String() string {
	if w.Mode == ReadYourWritesWindow {
		return Duration(w.Window).String()
	}
	return string(w.Mode)
}

// MarshalText returns String.
func (w ReadYourWrites) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// applyRoutingDefaults fills in the routing keys of database d (at path p)
// that the file leaves out.
func applyRoutingDefaults(d *Database, p string, set func(string, func())) {
	set(p+".default_shard", func() {
		if len(d.Shards) > 0 {
			d.DefaultShard = d.Shards[0].Name
		}
	})
	set(p+".load_balance", func() { d.LoadBalance = defaultLoadBalance })
	set(p+".cross_shard", func() { d.CrossShard = defaultCrossShard })
	set(p+".hints", func() {
		// A tenant must not step around cross_shard: deny by naming each
		// shard in turn, unless the file says hints are fine.
		d.Hints = HintsAllow
		if d.CrossShard == CrossShardDeny {
			d.Hints = HintsDeny
		}
	})
	set(p+".two_phase_commit", func() { d.TwoPhaseCommit = len(d.Shards) > 1 && d.BackendUser != "" })
	set(p+".read_your_writes", func() { d.ReadYourWrites = defaultReadYourWrites })
	set(p+".max_replica_lag", func() { d.MaxReplicaLag = defaultMaxReplicaLag })
	for j := range d.Tables {
		t := &d.Tables[j]
		set(fmt.Sprintf("%s.tables[%d].shards", p, j), func() {
			if !t.Replicated {
				for _, s := range d.Shards {
					t.Shards = append(t.Shards, s.Name)
				}
			}
		})
	}
}

// cloneRouting makes d's routing slices and maps its own.
func cloneRouting(d *Database) {
	d.ReadOnlyFunctions = slices.Clone(d.ReadOnlyFunctions)
	d.Tables = slices.Clone(d.Tables)
	for i := range d.Tables {
		t := &d.Tables[i]
		t.Shards = slices.Clone(t.Shards)
		t.Ranges = slices.Clone(t.Ranges)
		t.Lists = maps.Clone(t.Lists)
		for k, v := range t.Lists {
			t.Lists[k] = slices.Clone(v)
		}
	}
}

// shardSet is the shard names of a database or of a rule.
type shardSet struct {
	names map[string]bool
	list  []string
}

func newShardSet(names []string) shardSet {
	s := shardSet{names: map[string]bool{}}
	for _, n := range names {
		if n != "" && !s.names[n] {
			s.names[n] = true
			s.list = append(s.list, n)
		}
	}
	return s
}

func (s shardSet) String() string { return strings.Join(s.list, ", ") }

// checkRouting validates the routing keys of database d at path p.
func checkRouting(r *reporter, p string, d *Database) {
	var names []string
	for _, s := range d.Shards {
		names = append(names, s.Name)
	}
	all := newShardSet(names)
	if d.DefaultShard == "" {
		if r.idx.has(p + ".default_shard") {
			r.add(p+".default_shard", "must name a shard (leave it out for the first shard)")
		}
	} else if !all.names[d.DefaultShard] {
		r.add(p+".default_shard", "unknown shard %q; the shards are %s", d.DefaultShard, all)
	}

	seen := map[string]int{}
	for i := range d.Tables {
		checkTableRule(r, fmt.Sprintf("%s.tables[%d]", p, i), &d.Tables[i], all, seen, i)
	}

	switch d.LoadBalance {
	case LoadBalanceRoundRobin, LoadBalanceRandom, LoadBalanceLeastBusy:
	default:
		r.add(p+".load_balance", "unknown load_balance %q; use round_robin, random or least_busy", d.LoadBalance)
	}
	switch d.CrossShard {
	case CrossShardAllow, CrossShardDeny, CrossShardLog:
	default:
		r.add(p+".cross_shard", "unknown cross_shard %q; use allow, deny or log", d.CrossShard)
	}
	switch d.Hints {
	case HintsAllow, HintsDeny:
	default:
		r.add(p+".hints", "unknown hints %q; use allow or deny", d.Hints)
	}
	if d.TwoPhaseCommit && d.BackendUser == "" && len(d.Shards) > 1 {
		r.add(p+".two_phase_commit", "needs backend_user, which recovery logs in to the shards as; set backend_user, or two_phase_commit: false")
	}
	if d.ReadYourWrites.Mode == "" {
		r.add(p+".read_your_writes", "required: lsn, off or a positive duration such as 5s (leave it out for lsn)")
	}
	for i, f := range d.ReadOnlyFunctions {
		if msg := checkQualifiedName(f); msg != "" {
			r.add(fmt.Sprintf("%s.read_only_functions[%d]", p, i), "%s", msg)
		}
	}
}

// checkTableRule validates table rule t at path p, the i-th of its database;
// seen maps the exact names of earlier rules to their index.
func checkTableRule(r *reporter, p string, t *TableRule, all shardSet, seen map[string]int, i int) {
	switch {
	case t.Name != "" && t.Pattern != "":
		r.add(p, "set name or pattern, not both")
	case t.Name == "" && t.Pattern == "":
		r.add(p, "name or pattern is required")
	case t.Name != "":
		if msg := checkQualifiedName(t.Name); msg != "" {
			r.add(p+".name", "%s", msg)
		} else if j, dup := seen[t.Name]; dup {
			r.add(p+".name", "a rule for table %q already exists (tables[%d])", t.Name, j)
		} else {
			seen[t.Name] = i
		}
	default:
		if _, err := regexp.Compile(t.Pattern); err != nil {
			r.add(p+".pattern", "invalid regular expression: %v", err)
		}
	}

	if t.Replicated {
		const why = "not allowed with replicated: true (every shard holds the whole table)"
		for _, f := range []struct {
			key string
			set bool
		}{
			{"key", t.Key != ""}, {"method", t.Method != ""}, {"key_type", t.KeyType != ""}, {"shards", len(t.Shards) > 0},
			{"ranges", len(t.Ranges) > 0}, {"lists", len(t.Lists) > 0}, {"default", t.Default != ""},
		} {
			if f.set {
				r.add(p+"."+f.key, why)
			}
		}
		return
	}

	if t.Key == "" {
		r.add(p+".key", "required (the shard key column), or set replicated: true")
	} else if msg := checkIdentifier(t.Key); msg != "" {
		r.add(p+".key", "%s", msg)
	}
	keyType := t.KeyType
	if keyType != "" && !slices.Contains(keyTypes, keyType) {
		r.add(p+".key_type", "unknown key_type %q; use %s, or leave it out to learn it from the catalog", keyType, joinKeyTypes())
		keyType = ""
	}

	if len(t.Shards) == 0 && r.idx.has(p+".shards") {
		r.add(p+".shards", "must name at least one shard (leave it out for all of them)")
	}
	if r.idx.has(p + ".shards") {
		dup := map[string]int{}
		for j, s := range t.Shards {
			sp := fmt.Sprintf("%s.shards[%d]", p, j)
			switch k, twice := dup[s]; {
			case s == "":
				r.add(sp, "required (a shard name)")
			case !all.names[s]:
				r.add(sp, "unknown shard %q; the shards are %s", s, all)
			case twice:
				r.add(sp, "shard %q is listed twice (also shards[%d])", s, k)
			default:
				dup[s] = j
			}
		}
	}
	subset := newShardSet(t.Shards)

	notWith := func(key string, set bool) {
		if set {
			r.add(p+"."+key, "not allowed with method %s", t.Method)
		}
	}
	switch t.Method {
	case "":
		r.add(p+".method", "required: hash, range or list (or set replicated: true)")
	case MethodHash:
		notWith("ranges", len(t.Ranges) > 0)
		notWith("lists", len(t.Lists) > 0)
		notWith("default", t.Default != "")
	case MethodRange:
		notWith("lists", len(t.Lists) > 0)
		notWith("default", t.Default != "")
		checkRanges(r, p, t.Ranges, keyType, all, subset)
	case MethodList:
		notWith("ranges", len(t.Ranges) > 0)
		checkLists(r, p, t.Lists, keyType, all, subset)
		if t.Default != "" {
			checkShardRef(r, p+".default", t.Default, all, subset)
		}
	default:
		r.add(p+".method", "unknown method %q; use hash, range or list", t.Method)
	}
}

// checkShardRef checks that name, at path p, is a shard of the database and
// of the rule's subset.
func checkShardRef(r *reporter, p, name string, all, subset shardSet) {
	switch {
	case name == "":
		r.add(p, "required (a shard name)")
	case !all.names[name]:
		r.add(p, "unknown shard %q; the shards are %s", name, all)
	case !subset.names[name]:
		r.add(p, "shard %q is not one of this rule's shards (%s)", name, subset)
	}
}

// checkRanges validates the ranges of the rule at path p.
func checkRanges(r *reporter, p string, ranges []Range, kt KeyType, all, subset shardSet) {
	if len(ranges) == 0 {
		r.add(p+".ranges", "required for method range: a list of {from, to, shard}")
		return
	}
	if kt == "" {
		var bounds []string
		for _, rg := range ranges {
			for _, b := range []string{rg.From, rg.To} {
				if b != "" {
					bounds = append(bounds, b)
				}
			}
		}
		kt = inferKeyType(bounds)
	}
	type bound struct {
		v  keyValue
		ok bool // set and valid
	}
	parse := func(path, s string) bound {
		if s == "" {
			return bound{}
		}
		v, err := parseKey(kt, s)
		if err != nil {
			r.add(path, "%v", err)
			return bound{}
		}
		return bound{v, true}
	}
	prevTo, prevOK := bound{}, false // the previous range's upper bound, if the range was valid
	for j, rg := range ranges {
		rp := fmt.Sprintf("%s.ranges[%d]", p, j)
		checkShardRef(r, rp+".shard", rg.Shard, all, subset)
		if rg.From == "" && rg.To == "" {
			r.add(rp, "needs from, to or both")
			prevOK = false
			continue
		}
		from, to := parse(rp+".from", rg.From), parse(rp+".to", rg.To)
		if (rg.From != "" && !from.ok) || (rg.To != "" && !to.ok) {
			prevOK = false
			continue
		}
		valid := true
		if from.ok && to.ok && compareKeys(from.v, to.v) >= 0 {
			r.add(rp+".to", "must be greater than from (%s)", rg.From)
			valid = false
		}
		if j > 0 && prevOK {
			const order = "list ranges in ascending order without overlap"
			switch {
			case !prevTo.ok:
				r.add(rp, "overlaps ranges[%d], which has no upper bound (to); %s", j-1, order)
			case !from.ok:
				r.add(rp, "overlaps ranges[%d]: only the first range may leave out from; %s", j-1, order)
			case compareKeys(from.v, prevTo.v) < 0:
				r.add(rp+".from", "overlaps ranges[%d], which ends at %s; %s", j-1, ranges[j-1].To, order)
			}
		}
		prevTo, prevOK = to, valid
	}
}

// checkLists validates the lists of the rule at path p.
func checkLists(r *reporter, p string, lists map[string][]string, kt KeyType, all, subset shardSet) {
	if len(lists) == 0 {
		r.add(p+".lists", "required for method list: a mapping from shard name to values")
		return
	}
	// Visit the shards in file order, so "also listed under" names the
	// earlier one.
	shards := slices.Collect(maps.Keys(lists))
	slices.SortFunc(shards, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.idx.line(p+".lists."+a), r.idx.line(p+".lists."+b)), strings.Compare(a, b))
	})
	seen := map[string]string{} // canonical value -> shard
	for _, sh := range shards {
		lp := p + ".lists." + sh
		checkShardRef(r, lp, sh, all, subset)
		if len(lists[sh]) == 0 {
			r.add(lp, "needs at least one value")
		}
		for k, v := range lists[sh] {
			vp := fmt.Sprintf("%s[%d]", lp, k)
			c := v
			if kt != "" {
				kv, err := parseKey(kt, v)
				if err != nil {
					r.add(vp, "%v", err)
					continue
				}
				c = kv.canonical()
			}
			switch other, dup := seen[c]; {
			case dup && other == sh:
				r.add(vp, "%q is listed twice under %s", v, sh)
			case dup:
				r.add(vp, "%q is also listed under %s; a value may appear under one shard only", v, other)
			default:
				seen[c] = sh
			}
		}
	}
}

// checkIdentifier returns what is wrong with a PostgreSQL identifier written
// as stored (it will be quoted), or "".
func checkIdentifier(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxIdentifierLen {
		return fmt.Sprintf("%q is longer than %d bytes", s, maxIdentifierLen)
	}
	for i, c := range s {
		switch {
		case c == utf8.RuneError:
			return fmt.Sprintf("%q is not valid UTF-8", s)
		case c == '_' || unicode.IsLetter(c):
		case i > 0 && (c == '$' || unicode.IsDigit(c)):
		default:
			return fmt.Sprintf("%q is not a valid identifier: use letters, digits, _ and $, starting with a letter or _", s)
		}
	}
	return ""
}

// checkQualifiedName checks "name" or "schema.name".
func checkQualifiedName(s string) string {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return fmt.Sprintf("%q has too many dots: use name or schema.name", s)
	}
	for _, part := range parts {
		if msg := checkIdentifier(part); msg != "" {
			if len(parts) == 2 {
				return fmt.Sprintf("in %q: %s", s, msg)
			}
			return msg
		}
	}
	return ""
}

func joinKeyTypes() string {
	s := make([]string, len(keyTypes))
	for i, k := range keyTypes {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// keyValue is a parsed range bound or list value.
type keyValue struct {
	kind byte // 'n' number, 't' time, 's' string
	num  *big.Rat
	t    time.Time
	s    string
}

func compareKeys(a, b keyValue) int {
	switch a.kind {
	case 'n':
		return a.num.Cmp(b.num)
	case 't':
		return a.t.Compare(b.t)
	}
	return strings.Compare(a.s, b.s)
}

// canonical is a string equal for equal values of one key type.
func (v keyValue) canonical() string {
	switch v.kind {
	case 'n':
		return v.num.RatString()
	case 't':
		return v.t.Format(time.RFC3339Nano)
	}
	return v.s
}

// inferKeyType picks how to compare range bounds when key_type is left out:
// as numbers if all are numbers, as times if all are dates or timestamps,
// else as text (byte order).
func inferKeyType(bounds []string) KeyType {
	for _, kt := range []KeyType{KeyNumeric, KeyTimestamptz} {
		ok := true
		for _, b := range bounds {
			if _, err := parseKey(kt, b); err != nil {
				ok = false
				break
			}
		}
		if ok && len(bounds) > 0 {
			return kt
		}
	}
	return KeyText
}

var (
	reNumeric = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$`)
	reUUID    = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// timeLayouts are the accepted forms of a timestamp bound, tried in order.
var timeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly}

// parseKey parses s as a value of type kt (text when kt is empty).
func parseKey(kt KeyType, s string) (keyValue, error) {
	switch kt {
	case KeySmallint, KeyInteger, KeyBigint:
		size := map[KeyType]int{KeySmallint: 16, KeyInteger: 32, KeyBigint: 64}[kt]
		n, err := strconv.ParseInt(s, 10, size)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return keyValue{}, fmt.Errorf("%q is out of range for %s", s, kt)
			}
			return keyValue{}, fmt.Errorf("%q is not an integer (key_type %s)", s, kt)
		}
		return keyValue{kind: 'n', num: new(big.Rat).SetInt64(n)}, nil
	case KeyNumeric:
		if len(s) > 1000 || !reNumeric.MatchString(s) {
			return keyValue{}, fmt.Errorf("%q is not a number (key_type numeric)", s)
		}
		n, ok := new(big.Rat).SetString(s)
		if !ok {
			return keyValue{}, fmt.Errorf("%q is not a number (key_type numeric)", s)
		}
		return keyValue{kind: 'n', num: n}, nil
	case KeyUUID:
		h := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}"), "-", "")
		if !reUUID.MatchString(h) {
			return keyValue{}, fmt.Errorf("%q is not a UUID (such as a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)", s)
		}
		return keyValue{kind: 's', s: strings.ToLower(h)}, nil
	case KeyDate:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return keyValue{}, fmt.Errorf("%q is not a date: use 2006-01-02", s)
		}
		return keyValue{kind: 't', t: t}, nil
	case KeyTimestamp, KeyTimestamptz:
		for _, layout := range timeLayouts {
			t, err := time.Parse(layout, s)
			if err != nil {
				continue
			}
			if kt == KeyTimestamp { // without time zone: the offset is ignored, as PostgreSQL does
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
			}
			return keyValue{kind: 't', t: t.UTC()}, nil
		}
		return keyValue{}, fmt.Errorf("%q is not a %s: use RFC 3339 (2006-01-02T15:04:05Z), \"2006-01-02 15:04:05\" or a date 2006-01-02", s, kt)
	}
	return keyValue{kind: 's', s: s}, nil
}
