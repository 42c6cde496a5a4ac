package test

// The oracle test: one data set in a plain PostgreSQL server (the oracle)
// and, loaded through pgshard, in the three routing shards; then every
// statement of a corpus runs on both, and pgshard must answer as the
// oracle does.
//
// Everything it runs is in testdata/oracle:
//
//	schema.sql  the tables (schema "oracle"), on the oracle and every shard
//	data.sql    the rows, inserted through pgshard and into the oracle
//	*.sql       read corpora, in file name order
//	write*.sql  write corpora, each from a fresh load of data.sql, after
//	            the reads
//
// # Corpus format
//
// Statements are separated by blank lines; each is one SQL statement (a
// final ";" is optional), preceded by comment lines. A comment line that is
// a single lower-case word, optionally followed by ":" and a value, is a
// directive, and must be one of:
//
//	-- name: text      names the entry in test output (default: file:line)
//	-- ordered         the ORDER BY fixes the order of every row: compare
//	                   rows in order (otherwise as sorted multisets)
//	-- refused: 0A000  pgshard cannot run this yet and answers with this
//	                   SQLSTATE; the oracle must still run it. The test
//	                   fails when pgshard answers instead: then remove the
//	                   directive so the answer is compared.
//	-- error: 22012    the statement fails, on the oracle and through
//	                   pgshard alike, with this SQLSTATE
//	-- once            (writes) run only once, in the simple protocol
//
// Other comment lines are free text. A block of comments alone (such as a
// file's header) is not an entry.
//
// Each read runs on both in the simple protocol and in the extended one
// (pgx's QueryExecModeExec: Parse, Bind, Describe, Execute, the literals
// as written). Both must give the same column names and types, the same
// rows (as text; NULL apart from the string 'NULL') and the same command
// tag; on a difference the test prints both answers whole.
//
// Each write runs in the same two modes, one after the other, so it must
// make sense twice (the second UPDATE sees the first one's rows, a second
// INSERT of a primary key fails, so use ON CONFLICT or -- once). The
// oracle runs it inside a transaction that commits only when pgshard ran
// it too. RETURNING rows are compared as multisets. After each write the
// table it names is read on the oracle and, directly, on every shard: the
// shards together must hold exactly the oracle's rows (a replicated table:
// each shard all of them), each row on the shard the rules put it. After
// a difference both sides are loaded again from data.sql, so that the
// entries after it still compare from equal data (though not the data
// their author had in mind).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgshard/pgshard/test/pgtest"
)

// oracleDir holds the schema, the data and the corpus.
const oracleDir = "testdata/oracle"

// oracleModes are the protocols every statement runs in: simple, and
// extended with the statement's literals as they are.
var oracleModes = []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec}

// oraclePlacement says where the rows of a table of schema.sql belong,
// following the rules of configYAML; key "" means a full copy on every
// shard.
type oraclePlacement struct {
	key string
	// hash, when it has shards, places keys as PostgreSQL's hash
	// partitioning does; otherwise shardOf gives the shard of a key in
	// its text form (false: the key belongs nowhere).
	hash    hashRule
	shardOf func(key string) (int, bool)
}

// oracleTables are the tables of schema.sql, placed as configYAML's rules
// say (kept in step with them by hand: the test checks pgshard against
// this, not against itself).
var oracleTables = map[string]oraclePlacement{
	"users":    {key: "id", hash: usersRule},
	"orders":   {key: "user_id", hash: ordersRule},
	"logs":     {key: "id", hash: logsRule},
	"accounts": {key: "email", hash: accountsRule},
	"events": {key: "created_at", shardOf: func(k string) (int, bool) {
		// Dates print as YYYY-MM-DD (DateStyle ISO), which sort as text.
		switch {
		case k < "2025-01-01":
			return 0, true
		case k < "2026-01-01":
			return 1, true
		}
		return 2, true
	}},
	"tenant_data": {key: "tenant", shardOf: func(k string) (int, bool) {
		s, ok := map[string]int{"acme": 0, "globex": 0, "initech": 1}[k]
		return s, ok
	}},
	"misc":      {key: "id", shardOf: func(string) (int, bool) { return 0, true }}, // no rule: the default shard
	"countries": {},
}

// oracleEmpty are the shards data.sql leaves without rows of a table,
// which must hold rows on its other shards: scattered statements meet an
// empty shard.
var oracleEmpty = map[string]int{"orders": 2, "events": 1, "tenant_data": 2}

// --- The corpus

// oracleEntry is one statement of a corpus file and its directives.
type oracleEntry struct {
	file    string
	line    int
	name    string
	sql     string
	ordered bool
	refused string // the SQLSTATE pgshard answers with for now
	fails   string // the SQLSTATE both must fail with
	once    bool
}

func (e oracleEntry) where() string { return fmt.Sprintf("%s:%d", e.file, e.line) }

// label names e in test output.
func (e oracleEntry) label() string {
	if e.name != "" {
		return e.name
	}
	return e.where()
}

var (
	oracleDirective = regexp.MustCompile(`^--\s*([a-z]+)\s*(?::\s*(.*?))?\s*$`)
	oracleSQLSTATE  = regexp.MustCompile(`^[0-9A-Z]{5}$`)
)

// parseOracleFile reads the entries of a corpus file.
func parseOracleFile(path string) ([]oracleEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	file := filepath.Base(path)
	var (
		entries []oracleEntry
		errs    []error
		cur     *oracleEntry
		sql     []string
	)
	finish := func() {
		switch {
		case cur == nil:
		case len(sql) == 0 && (cur.name != "" || cur.ordered || cur.refused != "" || cur.fails != "" || cur.once):
			errs = append(errs, fmt.Errorf("%s: directives without a statement", cur.where()))
		case len(sql) > 0:
			cur.sql = strings.TrimSuffix(strings.TrimSpace(strings.Join(sql, "\n")), ";")
			if cur.refused != "" && cur.fails != "" {
				errs = append(errs, fmt.Errorf("%s: both refused and error", cur.where()))
			}
			entries = append(entries, *cur)
		}
		cur, sql = nil, nil
	}
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			finish()
			continue
		}
		if cur == nil {
			cur = &oracleEntry{file: file, line: i + 1}
		}
		if len(sql) > 0 || !strings.HasPrefix(trimmed, "--") {
			if len(sql) == 0 {
				cur.line = i + 1
			}
			sql = append(sql, line)
			continue
		}
		m := oracleDirective.FindStringSubmatch(trimmed)
		if m == nil {
			continue // a free comment
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %q: %s", file, i+1, trimmed, fmt.Sprintf(format, args...)))
		}
		switch key, value := m[1], m[2]; key {
		case "name":
			if value == "" {
				bad("name needs a value")
			}
			cur.name = value
		case "ordered", "once":
			if value != "" {
				bad("%s takes no value", key)
			}
			cur.ordered = cur.ordered || key == "ordered"
			cur.once = cur.once || key == "once"
		case "refused", "error":
			if !oracleSQLSTATE.MatchString(value) {
				bad("%s needs a SQLSTATE (five digits or capital letters)", key)
			}
			if key == "refused" {
				cur.refused = value
			} else {
				cur.fails = value
			}
		default:
			bad("unknown directive; the directives are name, ordered, refused, error and once (free comments are more than one word)")
		}
	}
	finish()
	names := map[string]string{}
	for _, e := range entries {
		if e.name == "" {
			continue
		}
		if prev, dup := names[e.name]; dup {
			errs = append(errs, fmt.Errorf("%s: name %q is also the name of %s", e.where(), e.name, prev))
		}
		names[e.name] = e.where()
	}
	return entries, errors.Join(errs...)
}

// oracleWriteTarget finds the table a write changes.
var oracleWriteTarget = regexp.MustCompile(`(?is)\b(?:insert\s+into|update|delete\s+from)\s+(?:only\s+)?oracle\.([a-z_][a-z0-9_]*)`)

// writeTable returns the table a write entry changes (the first INSERT
// INTO, UPDATE or DELETE FROM target), without its schema.
func (e oracleEntry) writeTable() (string, error) {
	m := oracleWriteTarget.FindStringSubmatch(e.sql)
	if m == nil {
		return "", fmt.Errorf("%s: no INSERT INTO, UPDATE or DELETE FROM a table of schema oracle", e.where())
	}
	if _, ok := oracleTables[m[1]]; !ok {
		return "", fmt.Errorf("%s: oracle.%s is not in oracleTables", e.where(), m[1])
	}
	return m[1], nil
}

// --- Answers

// oracleAnswer is what a server answered to one statement.
type oracleAnswer struct {
	cols   []string // name and type of each column
	rows   []string // as oracleRow renders them, in the order received
	tag    string
	err    *pgconn.PgError // the server's error, if any
	routes []string        // pgshard's route notices
}

func (a oracleAnswer) code() string {
	if a.err == nil {
		return ""
	}
	return a.err.Code
}

// oracleTypes names type OIDs.
var oracleTypes = pgtype.NewMap()

// oracleQuery runs sql on conn in mode. An error that is not the server's
// (a broken connection) is returned.
func oracleQuery(conn *pgx.Conn, mode pgx.QueryExecMode, sql string) (oracleAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var a oracleAnswer
	rows, err := conn.Query(ctx, sql, mode, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err == nil {
		for _, fd := range rows.FieldDescriptions() {
			typ := strconv.FormatUint(uint64(fd.DataTypeOID), 10)
			if t, ok := oracleTypes.TypeForOID(fd.DataTypeOID); ok {
				typ = t.Name
			}
			a.cols = append(a.cols, fd.Name+" "+typ)
		}
		for rows.Next() {
			a.rows = append(a.rows, oracleRow(rows.RawValues()))
		}
		rows.Close()
		a.tag = rows.CommandTag().String()
		err = rows.Err()
	}
	if err != nil && !errors.As(err, &a.err) {
		return a, err
	}
	return a, nil
}

// oracleRow renders a row of text values: each quoted, NULL bare, so that
// NULL, the text NULL, the empty string and spaces all show.
func oracleRow(values [][]byte) string {
	cols := make([]string, len(values))
	for i, v := range values {
		if v == nil {
			cols[i] = "NULL"
		} else {
			cols[i] = strconv.Quote(string(v))
		}
	}
	return strings.Join(cols, "|")
}

// format prints a whole answer, indented.
func (a oracleAnswer) format() string {
	var b strings.Builder
	if a.err != nil {
		fmt.Fprintf(&b, "    ERROR %s: %s\n", a.err.Code, a.err.Message)
	} else {
		fmt.Fprintf(&b, "    columns: %s\n    tag: %s\n    rows (%d):\n", strings.Join(a.cols, ", "), a.tag, len(a.rows))
		for _, r := range a.rows {
			fmt.Fprintf(&b, "      %s\n", r)
		}
	}
	if len(a.routes) > 0 {
		fmt.Fprintf(&b, "    route notices: %q\n", a.routes)
	}
	return b.String()
}

// differences says how got differs from want ("" if it does not): rows in
// order when ordered, else as multisets.
func differences(want, got oracleAnswer, ordered bool) string {
	var d []string
	if !slices.Equal(want.cols, got.cols) {
		d = append(d, "columns differ")
	}
	if want.tag != got.tag {
		d = append(d, "command tags differ")
	}
	if ordered {
		if !slices.Equal(want.rows, got.rows) {
			d = append(d, "rows differ (compared in order)")
		}
	} else if w, g := slices.Sorted(slices.Values(want.rows)), slices.Sorted(slices.Values(got.rows)); !slices.Equal(w, g) {
		var missing, extra []string
		for _, r := range w {
			if i := slices.Index(g, r); i >= 0 {
				g = slices.Delete(g, i, i+1)
			} else {
				missing = append(missing, r)
			}
		}
		extra = g
		d = append(d, fmt.Sprintf("rows differ (as multisets): missing %q, extra %q", missing, extra))
	}
	return strings.Join(d, "; ")
}

// --- The harness

// oracleHarness holds the connections of TestOracle.
type oracleHarness struct {
	rc     *routingCluster
	oracle *pgx.Conn   // to the oracle as app
	px     *routedConn // through pgshard as app
	shards []*pgx.Conn // to each shard directly, as the superuser
	owners map[string]map[string]int
}

// run runs e in mode on the oracle (inside a transaction, to be committed
// or rolled back, when tx) and through pgshard.
func (h *oracleHarness) run(t *testing.T, e oracleEntry, mode pgx.QueryExecMode, tx bool) (want, got oracleAnswer) {
	t.Helper()
	if tx {
		h.exec(t, h.oracle, "BEGIN")
	}
	want, err := oracleQuery(h.oracle, mode, e.sql)
	if err != nil {
		t.Fatalf("%s [%s] on the oracle: %v", e.where(), modeName(mode), err)
	}
	h.px.takeRoutes()
	got, err = oracleQuery(h.px.Conn, mode, e.sql)
	got.routes = h.px.takeRoutes()
	if err != nil {
		t.Fatalf("%s [%s] through pgshard: %v", e.where(), modeName(mode), err)
	}
	return want, got
}

// compare checks pgshard's answer to e against the oracle's, as the
// entry's directives say.
func (h *oracleHarness) compare(t *testing.T, e oracleEntry, mode pgx.QueryExecMode, want, got oracleAnswer) {
	t.Helper()
	head := fmt.Sprintf("%s [%s]:\n%s\n", e.where(), modeName(mode), e.sql)
	both := fmt.Sprintf("  oracle:\n%s  pgshard:\n%s", want.format(), got.format())
	switch {
	case e.fails != "":
		if want.code() != e.fails || got.code() != e.fails {
			t.Errorf("%sboth must fail with SQLSTATE %s (-- error)\n%s", head, e.fails, both)
		}
	case want.err != nil:
		t.Errorf("%sthe oracle fails: fix the entry, or mark it -- error: %s if pgshard must fail alike\n%s", head, want.code(), both)
	case e.refused != "" && got.code() == e.refused:
		// Refused, as expected for now.
	case e.refused != "" && got.err != nil:
		t.Errorf("%smarked -- refused: %s, but pgshard fails with %s\n%s", head, e.refused, got.code(), both)
	case e.refused != "":
		if d := differences(want, got, e.ordered); d != "" {
			t.Errorf("%spgshard now runs this entry marked -- refused: %s, and answers wrong (%s)\n%s", head, e.refused, d, both)
		} else {
			t.Errorf("%spgshard now runs this entry and answers as the oracle: remove its -- refused: %s so that its answer is compared\n%s", head, e.refused, both)
		}
	case got.err != nil:
		t.Errorf("%spgshard fails, the oracle answers (if pgshard cannot do this yet, mark the entry -- refused: %s)\n%s", head, got.code(), both)
	default:
		if d := differences(want, got, e.ordered); d != "" {
			t.Errorf("%spgshard answers differently from the oracle: %s\n%s", head, d, both)
		}
	}
}

// exec runs sql (several statements allowed) on conn.
func (h *oracleHarness) exec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// rows returns the rows of query on conn, rendered by oracleRow.
func (h *oracleHarness) rows(t testing.TB, conn *pgx.Conn, query string) []string {
	t.Helper()
	a, err := oracleQuery(conn, pgx.QueryExecModeSimpleProtocol, query)
	if err == nil && a.err != nil {
		err = a.err
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return a.rows
}

// load empties the tables of schema.sql on the oracle and every shard,
// runs data.sql on the oracle and through pgshard, and checks what each
// shard holds.
func (h *oracleHarness) load(t *testing.T, data []oracleEntry) {
	t.Helper()
	var tables []string
	for _, name := range slices.Sorted(maps.Keys(oracleTables)) {
		tables = append(tables, "oracle."+name)
	}
	truncate := "SET lock_timeout = '5s'; TRUNCATE " + strings.Join(tables, ", ")
	h.exec(t, h.oracle, truncate)
	for _, s := range h.shards {
		h.exec(t, s, truncate)
	}
	for _, e := range data {
		want, got := h.run(t, e, pgx.QueryExecModeSimpleProtocol, false)
		if want.err != nil || got.err != nil || want.tag != got.tag {
			t.Fatalf("loading %s:\n%s\n  oracle:\n%s  pgshard:\n%s", e.where(), e.sql, want.format(), got.format())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oracleTables)) {
		h.checkTable(t, name)
	}
	// Where the users are, once more with the routing tests' own check.
	ids := h.rows(t, h.oracle, "SELECT id::text FROM oracle.users")
	for i, id := range ids {
		ids[i], _ = strconv.Unquote(id)
	}
	rc := h.rc
	rc.checkPlacement(t, "oracle.users", "id", rc.owners(t, usersRule, ids...))
	// The empty shards data.sql promises.
	for _, name := range slices.Sorted(maps.Keys(oracleEmpty)) {
		for i, s := range h.shards {
			n := h.rows(t, s, "SELECT count(*) FROM oracle."+name)[0]
			if empty := i == oracleEmpty[name]; empty != (n == `"0"`) {
				t.Errorf("data.sql leaves %s rows of %s on %s; the corpus wants none on %s and some on the other shards",
					n, name, shardName(i), shardName(oracleEmpty[name]))
			}
		}
	}
}

// checkTable checks that the shards together hold exactly the oracle's
// rows of oracle.name (a replicated table: each shard all of them), each
// on its shard. It reports whether they do.
func (h *oracleHarness) checkTable(t *testing.T, name string) bool {
	t.Helper()
	pl := oracleTables[name]
	want := h.rows(t, h.oracle, "SELECT * FROM oracle."+name)
	slices.Sort(want)
	ok := true
	if pl.key == "" {
		for i, s := range h.shards {
			got := h.rows(t, s, "SELECT * FROM oracle."+name)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("oracle.%s is replicated, but %s holds other rows than the oracle\n  oracle:\n    %s\n  %s:\n    %s",
					name, shardName(i), strings.Join(want, "\n    "), shardName(i), strings.Join(got, "\n    "))
				ok = false
			}
		}
		return ok
	}
	type placed struct {
		shard    int
		key, row string
	}
	var found []placed
	var all, listed []string
	for i, s := range h.shards {
		for _, r := range h.rows(t, s, fmt.Sprintf("SELECT (%s)::text, * FROM oracle.%s", pl.key, name)) {
			keyText, err := strconv.QuotedPrefix(r)
			if err != nil {
				t.Fatalf("row %s: %v", r, err)
			}
			key, _ := strconv.Unquote(keyText)
			row := strings.TrimPrefix(r[len(keyText):], "|")
			found = append(found, placed{i, key, row})
			all = append(all, row)
			listed = append(listed, shardName(i)+": "+row)
		}
	}
	keys := make([]string, len(found))
	for i, p := range found {
		keys[i] = p.key
	}
	owners := h.shardsOf(t, name, keys)
	var misplaced []string
	for i, p := range found {
		if owner := owners[i]; owner != p.shard {
			where := "no shard"
			if owner >= 0 {
				where = shardName(owner)
			}
			misplaced = append(misplaced, fmt.Sprintf("%s on %s, belongs on %s", p.row, shardName(p.shard), where))
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Errorf("oracle.%s: the shards together hold other rows than the oracle (%s)\n  oracle:\n    %s\n  shards:\n    %s",
			name, differences(oracleAnswer{rows: want}, oracleAnswer{rows: all}, false), strings.Join(want, "\n    "), strings.Join(listed, "\n    "))
		ok = false
	}
	if len(misplaced) > 0 {
		t.Errorf("oracle.%s: rows on the wrong shard:\n  %s", name, strings.Join(misplaced, "\n  "))
		ok = false
	}
	return ok
}

// shardsOf returns the shard each of keys (in text form) belongs on by
// the rule of oracle.table, -1 for none; it asks PostgreSQL about hash
// rules, once per key.
func (h *oracleHarness) shardsOf(t testing.TB, table string, keys []string) []int {
	t.Helper()
	pl := oracleTables[table]
	out := make([]int, len(keys))
	if len(pl.hash.shards) == 0 {
		for i, k := range keys {
			if s, ok := pl.shardOf(k); ok {
				out[i] = s
			} else {
				out[i] = -1
			}
		}
		return out
	}
	cache := h.owners[table]
	if cache == nil {
		cache = map[string]int{}
		h.owners[table] = cache
	}
	var missing []string
	for _, k := range keys {
		if _, ok := cache[k]; !ok && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		maps.Copy(cache, h.rc.owners(t, pl.hash, missing...))
	}
	for i, k := range keys {
		out[i] = cache[k]
	}
	return out
}

// startOracle starts the oracle server, with role app owning database
// app, which holds routingSchema and schema. It starts in the background
// (while the routing servers start); wait returns it once it is ready. It
// is stopped when t ends.
func startOracle(t *testing.T, schema string) (wait func() *pgtest.Server) {
	t.Helper()
	type started struct {
		s   *pgtest.Server
		err error
	}
	done := make(chan started, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err := pgtest.Start(ctx, pgtest.Options{Name: "oracle"})
		if err == nil {
			err = s.CreateUserDB(ctx, "app", "app", "app")
		}
		if err == nil {
			err = s.Exec(ctx, "app", "SET ROLE app;"+routingSchema+schema)
		}
		done <- started{s, err}
	}()
	var (
		once sync.Once
		got  started
	)
	result := func() started {
		once.Do(func() { got = <-done })
		return got
	}
	t.Cleanup(func() {
		if s := result().s; s != nil {
			if err := s.Stop(); err != nil {
				t.Error(err)
			}
		}
	})
	return func() *pgtest.Server {
		t.Helper()
		r := result()
		if r.err != nil {
			t.Fatalf("starting the oracle: %v", r.err)
		}
		return r.s
	}
}

// TestOracle loads data.sql into the oracle and, through pgshard, into the
// shards, checking where every row landed; then runs every read corpus of
// testdata/oracle on both and compares the answers, and every write corpus,
// comparing answers and then the written table, row by row and shard by
// shard. A corpus file holds statements separated by blank lines, each
// after optional directives in comment lines: "-- name: text", "-- ordered"
// (compare rows in order), "-- refused: 0A000" (pgshard refuses it for now;
// the test fails once it does not), "-- error: 22012" (both fail with it),
// "-- once" (a write run only once). The top of this file says more.
func TestOracle(t *testing.T) {
	schema, err := os.ReadFile(filepath.Join(oracleDir, "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := parseOracleFile(filepath.Join(oracleDir, "data.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range data {
		if e.ordered || e.refused != "" || e.fails != "" || e.once {
			t.Fatalf("%s: data.sql takes no directives but name", e.where())
		}
	}
	paths, err := filepath.Glob(filepath.Join(oracleDir, "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var reads, writes []string
	corpus := map[string][]oracleEntry{}
	var errs []error
	for _, p := range paths {
		base := filepath.Base(p)
		if base == "schema.sql" || base == "data.sql" {
			continue
		}
		entries, err := parseOracleFile(p)
		errs = append(errs, err)
		corpus[base] = entries
		if strings.HasPrefix(base, "write") {
			writes = append(writes, base)
			for _, e := range entries {
				if _, err := e.writeTable(); err != nil {
					errs = append(errs, err)
				}
				if e.ordered {
					errs = append(errs, fmt.Errorf("%s: -- ordered in a write file (RETURNING rows have no order)", e.where()))
				}
			}
		} else {
			reads = append(reads, base)
			for _, e := range entries {
				if e.once {
					errs = append(errs, fmt.Errorf("%s: -- once in a read file", e.where()))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("the corpus in %s:\n%v", oracleDir, err)
	}

	waitOracle := startOracle(t, string(schema))
	rc := routingServers(t)
	oracle := waitOracle()
	checkNoGoroutineLeak(t)
	h := &oracleHarness{rc: rc, owners: map[string]map[string]int{}}
	for _, s := range rc.shards {
		directExec(t, s, "SET ROLE app; DROP SCHEMA IF EXISTS oracle CASCADE;"+string(schema))
		h.shards = append(h.shards, superConn(t, s, "app"))
	}
	t.Cleanup(func() {
		for _, s := range rc.shards {
			directExec(t, s, "DROP SCHEMA IF EXISTS oracle CASCADE")
		}
	})
	h.oracle = pgxConnect(t, oracle.URL("app", "app", "app"))
	h.px = connectRouted(t, startRoutingProxy(t, rc, routingOptions{}))

	h.load(t, data)
	if t.Failed() {
		t.FailNow()
	}
	for _, file := range reads {
		t.Run(file, func(t *testing.T) {
			for _, e := range corpus[file] {
				t.Run(e.label(), func(t *testing.T) {
					for _, mode := range oracleModes {
						want, got := h.run(t, e, mode, false)
						h.compare(t, e, mode, want, got)
					}
				})
			}
		})
	}
	for _, file := range writes {
		t.Run(file, func(t *testing.T) {
			h.load(t, data)
			for _, e := range corpus[file] {
				table, _ := e.writeTable()
				modes := oracleModes
				if e.once {
					modes = modes[:1]
				}
				diverged := false
				t.Run(e.label(), func(t *testing.T) {
					for _, mode := range modes {
						want, got := h.run(t, e, mode, true)
						if want.err == nil && got.err == nil {
							h.exec(t, h.oracle, "COMMIT")
						} else {
							h.exec(t, h.oracle, "ROLLBACK")
						}
						h.compare(t, e, mode, want, got)
						if !h.checkTable(t, table) {
							diverged = true
							t.Errorf("%s [%s]: oracle.%s differs after this write (above)\n%s", e.where(), modeName(mode), table, e.sql)
							return
						}
					}
				})
				if diverged {
					// Both sides start again from data.sql, so that the
					// next entries compare from equal data.
					t.Logf("%s: reloading data.sql after the difference", e.where())
					h.load(t, data)
				}
			}
			for _, name := range slices.Sorted(maps.Keys(oracleTables)) {
				h.checkTable(t, name)
			}
		})
	}
}
