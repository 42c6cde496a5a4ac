package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/routing"
)

// routes is the statement routing of a database that has several shards,
// table rules or a read/write split. Databases without any of these have
// none: their statements go to the one primary unparsed.
type routes struct {
	db       string
	shards   []string
	def      int
	specs    []TableRule
	patterns []*regexp.Regexp
	readOnly map[string]bool
	log      *slog.Logger

	router atomic.Pointer[routing.Router]
	cat    atomic.Pointer[catalog]
	// learnMu serializes catalog lookups; learnedAt rate-limits them.
	learnMu   sync.Mutex
	learnedAt time.Time
	// collation is the database's default collation on its first shard,
	// once a merge of text keys needed it; collMu guards it.
	collMu    sync.Mutex
	collation string
}

// catalog is what the shards' catalogs say about the columns rules name:
// by table ("schema.name" and bare "name"), then by column.
type catalog map[string]map[string]keyColumn

type keyColumn struct {
	typ string // format_type of the column
	pos int    // 1-based position among the table's columns
}

// learnInterval is how often a missing key column may make pgshard look at
// the catalog again.
const learnInterval = time.Second

// routed reports whether a database needs statement routing.
func routed(d *Database) bool {
	if len(d.Shards) > 1 || len(d.Tables) > 0 {
		return true
	}
	return d.ReadWriteSplit && len(d.Shards[0].Replicas) > 0
}

func newRoutes(d *Database, log *slog.Logger) (*routes, error) {
	rt := &routes{db: d.Name, log: log, readOnly: map[string]bool{}}
	for _, sh := range d.Shards {
		rt.shards = append(rt.shards, sh.Name)
	}
	if d.DefaultShard != "" {
		rt.def = slices.Index(rt.shards, d.DefaultShard)
		if rt.def < 0 {
			return nil, fmt.Errorf("default shard %q is not one of the database's shards", d.DefaultShard)
		}
	}
	for _, f := range d.ReadOnlyFunctions {
		rt.readOnly[f] = true
	}
	rt.specs = d.Tables
	rt.patterns = make([]*regexp.Regexp, len(d.Tables))
	for i, t := range d.Tables {
		if t.Pattern != "" {
			re, err := regexp.Compile(t.Pattern)
			if err != nil {
				return nil, fmt.Errorf("table rule %d: %w", i, err)
			}
			rt.patterns[i] = re
		}
	}
	r, err := rt.build(catalog{})
	if err != nil {
		return nil, err
	}
	rt.router.Store(r)
	rt.cat.Store(&catalog{})
	return rt, nil
}

// unknownKeyType is the method of a rule whose key column type is not
// known yet: it fails, so nothing is placed by a guess.
type unknownKeyType struct{ err error }

func (u unknownKeyType) Shard(string) (int, error) { return 0, u.err }

var errKeyType = errors.New("shard key type unknown")

// build makes the router for the rules, taking key types the rules leave
// out from cat.
func (rt *routes) build(cat catalog) (*routing.Router, error) {
	rules := make([]routing.Rule, 0, len(rt.specs))
	for i, spec := range rt.specs {
		ru := routing.Rule{Name: spec.Name, Pattern: rt.patterns[i], Key: strings.ToLower(spec.Key), Replicated: spec.Replicated}
		for _, name := range spec.Shards {
			j := slices.Index(rt.shards, name)
			if j < 0 {
				return nil, fmt.Errorf("table rule %d: unknown shard %q", i, name)
			}
			ru.Shards = append(ru.Shards, j)
		}
		if len(ru.Shards) == 0 {
			for j := range rt.shards {
				ru.Shards = append(ru.Shards, j)
			}
		}
		if !spec.Replicated {
			m, typ, err := rt.method(spec, ru, cat)
			if err != nil {
				if spec.KeyType != "" {
					return nil, fmt.Errorf("table rule %d: %w", i, err)
				}
				m = unknownKeyType{err}
			}
			ru.Method, ru.Type = m, typ
		}
		rules = append(rules, ru)
	}
	return routing.NewRouter(rt.shards, rt.def, rules)
}

// method builds a rule's method, with the key type from the rule or from
// the catalog.
func (rt *routes) method(spec TableRule, ru routing.Rule, cat catalog) (routing.Method, routing.KeyType, error) {
	typName := spec.KeyType
	if typName == "" {
		table := spec.Name
		if spec.Pattern != "" {
			for _, name := range slices.Sorted(maps.Keys(cat)) {
				bare := name
				if _, n, ok := strings.Cut(name, "."); ok {
					bare = n
				}
				if _, has := cat[name][ru.Key]; has && ru.Pattern.MatchString(bare) {
					table = name
					break
				}
			}
		}
		kc, ok := cat[table][ru.Key]
		if !ok {
			return nil, 0, fmt.Errorf("%w: no table %s with column %s was found on shard %s; create it there or set key_type in its rule",
				errKeyType, orPattern(spec), ru.Key, rt.shards[ru.Shards[0]])
		}
		typName = kc.typ
	}
	typ, err := routing.ParseKeyType(typName)
	if err != nil {
		return nil, 0, err
	}
	var m routing.Method
	switch spec.Method {
	case "hash":
		m, err = routing.NewHash(typ, len(ru.Shards))
	case "range":
		var bounds []routing.Bound
		for _, r := range spec.Ranges {
			bounds = append(bounds, routing.Bound{From: r.From, To: r.To, Shard: slices.Index(ru.Shards, slices.Index(rt.shards, r.Shard))})
		}
		m, err = routing.NewRange(typ, bounds)
	case "list":
		lists := map[int][]string{}
		for name, vals := range spec.Lists {
			lists[slices.Index(ru.Shards, slices.Index(rt.shards, name))] = vals
		}
		def := -1
		if spec.Default != "" {
			def = slices.Index(ru.Shards, slices.Index(rt.shards, spec.Default))
		}
		m, err = routing.NewList(typ, lists, def)
	default:
		err = fmt.Errorf("unknown method %q", spec.Method)
	}
	return m, typ, err
}

func orPattern(spec TableRule) string {
	if spec.Name != "" {
		return spec.Name
	}
	return "matching " + spec.Pattern
}

// learn reads the shard key columns of the shards' tables from the
// primaries' catalogs (at most once per learnInterval) and rebuilds the
// router. connect opens a connection to a shard's primary.
func (rt *routes) learn(ctx context.Context, connect func(ctx context.Context, shard int) (*pgconn.PgConn, error)) {
	rt.learnMu.Lock()
	defer rt.learnMu.Unlock()
	if time.Since(rt.learnedAt) < learnInterval {
		return
	}
	rt.learnedAt = time.Now()
	var keys []string
	for _, spec := range rt.specs {
		if !spec.Replicated {
			keys = append(keys, "'"+strings.ReplaceAll(strings.ToLower(spec.Key), "'", "''")+"'")
		}
	}
	if len(keys) == 0 {
		return
	}
	// The default shard first, then the others: a rule's tables live on
	// its shards, which need not include the default one.
	shards := []int{rt.def}
	for j := range rt.shards {
		if !slices.Contains(shards, j) {
			shards = append(shards, j)
		}
	}
	sql := `SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, NULL),
	(SELECT count(*) FROM pg_attribute b WHERE b.attrelid = c.oid AND b.attnum > 0 AND NOT b.attisdropped AND b.attnum <= a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND a.attname IN (` + strings.Join(keys, ",") + `)`
	cat := catalog{}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, sh := range shards {
		pc, err := connect(ctx, sh)
		if err != nil {
			rt.log.Warn("could not read shard key columns from the catalog", "database", rt.db, "shard", rt.shards[sh], "error", err)
			continue
		}
		res := pc.Exec(ctx, sql)
		rs, err := res.ReadAll()
		pc.Close(ctx)
		if err != nil {
			rt.log.Warn("could not read shard key columns from the catalog", "database", rt.db, "shard", rt.shards[sh], "error", err)
			continue
		}
		for _, row := range rs[0].Rows {
			schema, table, col, typ := string(row[0]), string(row[1]), string(row[2]), string(row[3])
			var pos int
			fmt.Sscan(string(row[4]), &pos)
			for _, name := range []string{schema + "." + table, table} {
				if cat[name] == nil {
					cat[name] = map[string]keyColumn{}
				}
				if _, seen := cat[name][col]; !seen {
					cat[name][col] = keyColumn{typ: typ, pos: pos}
				}
			}
		}
	}
	nr, err := rt.build(cat)
	if err != nil {
		rt.log.Warn("routing rules", "database", rt.db, "error", err)
		return
	}
	rt.cat.Store(&cat)
	rt.router.Store(nr)
}

// needsCatalog reports whether routing a statement needs catalog facts not
// known yet: the type of a rule's key, or the key's position for an INSERT
// without a column list.
func (rt *routes) needsCatalog(r *routing.Router, a *parser.Analysis) bool {
	for _, t := range a.Tables {
		if ru := r.Rule(routing.TableRef{Schema: t.Schema, Name: t.Name}); ru != nil && !ru.Replicated {
			if _, unknown := ru.Method.(unknownKeyType); unknown {
				return true
			}
		}
	}
	if c := a.Copy; c != nil && c.Direction == parser.CopyFromStdin && len(c.Columns) == 0 {
		if ru := r.Rule(routing.TableRef{Schema: c.Table.Schema, Name: c.Table.Name}); ru != nil && !ru.Replicated {
			if _, ok := rt.keyPosition(c.Table, ru.Key); !ok {
				return true
			}
		}
	}
	for _, ins := range a.Inserts {
		if ru := r.Rule(routing.TableRef{Schema: ins.Table.Schema, Name: ins.Table.Name}); ru != nil && !ru.Replicated && len(ins.Columns) == 0 {
			if _, ok := rt.keyPosition(ins.Table, ru.Key); !ok {
				return true
			}
		}
	}
	return false
}

// keyPosition returns the 0-based position of column key among the
// columns of table, from the catalog.
func (rt *routes) keyPosition(t parser.TableRef, key string) (int, bool) {
	cat := *rt.cat.Load()
	name := t.Name
	if t.Schema != "" {
		name = t.Schema + "." + t.Name
	}
	kc, ok := cat[name][key]
	return kc.pos - 1, ok
}

// bindParams are the parameter values of a Bind message.
type bindParams struct {
	formats []int16
	values  [][]byte // nil: NULL
	// literals, when set instead, are the literals of a simple Query that
	// the cached analysis of its normalized text calls $1, $2, ...
	literals []string
}

// parseBindParams reads the parameter section of a Bind message (what
// follows the portal and statement names).
func parseBindParams(b []byte) (*bindParams, error) {
	bad := errors.New("malformed Bind message")
	if len(b) < 2 {
		return nil, bad
	}
	p := &bindParams{}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*n {
		return nil, bad
	}
	for i := 0; i < n; i++ {
		p.formats = append(p.formats, int16(binary.BigEndian.Uint16(b[2*i:])))
	}
	b = b[2*n:]
	if len(b) < 2 {
		return nil, bad
	}
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, bad
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l < 0 {
			p.values = append(p.values, nil)
			continue
		}
		if int(l) > len(b) {
			return nil, bad
		}
		p.values = append(p.values, b[:l:l])
		b = b[l:]
	}
	return p, nil
}

// format returns the format code of parameter i (0-based).
func (p *bindParams) format(i int) int16 {
	switch len(p.formats) {
	case 0:
		return 0
	case 1:
		return p.formats[0]
	}
	if i < len(p.formats) {
		return p.formats[i]
	}
	return 0
}

// keyValues appends to dst the text forms of a value that a key column is
// compared with, and reports whether all of them are known (if not, dst is
// returned as it was). Arrays (key = ANY($1)) give each element. A scalar
// costs no allocation beyond dst's growth.
func keyValues(dst []string, v parser.Value, array bool, p *bindParams, typ routing.KeyType) ([]string, bool, error) {
	var (
		vals []string
		ok   bool
		err  error
	)
	switch v.Kind {
	case parser.ValueInt, parser.ValueNumeric, parser.ValueString, parser.ValueBool:
		if !array {
			return append(dst, v.Text), true, nil
		}
		vals, ok, err = parseTextArray(v.Text)
	case parser.ValueParam:
		if p != nil && p.literals != nil {
			if v.Param < 1 || v.Param > len(p.literals) {
				return dst, false, nil
			}
			v = parser.Value{Kind: parser.ValueString, Text: p.literals[v.Param-1]}
			return keyValues(dst, v, array, nil, typ)
		}
		if p == nil || v.Param < 1 || v.Param > len(p.values) || p.values[v.Param-1] == nil {
			return dst, false, nil
		}
		raw, f := p.values[v.Param-1], p.format(v.Param-1)
		if !array {
			s, err := routing.BindText(typ, f, raw)
			if err != nil {
				return dst, false, fmt.Errorf("parameter $%d: %w", v.Param, err)
			}
			return append(dst, s), true, nil
		}
		if f == 0 {
			vals, ok, err = parseTextArray(string(raw))
		} else {
			vals, ok, err = parseBinaryArray(raw, typ)
		}
	default:
		return dst, false, nil
	}
	if err != nil || !ok {
		return dst, ok, err
	}
	return append(dst, vals...), true, nil
}

// parseTextArray reads a one-dimensional array literal such as {1,2,"a b"}.
func parseTextArray(s string) ([]string, bool, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false, &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: fmt.Sprintf("malformed array literal: %q", s)}
	}
	s = s[1 : len(s)-1]
	var out []string
	for len(strings.TrimSpace(s)) > 0 {
		s = strings.TrimLeft(s, " ")
		var elem string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false, &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: "malformed array literal"}
			}
			elem, s = b.String(), s[i+1:]
		} else {
			if s[0] == '{' {
				return nil, false, nil // multi-dimensional: not a key list
			}
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			elem, s = strings.TrimSpace(s[:end]), s[end:]
			if strings.EqualFold(elem, "NULL") {
				return nil, false, nil
			}
		}
		out = append(out, elem)
		s = strings.TrimLeft(s, " ")
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, false, &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: "malformed array literal"}
			}
			s = s[1:]
		}
	}
	return out, len(out) > 0, nil
}

// parseBinaryArray reads a one-dimensional array in binary format.
func parseBinaryArray(b []byte, typ routing.KeyType) ([]string, bool, error) {
	bad := errors.New("malformed binary array parameter")
	if len(b) < 12 {
		return nil, false, bad
	}
	ndim := binary.BigEndian.Uint32(b)
	if ndim == 0 {
		return nil, false, nil
	}
	if ndim != 1 || len(b) < 20 {
		return nil, false, nil
	}
	n := int(int32(binary.BigEndian.Uint32(b[12:])))
	b = b[20:]
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, false, bad
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l < 0 {
			return nil, false, nil
		}
		if int(l) > len(b) {
			return nil, false, bad
		}
		s, err := routing.BindText(typ, 1, b[:l])
		if err != nil {
			return nil, false, err
		}
		out = append(out, s)
		b = b[l:]
	}
	return out, len(out) > 0, nil
}

// hints are the session's routing hints (SET pgshard.shard / pgshard.key).
type hints struct{ shard, key string }

// decision is where one client message's statements go.
type decision struct {
	shards []int // database shard indexes, ascending
	write  bool  // needs the primaries
	// concat: the rows of several shards together are the result.
	concat bool
	// split, for an INSERT whose rows live on several shards, is the
	// statement for each of shards; splitParams lists, for each, the
	// original numbers of the parameters it keeps (renumbered from $1).
	split       []string
	splitParams [][]int
	// reject, when set, refuses the statements (SQLSTATE 0A000).
	reject string
	// copies: a write to every copy of a replicated table.
	copies bool
	// anywhere: the statements name no table and no hint, so any shard
	// can run them; shards holds the default shard.
	anywhere bool
	// sorted, for a multi-shard SELECT with ORDER BY, LIMIT or OFFSET,
	// says how to merge the shards' rows; limit and offset are its LIMIT
	// and OFFSET (-1: none). notMergeable says why rows that need merging
	// cannot be.
	sorted        *parser.Sorted
	grouped       *parser.Grouped
	limit, offset int64
	notMergeable  string
	// hideDesc: the shards describe the portal for the merge only; the
	// client did not ask for the RowDescription.
	hideDesc bool
	// copyIn: a COPY FROM STDIN whose rows the session splits over the
	// rule's shards (every row to every copy of a replicated table).
	copyIn *copyPlan
	// copyTo is a COPY ... TO STDOUT, whose shards' data is gathered.
	copyTo *parser.CopyStmt
	// ddl: a schema change run on every shard; noTxBlock: PostgreSQL
	// refuses it in a transaction block (VACUUM, ... CONCURRENTLY), so it
	// runs on each shard on its own, not atomically.
	ddl, noTxBlock bool
	// plan is the router's plan of the last statement routed by its
	// tables (none for DDL and split COPY), for SHOW ROUTE.
	plan routing.Plan
}

// decide routes the analysed statements of one message. p holds the Bind
// parameters in the extended protocol. sql is the text, for splitting a
// multi-row INSERT.
func (rt *routes) decide(r *routing.Router, as []parser.Analysis, p *bindParams, h hints, sql string) (decision, error) {
	var d decision
	d.concat = true
	d.anywhere = h.shard == "" && h.key == ""
	for i := range as {
		a := &as[i]
		if len(a.Tables) > 0 || !a.Hint.IsZero() {
			d.anywhere = false
		}
		if a.Kind == parser.StmtDDL {
			if err := rt.ddl(r, &d, a, h, i); err != nil {
				return decision{}, err
			}
			continue
		}
		if cp := rt.copyIn(r, a, h); cp != nil {
			if len(as) > 1 {
				d.reject = "COPY FROM STDIN into a table on several shards must be sent on its own"
				return d, nil
			}
			d.anywhere, d.write, d.copyIn = false, true, cp
			d.shards = slices.Sorted(slices.Values(cp.rule.Shards))
			continue
		}
		if a.Copy != nil && a.Copy.Direction == parser.CopyToStdout && len(as) == 1 {
			d.copyTo = a.Copy
		}
		st, rows, err := rt.statement(r, a, p, h)
		if err != nil {
			return decision{}, err
		}
		plan, err := r.Route(st)
		if err != nil {
			return decision{}, routeError(err)
		}
		if plan.Kind == routing.Reject {
			return decision{reject: plan.Reason, plan: plan}, nil
		}
		d.plan = plan
		var shards []int
		for _, name := range plan.Shards {
			shards = append(shards, slices.Index(rt.shards, name))
		}
		if len(shards) > 1 && plan.Kind != routing.Broadcast {
			if why := notScatterable(r, a); why != "" {
				return decision{reject: why}, nil
			}
		}
		if why := rt.nestedOK(r, a, p, h, shards); why != "" {
			return decision{reject: why}, nil
		}
		if i > 0 && !slices.Equal(shards, d.shards) {
			return decision{reject: "the statements of this query string run on different shards; send them one at a time"}, nil
		}
		d.shards = shards
		if !a.ReadOnlyWith(rt.readOnlyFunc) {
			d.write = true
		}
		d.concat = d.concat && (a.Concat || plan.Kind == routing.Broadcast)
		if !d.concat && len(as) == 1 {
			d.notMergeable = a.NotMergeable
			var limit, offset *parser.Value
			switch {
			case a.Sorted != nil:
				d.sorted = a.Sorted
				limit, offset = a.Sorted.Limit, a.Sorted.Offset
			case a.Grouped != nil:
				if d.grouped, d.notMergeable = groupedFor(r, a, p, sql); d.grouped != nil {
					limit, offset = d.grouped.Limit, d.grouped.Offset
				}
			}
			if d.limit, err = limitOf(limit, p); err == nil {
				d.offset, err = limitOf(offset, p)
			}
			if err != nil {
				return decision{}, err
			}
		}
		if len(shards) > 1 && rows != nil && len(as) == 1 {
			for _, sh := range shards {
				stmt, params, err := parser.SplitInsert(sql, func(i int) bool { return rows[i] == sh })
				if err != nil {
					return decision{}, err
				}
				d.split = append(d.split, stmt)
				d.splitParams = append(d.splitParams, params)
			}
		}
		if plan.Kind == routing.Broadcast {
			d.write, d.copies = true, true
		}
	}
	if len(d.shards) == 0 {
		d.shards = []int{rt.def}
	}
	return d, nil
}

func (rt *routes) readOnlyFunc(name string) bool { return rt.readOnly[name] }

// copyIn returns how to split a COPY FROM STDIN over the shards of its
// table's rule, or nil when the statement is no such COPY, or one shard
// takes it whole (a table no rule names, a hint, a rule of one shard).
func (rt *routes) copyIn(r *routing.Router, a *parser.Analysis, h hints) *copyPlan {
	if a.Kind != parser.StmtCopy || a.Copy == nil || a.Copy.Direction != parser.CopyFromStdin ||
		h.shard != "" || h.key != "" || !a.Hint.IsZero() {
		return nil
	}
	t := a.Copy.Table
	ru := r.Rule(routing.TableRef{Schema: t.Schema, Name: t.Name})
	if ru == nil || len(ru.Shards) < 2 {
		return nil
	}
	return &copyPlan{stmt: a.Copy, rule: ru}
}

// ddl routes a schema change (or VACUUM, ANALYZE): to every shard, so
// that each holds the same objects, unless a shard hint pins it. Its
// tag is one shard's, as for a write to every copy of a replicated
// table. The catalog is read again when next needed, since the change may
// create the tables rules name.
func (rt *routes) ddl(r *routing.Router, d *decision, a *parser.Analysis, h hints, i int) error {
	d.anywhere = false
	shards := make([]int, len(rt.shards))
	for j := range shards {
		shards[j] = j
	}
	hint := h.shard
	if a.Hint.Shard != "" {
		hint = a.Hint.Shard
	}
	if hint != "" {
		plan, err := r.Route(routing.Statement{HintShard: hint})
		if err != nil {
			return routeError(err)
		}
		shards = []int{slices.Index(rt.shards, plan.Shards[0])}
	}
	if i > 0 && !slices.Equal(shards, d.shards) {
		d.reject = "the statements of this query string run on different shards; send them one at a time"
		return nil
	}
	d.shards, d.write, d.copies, d.ddl = shards, true, true, true
	d.noTxBlock = d.noTxBlock || a.NoTxBlock
	rt.learnMu.Lock()
	rt.learnedAt = time.Time{}
	rt.learnMu.Unlock()
	return nil
}

// groupedFor is how a's rows from several shards merge, or nil with why
// not. count(DISTINCT x) of the shard key of x's table adds up as a
// count (each value lives on one shard) when every count(DISTINCT) of
// the statement is of a shard key. Parameters in HAVING or output
// expressions are the literals of a simple Query the cache normalized
// (sql has them); Bind parameters there are not merged.
func groupedFor(r *routing.Router, a *parser.Analysis, p *bindParams, sql string) (*parser.Grouped, string) {
	g := a.Grouped
	if groupedParams(g) {
		if p == nil || p.literals == nil {
			return nil, "a parameter in HAVING or in an expression over aggregates; write its value in the statement"
		}
		as, err := parser.Analyze(sql)
		if err != nil || len(as) != 1 || as[0].Grouped == nil || groupedParams(as[0].Grouped) {
			return nil, "a parameter in HAVING or in an expression over aggregates"
		}
		g = as[0].Grouped
	}
	if len(g.Distinct) == 0 {
		return g, ""
	}
	// Only when every one is of a shard key: the shards group by the
	// others' values, and a count of distinct keys per such group does
	// not add up.
	for _, dc := range g.Distinct {
		t := routing.TableRef{Schema: dc.Column.Table.Schema, Name: dc.Column.Table.Name}
		if ru := r.Rule(t); ru == nil || ru.Replicated || dc.Column.Column == "" || !strings.EqualFold(dc.Column.Column, ru.Key) {
			return g, ""
		}
	}
	c := *g
	c.Cols = slices.Clone(g.Cols)
	for _, dc := range g.Distinct {
		c.Cols[dc.Col] = parser.AggCount
	}
	return &c, ""
}

// groupedParams reports whether g's HAVING or output expressions have
// parameters.
func groupedParams(g *parser.Grouped) bool {
	var has func(e parser.Expr) bool
	has = func(e parser.Expr) bool {
		if e.Op == parser.ExprLit && e.Lit.Kind == parser.ValueParam {
			return true
		}
		return slices.ContainsFunc(e.Args, has)
	}
	return g.Having != nil && has(*g.Having) || slices.ContainsFunc(g.Out, has)
}

// notScatterable says why a statement must not run on several shards even
// though its rows could be concatenated or merged: a part of it would be
// computed per shard, or rows not tied to a sharded table would repeat.
func notScatterable(r *routing.Router, a *parser.Analysis) string {
	if a.Kind != parser.StmtSelect && a.Kind != parser.StmtUpdate && a.Kind != parser.StmtDelete {
		return ""
	}
	sharded := func(t parser.TableRef) bool {
		ru := r.Rule(routing.TableRef{Schema: t.Schema, Name: t.Name})
		return ru != nil && !ru.Replicated
	}
	if !a.Rows.Tied(sharded) {
		return "some of its rows do not come from a sharded table (a replicated table on the kept side of an outer join, in a UNION branch of its own, or no table), so every shard would return them"
	}
	return ""
}

// nestedOK checks the nested queries of a statement that runs on shards:
// each must read only replicated tables, or be pinned to that one shard.
func (rt *routes) nestedOK(r *routing.Router, a *parser.Analysis, p *bindParams, h hints, shards []int) string {
	for _, n := range a.Nested {
		replicated := true
		for _, t := range n.Tables {
			if ru := r.Rule(routing.TableRef{Schema: t.Schema, Name: t.Name}); ru == nil || !ru.Replicated {
				replicated = false
			}
		}
		if replicated {
			continue
		}
		sub := parser.Analysis{Kind: parser.StmtSelect, ReadOnly: true, Tables: n.Tables, Preds: n.Preds}
		st, _, err := rt.statement(r, &sub, p, h)
		if err == nil && len(shards) == 1 {
			if plan, err := r.Route(st); err == nil && len(plan.Shards) == 1 && slices.Index(rt.shards, plan.Shards[0]) == shards[0] {
				continue
			}
		}
		return "it has a subquery, CTE or derived table with " + n.Why + " over sharded rows that are not all on the statement's one shard; each shard would compute it over its own rows only"
	}
	return ""
}

// limitOf is the value of a LIMIT or OFFSET: -1 for none (absent, or a
// NULL parameter).
func limitOf(v *parser.Value, p *bindParams) (int64, error) {
	if v == nil {
		return -1, nil
	}
	vals, ok, err := keyValues(nil, *v, false, p, routing.KeyInt)
	if err != nil {
		return 0, &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: "invalid LIMIT or OFFSET: " + err.Error(), err: err}
	}
	if !ok || len(vals) != 1 {
		return -1, nil
	}
	n, err := strconv.ParseInt(vals[0], 10, 64)
	if err != nil {
		return 0, &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: fmt.Sprintf("invalid LIMIT or OFFSET %q", vals[0]), err: err}
	}
	return n, nil
}

// routeError turns a routing error into the client's error.
func routeError(err error) error {
	switch {
	case errors.Is(err, routing.ErrUnknownShard), errors.Is(err, routing.ErrNoShard):
		return &pgError{Severity: "ERROR", Code: codeInvalidParamValue, Message: err.Error(), err: err}
	case errors.Is(err, errKeyType):
		return &pgError{Severity: "ERROR", Code: codeUndefinedTable, Message: err.Error(), err: err}
	}
	return &pgError{Severity: "ERROR", Code: codeInvalidTextRepr, Message: "invalid shard key value: " + err.Error(), err: err}
}

// statement builds the router's view of one statement. For an INSERT
// into a sharded table with several rows it also returns each row's shard
// (database index).
func (rt *routes) statement(r *routing.Router, a *parser.Analysis, p *bindParams, h hints) (routing.Statement, []int, error) {
	st := routing.Statement{Write: !a.ReadOnly, HintShard: h.shard, HintKey: h.key}
	if a.Hint.Shard != "" {
		st.HintShard = a.Hint.Shard
	}
	if a.Hint.Key != "" {
		st.HintKey = a.Hint.Key
	}
	for _, t := range a.Tables {
		st.Tables = append(st.Tables, routing.TableRef{Schema: t.Schema, Name: t.Name})
	}
	for _, j := range a.Joins {
		st.Joins = append(st.Joins, routing.JoinEq{
			A: routing.ColumnRef{Table: routing.TableRef{Schema: j.Left.Table.Schema, Name: j.Left.Table.Name}, Column: j.Left.Column},
			B: routing.ColumnRef{Table: routing.TableRef{Schema: j.Right.Table.Schema, Name: j.Right.Table.Name}, Column: j.Right.Column},
		})
	}
	for _, as := range a.Assigned {
		t := routing.TableRef{Schema: as.Table.Schema, Name: as.Table.Name}
		if ru := r.Rule(t); ru != nil && !ru.Replicated && strings.EqualFold(as.Column, ru.Key) && len(ru.Shards) > 1 {
			return st, nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("cannot change the shard key column %s of %s: the row may belong on another shard", ru.Key, as.Table.Name),
				Hint:    "Delete the row and insert it with the new key instead."}
		}
	}
	for _, pr := range a.Preds {
		t := routing.TableRef{Schema: pr.Table.Schema, Name: pr.Table.Name}
		ru := r.Rule(t)
		if ru == nil || ru.Replicated || !strings.EqualFold(pr.Column, ru.Key) {
			continue
		}
		kp := routing.KeyPred{ColumnRef: routing.ColumnRef{Table: t, Column: pr.Column}, Known: true}
		for _, v := range pr.Values {
			vals, ok, err := keyValues(kp.Values, v, pr.Array, p, ru.Type)
			if err != nil {
				return st, nil, err
			}
			if !ok {
				kp.Known = false
				break
			}
			kp.Values = vals
		}
		st.Keys = append(st.Keys, kp)
	}
	var rows []int
	for _, ins := range a.Inserts {
		t := routing.TableRef{Schema: ins.Table.Schema, Name: ins.Table.Name}
		ru := r.Rule(t)
		if ru == nil || ru.Replicated {
			continue
		}
		kp := routing.KeyPred{ColumnRef: routing.ColumnRef{Table: t, Column: ru.Key}}
		col := -1
		for i, c := range ins.Columns {
			if strings.EqualFold(c, ru.Key) {
				col = i
			}
		}
		if len(ins.Columns) == 0 {
			col, _ = rt.keyPosition(ins.Table, ru.Key)
		}
		if col >= 0 && !ins.Query && len(ins.Rows) > 0 {
			kp.Known = true
			for _, row := range ins.Rows {
				if col >= len(row) {
					kp.Known = false
					break
				}
				vals, ok, err := keyValues(kp.Values, row[col], false, p, ru.Type)
				if err != nil {
					return st, nil, err
				}
				if !ok {
					kp.Known = false
					break
				}
				kp.Values = vals
			}
		}
		if !kp.Known && st.HintShard == "" && st.HintKey == "" {
			return st, nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("cannot tell which shard each row inserted into %s belongs to", ins.Table.Name),
				Hint:    fmt.Sprintf("Give the shard key column %s a literal or parameter value in every row, or pin the shard with a pgshard hint.", ru.Key)}
		}
		if kp.Known && len(a.Inserts) == 1 && len(kp.Values) > 1 {
			for _, v := range kp.Values {
				i, err := ru.Method.Shard(v)
				if err != nil {
					return st, nil, routeError(fmt.Errorf("table %s: %w", ins.Table.Name, err))
				}
				rows = append(rows, ru.Shards[i])
			}
		}
		st.Keys = append(st.Keys, kp)
	}
	return st, rows, nil
}
