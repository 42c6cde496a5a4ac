package routing

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// KeyType is the SQL type of a shard key column. It decides how a key
// value is read, hashed and compared.
type KeyType int

const (
	// KeyInt covers smallint, integer and bigint, which hash alike.
	KeyInt KeyType = iota
	// KeyText covers text and varchar under a deterministic collation.
	KeyText
	KeyUUID
	KeyNumeric
	KeyDate
	KeyTimestamp
	KeyTimestampTZ
)

var keyTypeNames = map[string]KeyType{
	"smallint": KeyInt, "int2": KeyInt, "integer": KeyInt, "int": KeyInt, "int4": KeyInt, "bigint": KeyInt, "int8": KeyInt,
	"text": KeyText, "varchar": KeyText, "character varying": KeyText,
	"uuid": KeyUUID, "numeric": KeyNumeric, "decimal": KeyNumeric, "date": KeyDate,
	"timestamp": KeyTimestamp, "timestamp without time zone": KeyTimestamp,
	"timestamptz": KeyTimestampTZ, "timestamp with time zone": KeyTimestampTZ,
}

// ParseKeyType reads a SQL type name as written in configuration.
func ParseKeyType(name string) (KeyType, error) {
	if t, ok := keyTypeNames[strings.ToLower(strings.TrimSpace(name))]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("unsupported shard key type %q: use smallint, integer, bigint, text, varchar, uuid, numeric, date, timestamp or timestamptz", name)
}

// ErrNoShard means a key value belongs to no shard of its rule: no range
// holds it, or no list names it and the rule has no default. Callers report
// it as SQLSTATE 22023.
var ErrNoShard = errors.New("key value belongs to no shard")

// keyValue is a parsed key of one KeyType; only the fields of its type are
// set.
type keyValue struct {
	i   int64
	s   string
	u   [16]byte
	num *big.Rat
	t   time.Time
}

// parseKey reads the text form of a key value (a SQL literal without
// quotes, or a text-format Bind parameter) as PostgreSQL would for the type.
func parseKey(t KeyType, text string) (keyValue, error) {
	var v keyValue
	var err error
	switch t {
	case KeyInt:
		v.i, err = strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	case KeyText:
		v.s = text
	case KeyUUID:
		v.u, err = parseUUID(text)
	case KeyNumeric:
		r, ok := new(big.Rat).SetString(strings.TrimSpace(text))
		if !ok {
			err = errors.New("not a number")
		}
		v.num = r
	case KeyDate:
		v.t, err = time.Parse("2006-01-02", strings.TrimSpace(text))
	case KeyTimestamp, KeyTimestampTZ:
		v.t, err = parseTimestamp(strings.TrimSpace(text), t == KeyTimestampTZ)
	}
	if err != nil {
		return keyValue{}, fmt.Errorf("invalid shard key value %q: %w", text, err)
	}
	return v, nil
}

// parseUUID accepts the input forms PostgreSQL does: upper or lower case,
// optional braces, hyphens after any group of four digits.
func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return u, errors.New("not a uuid")
	}
	if _, err := hex.Decode(u[:], []byte(s)); err != nil {
		return u, errors.New("not a uuid")
	}
	return u, nil
}

func parseTimestamp(s string, tz bool) (time.Time, error) {
	layouts := []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}
	if tz {
		layouts = []string{"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999Z07:00", time.RFC3339Nano}
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a timestamp (use ISO 8601: 2006-01-02 15:04:05)")
}

func compare(t KeyType, a, b keyValue) int {
	switch t {
	case KeyInt:
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	case KeyText:
		// Byte order: what the C collation gives. Ranges over text keys
		// are documented to use it.
		return strings.Compare(a.s, b.s)
	case KeyNumeric:
		return a.num.Cmp(b.num)
	case KeyUUID:
		return strings.Compare(string(a.u[:]), string(b.u[:]))
	default:
		return a.t.Compare(b.t)
	}
}

// Method places a key value on a shard: it returns an index into the
// shards of its rule. Implementations are immutable and safe for
// concurrent use.
type Method interface {
	// Shard returns the index of the shard holding rows whose key has the
	// text form v.
	Shard(v string) (int, error)
}

// Hash places a key where PostgreSQL's PARTITION BY HASH with MODULUS N
// would: remainder i is shard i.
type Hash struct {
	Type KeyType
	N    int
}

// NewHash returns the hash method over n shards. Only integer, text and
// uuid keys can be hashed like PostgreSQL does.
func NewHash(t KeyType, n int) (Hash, error) {
	if t != KeyInt && t != KeyText && t != KeyUUID {
		return Hash{}, errors.New("hash sharding supports smallint, integer, bigint, text, varchar and uuid keys")
	}
	if n < 1 {
		return Hash{}, errors.New("hash sharding needs at least one shard")
	}
	return Hash{Type: t, N: n}, nil
}

// Shard implements Method.
func (h Hash) Shard(text string) (int, error) {
	v, err := parseKey(h.Type, text)
	if err != nil {
		return 0, err
	}
	var sum uint64
	switch h.Type {
	case KeyInt:
		sum = HashInt(v.i)
	case KeyText:
		sum = HashText(v.s)
	default:
		sum = HashUUID(v.u)
	}
	return PartitionIndex(sum, h.N), nil
}

// Bound is one range of a Range method: keys in [From, To) go to Shard.
// An empty From or To leaves that side open.
type Bound struct {
	From, To string
	Shard    int
}

// Range places keys by half-open ranges [from, to).
type Range struct {
	typ    KeyType
	bounds []parsedBound
}

type parsedBound struct {
	from, to   keyValue
	hasF, hasT bool
	shard      int
	fromS, toS string
}

// NewRange checks the bounds (values of the key type, from < to, no
// overlap) and returns the method.
func NewRange(t KeyType, bounds []Bound) (*Range, error) {
	r := &Range{typ: t}
	for i, b := range bounds {
		pb := parsedBound{shard: b.Shard, fromS: b.From, toS: b.To}
		var err error
		if b.From != "" {
			pb.hasF = true
			if pb.from, err = parseKey(t, b.From); err != nil {
				return nil, fmt.Errorf("range %d: from: %w", i, err)
			}
		}
		if b.To != "" {
			pb.hasT = true
			if pb.to, err = parseKey(t, b.To); err != nil {
				return nil, fmt.Errorf("range %d: to: %w", i, err)
			}
		}
		if !pb.hasF && !pb.hasT {
			return nil, fmt.Errorf("range %d: needs from, to or both", i)
		}
		if pb.hasF && pb.hasT && compare(t, pb.from, pb.to) >= 0 {
			return nil, fmt.Errorf("range %d: from %q is not below to %q", i, b.From, b.To)
		}
		for j, other := range r.bounds {
			if overlaps(t, pb, other) {
				return nil, fmt.Errorf("range %d overlaps range %d", i, j)
			}
		}
		r.bounds = append(r.bounds, pb)
	}
	return r, nil
}

func overlaps(t KeyType, a, b parsedBound) bool {
	// a ends before b starts, or b ends before a starts: no overlap.
	if a.hasT && b.hasF && compare(t, a.to, b.from) <= 0 {
		return false
	}
	if b.hasT && a.hasF && compare(t, b.to, a.from) <= 0 {
		return false
	}
	return true
}

// Shard implements Method.
func (r *Range) Shard(text string) (int, error) {
	v, err := parseKey(r.typ, text)
	if err != nil {
		return 0, err
	}
	for _, b := range r.bounds {
		if (!b.hasF || compare(r.typ, v, b.from) >= 0) && (!b.hasT || compare(r.typ, v, b.to) < 0) {
			return b.shard, nil
		}
	}
	return 0, fmt.Errorf("%w: no range holds %q", ErrNoShard, text)
}

// List places keys by explicit values.
type List struct {
	typ    KeyType
	values map[string]int // canonical text → shard
	def    int
	hasDef bool
}

// NewList maps each value to its shard; def < 0 means values no list names
// are an error.
func NewList(t KeyType, lists map[int][]string, def int) (*List, error) {
	l := &List{typ: t, values: map[string]int{}, def: def, hasDef: def >= 0}
	for shard, vals := range lists {
		for _, s := range vals {
			key, err := canonical(t, s)
			if err != nil {
				return nil, err
			}
			if prev, dup := l.values[key]; dup && prev != shard {
				return nil, fmt.Errorf("list value %q is listed for two shards", s)
			}
			l.values[key] = shard
		}
	}
	return l, nil
}

// canonical is the comparable form of a key value, so that 007 and 7, or
// two spellings of a uuid, are the same list entry.
func canonical(t KeyType, text string) (string, error) {
	v, err := parseKey(t, text)
	if err != nil {
		return "", err
	}
	switch t {
	case KeyInt:
		return strconv.FormatInt(v.i, 10), nil
	case KeyText:
		return v.s, nil
	case KeyUUID:
		return string(v.u[:]), nil
	case KeyNumeric:
		return v.num.RatString(), nil
	default:
		return v.t.UTC().Format(time.RFC3339Nano), nil
	}
}

// Shard implements Method.
func (l *List) Shard(text string) (int, error) {
	key, err := canonical(l.typ, text)
	if err != nil {
		return 0, err
	}
	if s, ok := l.values[key]; ok {
		return s, nil
	}
	if l.hasDef {
		return l.def, nil
	}
	return 0, fmt.Errorf("%w: no list names %q and the rule has no default", ErrNoShard, text)
}
