package parser

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// StmtKind is what kind of statement an Analysis describes. It is coarser
// than the protocol's command tags: it says what the router has to do.
type StmtKind uint8

const (
	// StmtOther is any statement not covered below (CALL, DO, MERGE,
	// EXPLAIN, VACUUM, ...). Such statements are never ReadOnly unless they
	// are EXPLAIN of a read-only query.
	StmtOther StmtKind = iota
	// StmtSelect is a SELECT, VALUES or TABLE statement, with or without
	// WITH.
	StmtSelect
	// StmtInsert is INSERT, including INSERT ... SELECT.
	StmtInsert
	// StmtUpdate is UPDATE.
	StmtUpdate
	// StmtDelete is DELETE.
	StmtDelete
	// StmtCopy is COPY, in either direction.
	StmtCopy
	// StmtDDL changes the schema: CREATE, ALTER, DROP, TRUNCATE, COMMENT,
	// GRANT, REVOKE, REINDEX and the like, and VACUUM and ANALYZE.
	StmtDDL
	// StmtUtility changes or shows session state without touching data:
	// SET, RESET, SHOW, DISCARD, LISTEN, PREPARE, DEALLOCATE, cursors, ...
	StmtUtility
	// StmtTxControl is BEGIN, START TRANSACTION, COMMIT, ROLLBACK,
	// SAVEPOINT, RELEASE and the two-phase commands.
	StmtTxControl
)

var stmtKindNames = [...]string{"other", "select", "insert", "update", "delete", "copy", "ddl", "utility", "tx control"}

// String returns the kind's lower-case name.
func (k StmtKind) String() string {
	if int(k) < len(stmtKindNames) {
		return stmtKindNames[k]
	}
	return "unknown"
}

// Analysis describes one statement of a query string: what it is, what it
// touches, and what it says about the values of columns that the router can
// use to find the shard. It is a plain value; an Analysis returned by a
// Cache is shared and must not be modified.
type Analysis struct {
	// Kind is what kind of statement this is.
	Kind StmtKind
	// ReadOnly is true when the statement neither writes data nor takes
	// row locks nor has side effects that require the primary: it is false
	// for INSERT/UPDATE/DELETE/MERGE, DDL, COPY FROM, SELECT ... FOR
	// UPDATE/NO KEY UPDATE/SHARE/KEY SHARE, SELECT INTO, data-modifying
	// CTEs, calls of nextval, setval, pg_advisory_*, set_config, lo_* and
	// other functions known to have effects or to need the session that
	// called nextval (currval, lastval), and calls of any function not
	// known to be a read-only built-in (see UserFunctions and ReadOnlyWith).
	ReadOnly bool
	// Functions lists every function called, once each, in order of first
	// appearance, schema-qualified when written so ("public.f"). Unquoted
	// names are lower case; quoted names keep their case.
	Functions []string
	// UserFunctions is the subset of Functions that the analyzer does not
	// know to be read-only built-ins of pg_catalog: user functions, and
	// built-ins missing from its short list. Any of them makes ReadOnly
	// false; ReadOnlyWith lets a caller vouch for them.
	UserFunctions []string
	// Tables lists every table referenced anywhere in the statement
	// (subqueries and CTEs included, references to CTEs excluded), once per
	// distinct (schema, name, alias), in order of appearance. For DDL it
	// lists the relations created, altered or dropped (and referenced, as
	// by a foreign key).
	Tables []TableRef
	// Preds are the equality constraints on columns that every row the
	// statement reads or writes satisfies: conjuncts of the top-level WHERE
	// (and of INNER JOIN ... ON), IN lists, = ANY(...), and ORs whose every
	// branch constrains the same column. Constraints inside subqueries,
	// under NOT, or in only some branches of an OR are not included.
	Preds []Pred
	// Joins are the column = column equalities between two tables in the
	// top-level WHERE and in JOIN ... ON / USING, so that the router can
	// check that joined tables are co-located.
	Joins []JoinEq
	// Inserts describes each INSERT of the statement: the statement itself
	// when it is one, and data-modifying CTEs.
	Inserts []InsertRows
	// Hint is taken from a /* pgshard: ... */ comment in the statement's
	// text.
	Hint Hint
	// Concat is set when the rows the statement returns from several
	// shards, put one after the other, are what one server holding all
	// the rows would return: a SELECT without ORDER BY, LIMIT, OFFSET,
	// DISTINCT, GROUP BY, HAVING, window functions, set operations other
	// than UNION ALL, and without calls in its output of aggregates or of
	// functions the analyzer does not know (they might be aggregates); and
	// INSERT, UPDATE and DELETE (with or without RETURNING).
	Concat bool
	// Sorted, for a SELECT with ORDER BY, LIMIT or OFFSET that is
	// otherwise concatenable, says how its rows from several shards merge;
	// Grouped, for one with aggregates, GROUP BY or DISTINCT.
	// NotMergeable says why a SELECT that is not Concat cannot be merged.
	Sorted       *Sorted
	Grouped      *Grouped
	NotMergeable string
	// Nested are the subqueries, CTEs, derived tables and set-operation
	// branches that would compute something different over one shard's
	// rows than over all of them (they aggregate, group, deduplicate, limit
	// or rank): they are right only where their own tables are pinned to
	// the statement's one shard, or replicated.
	Nested []Subquery
	// Rows says where a SELECT's rows come from (see Source); for UPDATE
	// and DELETE, the target table.
	Rows Source
	// Assigned lists the columns the SET list of an UPDATE, or of INSERT
	// ... ON CONFLICT DO UPDATE, assigns, with the target table.
	Assigned []ColumnRef
	// NoTxBlock is set for statements PostgreSQL refuses inside a
	// transaction block: VACUUM, CREATE/DROP/REINDEX ... CONCURRENTLY,
	// CREATE/DROP DATABASE, ALTER SYSTEM and the like.
	NoTxBlock bool
	// Copy describes a COPY statement (nil for other kinds): its table,
	// columns, direction and format options. CopyErr, when not nil, says
	// why its options could not be understood, and Copy is then nil.
	Copy    *CopyStmt
	CopyErr error

	// sideEffects is set when ReadOnly is false for a reason other than
	// UserFunctions.
	sideEffects bool
}

// ReadOnlyWith reports whether the statement is read-only when the user
// functions it calls are read-only as far as readOnlyFunc says (the proxy's
// read_only_functions setting). readOnlyFunc receives names as they appear
// in UserFunctions; a nil readOnlyFunc vouches for none.
func (a *Analysis) ReadOnlyWith(readOnlyFunc func(name string) bool) bool {
	if a.ReadOnly {
		return true
	}
	if a.sideEffects || readOnlyFunc == nil {
		return false
	}
	for _, f := range a.UserFunctions {
		if !readOnlyFunc(f) {
			return false
		}
	}
	return true
}

// TableRef names a table as the statement wrote it. Schema is "" when the
// name was not schema-qualified (the search_path decides); Alias is "" when
// the statement gave none.
type TableRef struct {
	Schema string
	Name   string
	Alias  string
}

// String returns schema.name, or name alone.
func (t TableRef) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// ColumnRef is a column of a table. Table is the zero TableRef when the
// column was not qualified and the statement reads more than one relation.
type ColumnRef struct {
	Table  TableRef
	Column string
}

// JoinEq is an equality Left = Right between columns of two tables.
type JoinEq struct {
	Left, Right ColumnRef
}

// Pred says that, for the whole statement, column Column of table Table
// equals one of Values. Table is resolved through aliases: a column
// qualified by an alias names the aliased table, and an unqualified column
// names the only relation read when there is exactly one; otherwise Table
// is the zero TableRef.
type Pred struct {
	Table  TableRef
	Column string
	Values []Value
	// Array is set for col = ANY($n) (with Values holding the one Param
	// value, possibly cast to an array type): the column equals one of the
	// elements of the array bound to $n.
	Array bool
}

// ValueKind is what kind of value a Value is.
type ValueKind uint8

const (
	// ValueExpr is an expression the analyzer does not evaluate (a
	// function call, an operator, a subquery, a column). Text is empty.
	ValueExpr ValueKind = iota
	// ValueInt is an integer literal of any size; Text holds its digits,
	// with a leading '-' when negative.
	ValueInt
	// ValueNumeric is a literal with a fraction or an exponent, as written.
	ValueNumeric
	// ValueString is a string literal (or bit string), unquoted and with
	// escapes resolved.
	ValueString
	// ValueParam is a parameter $n; Param holds n.
	ValueParam
	// ValueNull is NULL.
	ValueNull
	// ValueBool is TRUE or FALSE; Text is "true" or "false".
	ValueBool
	// ValueDefault is DEFAULT in an INSERT's VALUES list.
	ValueDefault
)

var valueKindNames = [...]string{"expr", "int", "numeric", "string", "param", "null", "bool", "default"}

// String returns the kind's lower-case name.
func (k ValueKind) String() string {
	if int(k) < len(valueKindNames) {
		return valueKindNames[k]
	}
	return "unknown"
}

// Value is a constant or parameter in a statement.
type Value struct {
	Kind ValueKind
	// Text is the literal's text, unquoted (see ValueKind).
	Text string
	// Param is n for a parameter $n (1-based), 0 otherwise.
	Param int
	// Cast is the type the value was cast to ('42'::bigint, CAST($1 AS
	// int), int8 '42'), as the grammar names it: "int8" for bigint, "int4"
	// for int and integer, "numeric", "text", ...; schema-qualified when
	// written so outside pg_catalog, and ending in "[]" for array types.
	// When casts nest, the outermost wins.
	Cast string
}

// String renders the value roughly as SQL, for messages and tests.
func (v Value) String() string {
	var s string
	switch v.Kind {
	case ValueParam:
		s = "$" + strconv.Itoa(v.Param)
	case ValueString:
		s = "'" + strings.ReplaceAll(v.Text, "'", "''") + "'"
	case ValueNull:
		s = "NULL"
	case ValueDefault:
		s = "DEFAULT"
	case ValueExpr:
		s = "<expr>"
	default:
		s = v.Text
	}
	if v.Cast != "" {
		s += "::" + v.Cast
	}
	return s
}

// InsertRows describes an INSERT.
type InsertRows struct {
	// Table is the target table (Alias set by INSERT INTO t AS x).
	Table TableRef
	// Columns are the target columns as written, in the order written; it
	// is empty when the statement lists none (all columns in table order).
	Columns []string
	// Rows are the rows of INSERT ... VALUES, each with one Value per
	// column. Rows is empty for INSERT ... SELECT (see Query) and for
	// INSERT ... DEFAULT VALUES.
	Rows [][]Value
	// Query is set when the rows come from a query (INSERT ... SELECT, or
	// a VALUES list with ORDER BY/LIMIT).
	Query bool
	// OnConflict is set for INSERT ... ON CONFLICT.
	OnConflict bool
	// Returning is set for INSERT ... RETURNING.
	Returning bool
}

// Analyze parses sql, which may hold several statements, with PostgreSQL's
// own parser (pg_query) and describes each statement, in order. A syntax
// error is returned wrapping the *pg_query.Error that says where it is.
// Analyze is safe for concurrent use; it does not cache (see Cache).
func Analyze(sql string) ([]Analysis, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var hints []hintAt
	if strings.Contains(sql, "/*") || strings.Contains(sql, "--") {
		hints = scanHints(sql)
	}
	out := make([]Analysis, 0, len(tree.Stmts))
	for i, raw := range tree.Stmts {
		var a analyzer
		a.analyze(raw.GetStmt())
		// A hint belongs to the last statement that starts at or before it
		// (comments before the first statement belong to the first).
		start, end := int(raw.StmtLocation), len(sql)+1
		if i == 0 {
			start = 0
		}
		if i+1 < len(tree.Stmts) {
			end = int(tree.Stmts[i+1].StmtLocation)
		}
		for _, h := range hints {
			if h.pos >= start && h.pos < end {
				a.out.Hint.merge(h.hint)
			}
		}
		out = append(out, a.out)
	}
	return out, nil
}

// analyzer builds the Analysis of one statement.
type analyzer struct {
	out Analysis
	top *pg_query.SelectStmt // the statement itself, when a SELECT

	cteNames    map[string]bool
	unknownFunc bool
	dml         bool // INSERT/UPDATE/DELETE/MERGE anywhere
	locking     bool // FOR UPDATE/SHARE anywhere
	into        bool // SELECT INTO
	effects     bool // a function with known side effects

	// pendingJoinQuals are the ON conditions scope found, for wherePreds.
	pendingJoinQuals []joinQual
}

func (a *analyzer) analyze(stmt *pg_query.Node) {
	if stmt == nil {
		return
	}
	// One generic walk finds tables, functions and anything that writes.
	a.top = stmt.GetSelectStmt()
	a.walk(stmt.ProtoReflect())
	a.filterCTETables()

	readOnly := true
	switch n := stmt.Node.(type) {
	case *pg_query.Node_SelectStmt:
		a.out.Kind = StmtSelect
		a.out.Rows = selectSource(n.SelectStmt, nil, 0)
		a.selectPreds(n.SelectStmt)
		a.out.Concat = concatenable(n.SelectStmt)
		if !a.out.Concat {
			a.out.Sorted, a.out.NotMergeable = sorted(n.SelectStmt)
			if sel := n.SelectStmt; a.out.Sorted == nil && sel.Op == pg_query.SetOperation_SETOP_NONE &&
				(len(sel.GroupClause) > 0 || len(sel.DistinctClause) > 0 || sel.HavingClause != nil || !plainOutput(sel.TargetList)) {
				a.out.Grouped, a.out.NotMergeable = grouped(sel)
				a.distinctColumns(sel)
			}
		}
	case *pg_query.Node_InsertStmt:
		a.out.Kind = StmtInsert
		a.out.Concat = true
	case *pg_query.Node_UpdateStmt:
		a.out.Kind = StmtUpdate
		t := tableRef(n.UpdateStmt.Relation)
		a.out.Rows = Source{Table: &t}
		a.out.Concat = true
		u := n.UpdateStmt
		a.out.Assigned = assigned(tableRef(u.Relation), u.TargetList)
		sc := a.scope(append([]*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: u.Relation}}}, u.FromClause...))
		a.wherePreds(sc, u.WhereClause)
	case *pg_query.Node_DeleteStmt:
		a.out.Kind = StmtDelete
		t := tableRef(n.DeleteStmt.Relation)
		a.out.Rows = Source{Table: &t}
		a.out.Concat = true
		d := n.DeleteStmt
		sc := a.scope(append([]*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: d.Relation}}}, d.UsingClause...))
		a.wherePreds(sc, d.WhereClause)
	case *pg_query.Node_CopyStmt:
		a.out.Kind = StmtCopy
		if n.CopyStmt.IsFrom {
			readOnly = false
		}
		if c, err := describeCopy(n.CopyStmt); err != nil {
			a.out.CopyErr = err
		} else {
			a.out.Copy = &c
		}
		// COPY ... TO: the rows of several shards, one after the other,
		// are the result when those of its query would be.
		if !n.CopyStmt.IsFrom {
			a.out.Concat = true
			if q := n.CopyStmt.Query; q != nil {
				sel := q.GetSelectStmt()
				a.out.Concat = sel != nil && concatenable(sel)
			}
		}
	case *pg_query.Node_TransactionStmt:
		a.out.Kind = StmtTxControl
	case *pg_query.Node_VariableSetStmt, *pg_query.Node_VariableShowStmt, *pg_query.Node_DiscardStmt,
		*pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt, *pg_query.Node_PrepareStmt,
		*pg_query.Node_DeallocateStmt, *pg_query.Node_DeclareCursorStmt, *pg_query.Node_FetchStmt,
		*pg_query.Node_ClosePortalStmt, *pg_query.Node_ConstraintsSetStmt:
		// DECLARE and PREPARE are as read-only as their query, which the
		// walk has looked at.
		a.out.Kind = StmtUtility
	case *pg_query.Node_ExecuteStmt, *pg_query.Node_NotifyStmt, *pg_query.Node_LoadStmt,
		*pg_query.Node_CheckPointStmt, *pg_query.Node_LockStmt:
		a.out.Kind = StmtUtility
		readOnly = false
	case *pg_query.Node_ExplainStmt:
		a.out.Kind = StmtOther
	case *pg_query.Node_DropStmt:
		a.out.Kind = StmtDDL
		readOnly = false
		a.dropTables(n.DropStmt)
		a.out.NoTxBlock = n.DropStmt.Concurrent
	default:
		if isDDL(stmt) {
			a.out.Kind = StmtDDL
		}
		readOnly = false
	}
	a.out.sideEffects = !readOnly || a.dml || a.locking || a.into || a.effects
	a.out.ReadOnly = !a.out.sideEffects && !a.unknownFunc
	if !a.out.NoTxBlock {
		a.out.NoTxBlock = noTxBlock(stmt)
	}
}

// noTxBlock reports whether PostgreSQL refuses stmt inside a transaction
// block.
func noTxBlock(stmt *pg_query.Node) bool {
	switch n := stmt.Node.(type) {
	case *pg_query.Node_VacuumStmt, *pg_query.Node_CreatedbStmt, *pg_query.Node_DropdbStmt,
		*pg_query.Node_AlterSystemStmt, *pg_query.Node_CreateTableSpaceStmt, *pg_query.Node_DropTableSpaceStmt,
		*pg_query.Node_CreateSubscriptionStmt, *pg_query.Node_DropSubscriptionStmt:
		return true
	case *pg_query.Node_IndexStmt:
		return n.IndexStmt.Concurrent
	case *pg_query.Node_RefreshMatViewStmt:
		return n.RefreshMatViewStmt.Concurrent
	case *pg_query.Node_ReindexStmt:
		for _, p := range n.ReindexStmt.Params {
			if d := p.GetDefElem(); d != nil && d.Defname == "concurrently" {
				return true
			}
		}
	}
	return false
}

func isDDL(stmt *pg_query.Node) bool {
	switch stmt.Node.(type) {
	case *pg_query.Node_CreateStmt, *pg_query.Node_IndexStmt, *pg_query.Node_AlterTableStmt,
		*pg_query.Node_RenameStmt, *pg_query.Node_TruncateStmt, *pg_query.Node_ViewStmt,
		*pg_query.Node_CreateTableAsStmt, *pg_query.Node_CreateSeqStmt, *pg_query.Node_AlterSeqStmt,
		*pg_query.Node_CreateSchemaStmt, *pg_query.Node_CreateFunctionStmt, *pg_query.Node_AlterFunctionStmt,
		*pg_query.Node_CommentStmt, *pg_query.Node_GrantStmt, *pg_query.Node_GrantRoleStmt,
		*pg_query.Node_CreateExtensionStmt, *pg_query.Node_AlterExtensionStmt, *pg_query.Node_DefineStmt,
		*pg_query.Node_CompositeTypeStmt, *pg_query.Node_CreateEnumStmt, *pg_query.Node_AlterEnumStmt,
		*pg_query.Node_CreateTrigStmt, *pg_query.Node_RuleStmt, *pg_query.Node_CreateDomainStmt,
		*pg_query.Node_AlterDomainStmt, *pg_query.Node_CreatePolicyStmt, *pg_query.Node_AlterPolicyStmt,
		*pg_query.Node_AlterObjectSchemaStmt, *pg_query.Node_AlterOwnerStmt, *pg_query.Node_ReindexStmt,
		*pg_query.Node_RefreshMatViewStmt, *pg_query.Node_CreateRoleStmt, *pg_query.Node_AlterRoleStmt,
		*pg_query.Node_DropRoleStmt, *pg_query.Node_CreatedbStmt, *pg_query.Node_DropdbStmt,
		*pg_query.Node_AlterDefaultPrivilegesStmt, *pg_query.Node_CreateForeignTableStmt,
		*pg_query.Node_ClusterStmt, *pg_query.Node_DropOwnedStmt, *pg_query.Node_ReassignOwnedStmt,
		*pg_query.Node_CreateStatsStmt, *pg_query.Node_CreateCastStmt, *pg_query.Node_CreateOpClassStmt,
		*pg_query.Node_CreatePublicationStmt, *pg_query.Node_AlterPublicationStmt,
		*pg_query.Node_CreateSubscriptionStmt, *pg_query.Node_AlterSubscriptionStmt,
		*pg_query.Node_DropSubscriptionStmt, *pg_query.Node_CreateEventTrigStmt, *pg_query.Node_SecLabelStmt,
		*pg_query.Node_VacuumStmt:
		return true
	}
	return false
}

// walk visits every message of the tree in field order.
func (a *analyzer) walk(m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *pg_query.RangeVar:
		a.addTable(tableRef(x))
	case *pg_query.FuncCall:
		a.addFunc(x.Funcname)
	case *pg_query.CommonTableExpr:
		if a.cteNames == nil {
			a.cteNames = make(map[string]bool)
		}
		a.cteNames[x.Ctename] = true
	case *pg_query.InsertStmt:
		a.dml = true
		a.addInsert(x)
	case *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
		a.dml = true
	case *pg_query.LockingClause:
		a.locking = true
	case *pg_query.SelectStmt:
		if x != a.top {
			if why := notLocal(x); why != "" {
				a.out.Nested = append(a.out.Nested, subquery(x, why))
			}
		}
	case *pg_query.IntoClause:
		a.into = true
	}
	// Descend in field order. Node is a oneof of some 270 message types:
	// look at the one that is set rather than asking each field.
	for _, f := range fieldsOf(m.Descriptor()) {
		switch {
		case f.oneof != nil:
			if fd := m.WhichOneof(f.oneof); fd != nil && fd.Kind() == protoreflect.MessageKind {
				a.walk(m.Get(fd).Message())
			}
		case !m.Has(f.fd):
		case f.fd.IsList():
			l := m.Get(f.fd).List()
			for j := 0; j < l.Len(); j++ {
				a.walk(l.Get(j).Message())
			}
		default:
			a.walk(m.Get(f.fd).Message())
		}
	}
}

// walkField is a field, or a oneof, of a message type that walk descends
// into.
type walkField struct {
	fd    protoreflect.FieldDescriptor
	oneof protoreflect.OneofDescriptor
}

var fieldCache sync.Map // protoreflect.MessageDescriptor -> []walkField

func fieldsOf(md protoreflect.MessageDescriptor) []walkField {
	if fs, ok := fieldCache.Load(md); ok {
		return fs.([]walkField)
	}
	var fs []walkField
	seen := map[protoreflect.OneofDescriptor]bool{}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		switch od := fd.ContainingOneof(); {
		case od != nil:
			if !seen[od] {
				seen[od] = true
				fs = append(fs, walkField{oneof: od})
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			fs = append(fs, walkField{fd: fd})
		}
	}
	fieldCache.Store(md, fs)
	return fs
}

func tableRef(rv *pg_query.RangeVar) TableRef {
	t := TableRef{Schema: rv.Schemaname, Name: rv.Relname}
	if rv.Alias != nil {
		t.Alias = rv.Alias.Aliasname
	}
	return t
}

func (a *analyzer) addTable(t TableRef) {
	for _, have := range a.out.Tables {
		if have == t {
			return
		}
	}
	a.out.Tables = append(a.out.Tables, t)
}

// filterCTETables drops references to CTEs from Tables (an unqualified
// name equal to a CTE's name anywhere in the statement).
func (a *analyzer) filterCTETables() {
	if len(a.cteNames) == 0 {
		return
	}
	ts := a.out.Tables[:0]
	for _, t := range a.out.Tables {
		if t.Schema == "" && a.cteNames[t.Name] {
			continue
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		ts = nil
	}
	a.out.Tables = ts
}

func (a *analyzer) isCTE(rv *pg_query.RangeVar) bool {
	return rv.Schemaname == "" && a.cteNames[rv.Relname]
}

func (a *analyzer) addFunc(name []*pg_query.Node) {
	parts := make([]string, 0, len(name))
	for _, n := range name {
		if s := n.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	if len(parts) == 0 {
		return
	}
	full := strings.Join(parts, ".")
	for _, f := range a.out.Functions {
		if f == full {
			return
		}
	}
	a.out.Functions = append(a.out.Functions, full)
	switch funcClass(parts) {
	case funcEffects:
		a.effects = true
	case funcUnknown:
		a.unknownFunc = true
		a.out.UserFunctions = append(a.out.UserFunctions, full)
	}
}

func (a *analyzer) dropTables(d *pg_query.DropStmt) {
	switch d.RemoveType {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_INDEX, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_SEQUENCE, pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
	default:
		return
	}
	for _, obj := range d.Objects {
		l := obj.GetList()
		if l == nil {
			continue
		}
		var parts []string
		for _, it := range l.Items {
			if s := it.GetString_(); s != nil {
				parts = append(parts, s.Sval)
			}
		}
		switch len(parts) {
		case 1:
			a.addTable(TableRef{Name: parts[0]})
		case 2, 3:
			a.addTable(TableRef{Schema: parts[len(parts)-2], Name: parts[len(parts)-1]})
		}
	}
}

func (a *analyzer) addInsert(ins *pg_query.InsertStmt) {
	if ins.Relation == nil {
		return
	}
	r := InsertRows{
		Table:      tableRef(ins.Relation),
		OnConflict: ins.OnConflictClause != nil,
		Returning:  len(ins.ReturningList) > 0,
	}
	if oc := ins.OnConflictClause; oc != nil {
		a.out.Assigned = append(a.out.Assigned, assigned(r.Table, oc.TargetList)...)
	}
	for _, c := range ins.Cols {
		if rt := c.GetResTarget(); rt != nil {
			r.Columns = append(r.Columns, rt.Name)
		}
	}
	if sel := ins.SelectStmt.GetSelectStmt(); sel != nil {
		if len(sel.ValuesLists) > 0 && sel.WithClause == nil && len(sel.SortClause) == 0 &&
			sel.LimitCount == nil && sel.LimitOffset == nil {
			r.Rows = make([][]Value, 0, len(sel.ValuesLists))
			for _, row := range sel.ValuesLists {
				l := row.GetList()
				if l == nil {
					continue
				}
				vals := make([]Value, len(l.Items))
				for i, it := range l.Items {
					vals[i] = valueOf(it)
				}
				r.Rows = append(r.Rows, vals)
			}
		} else {
			r.Query = true
		}
	}
	a.out.Inserts = append(a.out.Inserts, r)
}

// valueOf describes an expression as a Value; anything but a literal or a
// parameter, possibly cast or negated, is a ValueExpr.
func valueOf(n *pg_query.Node) Value {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_AConst:
		return constValue(x.AConst)
	case *pg_query.Node_ParamRef:
		return Value{Kind: ValueParam, Param: int(x.ParamRef.Number)}
	case *pg_query.Node_TypeCast:
		v := valueOf(x.TypeCast.Arg)
		if v.Kind == ValueExpr {
			return v
		}
		v.Cast = typeName(x.TypeCast.TypeName)
		return v
	case *pg_query.Node_SetToDefault:
		return Value{Kind: ValueDefault}
	case *pg_query.Node_AExpr:
		// Unary minus of a number: - 5 (older grammars), -'5', -(5).
		e := x.AExpr
		if e.Kind == pg_query.A_Expr_Kind_AEXPR_OP && e.Lexpr == nil && opName(e.Name) == "-" {
			v := valueOf(e.Rexpr)
			if (v.Kind == ValueInt || v.Kind == ValueNumeric) && v.Cast == "" {
				if strings.HasPrefix(v.Text, "-") {
					v.Text = v.Text[1:]
				} else {
					v.Text = "-" + v.Text
				}
				return v
			}
		}
	}
	return Value{}
}

func constValue(c *pg_query.A_Const) Value {
	if c.Isnull {
		return Value{Kind: ValueNull}
	}
	switch v := c.Val.(type) {
	case *pg_query.A_Const_Ival:
		return Value{Kind: ValueInt, Text: strconv.FormatInt(int64(v.Ival.GetIval()), 10)}
	case *pg_query.A_Const_Fval:
		// Integers too large for int4 arrive as Float nodes.
		t := v.Fval.GetFval()
		if isInteger(t) {
			return Value{Kind: ValueInt, Text: t}
		}
		return Value{Kind: ValueNumeric, Text: t}
	case *pg_query.A_Const_Sval:
		return Value{Kind: ValueString, Text: v.Sval.GetSval()}
	case *pg_query.A_Const_Bsval:
		return Value{Kind: ValueString, Text: v.Bsval.GetBsval()}
	case *pg_query.A_Const_Boolval:
		if v.Boolval.GetBoolval() {
			return Value{Kind: ValueBool, Text: "true"}
		}
		return Value{Kind: ValueBool, Text: "false"}
	}
	return Value{}
}

func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '_' {
			return false
		}
	}
	return true
}

func typeName(t *pg_query.TypeName) string {
	if t == nil {
		return ""
	}
	var parts []string
	for _, n := range t.Names {
		if s := n.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	if len(parts) > 1 && parts[0] == "pg_catalog" {
		parts = parts[1:]
	}
	name := strings.Join(parts, ".")
	for range t.ArrayBounds {
		name += "[]"
	}
	return name
}

func opName(name []*pg_query.Node) string {
	if len(name) != 1 {
		// OPERATOR(pg_catalog.=)
		if len(name) == 2 && name[0].GetString_().GetSval() == "pg_catalog" {
			return name[1].GetString_().GetSval()
		}
		return ""
	}
	return name[0].GetString_().GetSval()
}

// scopeItem is a relation in a FROM list: a table, or something else
// (subquery, function, CTE reference) that has only an alias.
type scopeItem struct {
	table TableRef
	isTbl bool
	name  string // how columns are qualified: alias, else table name
}

type scope []scopeItem

// scope lists the relations of a FROM list, flattening joins and
// recording their equality conditions in Joins and (for inner joins) in
// conds.
func (a *analyzer) scope(from []*pg_query.Node) scope {
	var sc scope
	for _, n := range from {
		sc = a.addScope(sc, n)
	}
	return sc
}

func (a *analyzer) addScope(sc scope, n *pg_query.Node) scope {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_RangeVar:
		rv := x.RangeVar
		if rv == nil {
			return sc
		}
		t := tableRef(rv)
		name := t.Alias
		if name == "" {
			name = t.Name
		}
		return append(sc, scopeItem{table: t, isTbl: !a.isCTE(rv), name: name})
	case *pg_query.Node_RangeSubselect:
		return append(sc, scopeItem{name: x.RangeSubselect.GetAlias().GetAliasname()})
	case *pg_query.Node_RangeFunction:
		return append(sc, scopeItem{name: x.RangeFunction.GetAlias().GetAliasname()})
	case *pg_query.Node_JoinExpr:
		j := x.JoinExpr
		before := len(sc)
		sc = a.addScope(sc, j.Larg)
		mid := len(sc)
		sc = a.addScope(sc, j.Rarg)
		// JOIN ... USING (c): the last relation of the left side and the
		// first of the right, when both are tables.
		if len(j.UsingClause) > 0 && mid > before && len(sc) > mid && sc[mid-1].isTbl && sc[mid].isTbl &&
			j.Larg.GetRangeVar() != nil {
			for _, u := range j.UsingClause {
				col := u.GetString_().GetSval()
				a.out.Joins = append(a.out.Joins, JoinEq{
					Left:  ColumnRef{Table: sc[mid-1].table, Column: col},
					Right: ColumnRef{Table: sc[mid].table, Column: col},
				})
			}
		}
		if j.Quals != nil {
			a.pendingJoinQuals = append(a.pendingJoinQuals, joinQual{j.Quals, j.Jointype == pg_query.JoinType_JOIN_INNER})
		}
		return sc
	}
	return append(sc, scopeItem{})
}

type joinQual struct {
	quals *pg_query.Node
	inner bool
}

func (a *analyzer) selectPreds(s *pg_query.SelectStmt) {
	if s == nil || s.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED && s.Op != pg_query.SetOperation_SETOP_NONE {
		return
	}
	sc := a.scope(s.FromClause)
	a.wherePreds(sc, s.WhereClause)
}

// wherePreds records the predicates and joins of where and of the join
// conditions scope collected.
func (a *analyzer) wherePreds(sc scope, where *pg_query.Node) {
	quals := a.pendingJoinQuals
	a.pendingJoinQuals = nil
	for _, q := range quals {
		for _, c := range conjuncts(q.quals, nil) {
			a.joinEq(sc, c)
		}
		if q.inner {
			a.out.Preds = append(a.out.Preds, a.preds(sc, q.quals)...)
		}
	}
	if where == nil {
		return
	}
	for _, c := range conjuncts(where, nil) {
		a.joinEq(sc, c)
	}
	a.out.Preds = append(a.out.Preds, a.preds(sc, where)...)
}

// conjuncts flattens ANDs.
func conjuncts(n *pg_query.Node, out []*pg_query.Node) []*pg_query.Node {
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		for _, arg := range b.Args {
			out = conjuncts(arg, out)
		}
		return out
	}
	return append(out, n)
}

// joinEq records c when it is column = column between two tables (or two
// instances of one table under different aliases).
func (a *analyzer) joinEq(sc scope, c *pg_query.Node) {
	e := c.GetAExpr()
	if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || opName(e.Name) != "=" {
		return
	}
	l, lok := sc.resolve(e.Lexpr.GetColumnRef())
	r, rok := sc.resolve(e.Rexpr.GetColumnRef())
	if !lok || !rok || l.Table == (TableRef{}) || r.Table == (TableRef{}) || l.Table == r.Table {
		return
	}
	a.out.Joins = append(a.out.Joins, JoinEq{Left: l, Right: r})
}

// resolve names the table and column a column reference points at. ok is
// false when it is not a column of a table in scope (a subquery's column,
// a whole-row reference, an outer reference); Table is the zero TableRef
// when the column is unqualified and several relations are in scope.
func (sc scope) resolve(cr *pg_query.ColumnRef) (c ColumnRef, ok bool) {
	if cr == nil {
		return c, false
	}
	parts := make([]string, 0, 3)
	for _, f := range cr.Fields {
		s := f.GetString_()
		if s == nil {
			return c, false // a.*
		}
		parts = append(parts, s.Sval)
	}
	switch len(parts) {
	case 1:
		c.Column = parts[0]
		if len(sc) == 1 {
			if !sc[0].isTbl {
				return c, false
			}
			c.Table = sc[0].table
		}
		return c, true
	case 2, 3, 4:
		c.Column = parts[len(parts)-1]
		qual := parts[len(parts)-2]
		schema := ""
		if len(parts) >= 3 {
			schema = parts[len(parts)-3]
		}
		for _, it := range sc {
			if it.name != qual || (schema != "" && (it.table.Alias != "" || it.table.Schema != schema)) {
				continue
			}
			if !it.isTbl {
				return c, false
			}
			c.Table = it.table
			return c, true
		}
	}
	return c, false
}

// preds returns the routing predicates that expression n implies.
func (a *analyzer) preds(sc scope, n *pg_query.Node) []Pred {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_BoolExpr:
		b := x.BoolExpr
		switch b.Boolop {
		case pg_query.BoolExprType_AND_EXPR:
			var out []Pred
			for _, arg := range b.Args {
				out = append(out, a.preds(sc, arg)...)
			}
			return out
		case pg_query.BoolExprType_OR_EXPR:
			return a.orPreds(sc, b.Args)
		}
		return nil
	case *pg_query.Node_AExpr:
		return a.exprPred(sc, x.AExpr)
	}
	return nil
}

// orPreds keeps the columns every branch constrains, with the union of
// their values.
func (a *analyzer) orPreds(sc scope, args []*pg_query.Node) []Pred {
	var acc []Pred
	for i, arg := range args {
		ps := a.preds(sc, arg)
		if i == 0 {
			for _, p := range ps {
				if !p.Array {
					acc = append(acc, p)
				}
			}
			acc = dedupePreds(acc)
			continue
		}
		var next []Pred
		for _, have := range acc {
			found := false
			for _, p := range ps {
				if p.Array || p.Table != have.Table || p.Column != have.Column {
					continue
				}
				if !found {
					have.Values = append(append([]Value(nil), have.Values...), p.Values...)
					found = true
				} else {
					// Two constraints on the column in one branch: any of
					// them bounds it; keep the first.
					continue
				}
			}
			if found {
				next = append(next, have)
			}
		}
		acc = next
		if len(acc) == 0 {
			return nil
		}
	}
	for i := range acc {
		acc[i].Values = uniqueValues(acc[i].Values)
	}
	return acc
}

// dedupePreds keeps the first predicate on each column.
func dedupePreds(ps []Pred) []Pred {
	out := ps[:0]
	for _, p := range ps {
		dup := false
		for _, q := range out {
			if q.Table == p.Table && q.Column == p.Column {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

func uniqueValues(vs []Value) []Value {
	out := vs[:0]
	for _, v := range vs {
		dup := false
		for _, w := range out {
			if w == v {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

// exprPred handles col = v, v = col, col IN (...), col = ANY(...).
func (a *analyzer) exprPred(sc scope, e *pg_query.A_Expr) []Pred {
	if opName(e.Name) != "=" {
		return nil
	}
	switch e.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		col, val := e.Lexpr, e.Rexpr
		if col.GetColumnRef() == nil {
			col, val = val, col
		}
		c, ok := sc.resolve(col.GetColumnRef())
		if !ok {
			return nil
		}
		v := valueOf(val)
		if v.Kind == ValueExpr {
			return nil
		}
		return []Pred{{Table: c.Table, Column: c.Column, Values: []Value{v}}}
	case pg_query.A_Expr_Kind_AEXPR_IN:
		c, ok := sc.resolve(e.Lexpr.GetColumnRef())
		l := e.Rexpr.GetList()
		if !ok || l == nil {
			return nil
		}
		vals := make([]Value, 0, len(l.Items))
		for _, it := range l.Items {
			v := valueOf(it)
			if v.Kind == ValueExpr {
				return nil
			}
			vals = append(vals, v)
		}
		return []Pred{{Table: c.Table, Column: c.Column, Values: uniqueValues(vals)}}
	case pg_query.A_Expr_Kind_AEXPR_OP_ANY:
		c, ok := sc.resolve(e.Lexpr.GetColumnRef())
		if !ok {
			return nil
		}
		arr := e.Rexpr
		cast := ""
		if tc := arr.GetTypeCast(); tc != nil {
			cast = typeName(tc.TypeName)
			arr = tc.Arg
		}
		switch {
		case arr.GetParamRef() != nil:
			v := Value{Kind: ValueParam, Param: int(arr.GetParamRef().Number), Cast: cast}
			return []Pred{{Table: c.Table, Column: c.Column, Values: []Value{v}, Array: true}}
		case arr.GetAConst() != nil:
			// An array literal: = ANY('{1,2}'::int[]).
			v := constValue(arr.GetAConst())
			if v.Kind != ValueString {
				return nil
			}
			v.Cast = cast
			return []Pred{{Table: c.Table, Column: c.Column, Values: []Value{v}, Array: true}}
		case arr.GetAArrayExpr() != nil:
			items := arr.GetAArrayExpr().Elements
			vals := make([]Value, 0, len(items))
			for _, it := range items {
				v := valueOf(it)
				if v.Kind == ValueExpr {
					return nil
				}
				if v.Cast == "" && strings.HasSuffix(cast, "[]") {
					v.Cast = strings.TrimSuffix(cast, "[]")
				}
				vals = append(vals, v)
			}
			if len(vals) == 0 {
				return nil
			}
			return []Pred{{Table: c.Table, Column: c.Column, Values: uniqueValues(vals)}}
		}
	}
	return nil
}

// notLocal says why a nested SELECT's result on one shard's rows is not
// its part of the result over all the rows; "" when it is.
func notLocal(sel *pg_query.SelectStmt) string {
	switch {
	case sel.Op != pg_query.SetOperation_SETOP_NONE && (sel.Op != pg_query.SetOperation_SETOP_UNION || !sel.All):
		return "a UNION, INTERSECT or EXCEPT"
	case len(sel.GroupClause) > 0 || sel.HavingClause != nil:
		return "a GROUP BY"
	case len(sel.DistinctClause) > 0:
		return "a DISTINCT"
	case sel.LimitCount != nil || sel.LimitOffset != nil:
		return "a LIMIT or OFFSET"
	case len(sel.WindowClause) > 0 || !plainOutput(sel.TargetList):
		return "aggregates or window functions"
	}
	return ""
}

// distinctColumns names the table column each count(DISTINCT x) of the
// Grouped counts, where x is one.
func (a *analyzer) distinctColumns(sel *pg_query.SelectStmt) {
	g := a.out.Grouped
	if g == nil || len(g.Distinct) == 0 {
		return
	}
	_, b, why := buildGrouped(sel)
	if why != "" {
		return
	}
	// A scope of its own: scope records joins, which selectPreds did.
	sc := (&analyzer{cteNames: a.cteNames}).scope(sel.FromClause)
	for i, d := range g.Distinct {
		if c, ok := sc.resolve(b.cols[d.Col].arg.GetColumnRef()); ok && c.Table != (TableRef{}) {
			g.Distinct[i].Column = c
		}
	}
}

// concatenable reports whether the rows of sel computed on several shards,
// concatenated, equal its result over all the rows (see Analysis.Concat).
func concatenable(sel *pg_query.SelectStmt) bool {
	if sel == nil {
		return false
	}
	switch sel.Op {
	case pg_query.SetOperation_SETOP_NONE:
	case pg_query.SetOperation_SETOP_UNION:
		return sel.All && len(sel.SortClause) == 0 && sel.LimitCount == nil && sel.LimitOffset == nil &&
			concatenable(sel.Larg) && concatenable(sel.Rarg)
	default:
		return false
	}
	if len(sel.SortClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.DistinctClause) > 0 ||
		len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.WindowClause) > 0 || sel.IntoClause != nil {
		return false
	}
	if len(sel.ValuesLists) > 0 {
		return false // a VALUES list has no table: one shard answers
	}
	return plainOutput(sel.TargetList)
}

// visitOutput calls fn for each function call in an output expression,
// not looking into subqueries (they run per row, on the row's shard).
func visitOutput(n *pg_query.Node, fn func(*pg_query.FuncCall)) {
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.SubLink:
			return
		case *pg_query.FuncCall:
			fn(x)
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	if n != nil {
		walk(n.ProtoReflect())
	}
}

// aggregates are PostgreSQL's built-in aggregate functions.
var aggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "array_agg": true, "string_agg": true,
	"bool_and": true, "bool_or": true, "every": true, "bit_and": true, "bit_or": true, "bit_xor": true,
	"json_agg": true, "jsonb_agg": true, "json_object_agg": true, "jsonb_object_agg": true, "xmlagg": true,
	"stddev": true, "stddev_pop": true, "stddev_samp": true, "variance": true, "var_pop": true, "var_samp": true,
	"corr": true, "covar_pop": true, "covar_samp": true, "regr_avgx": true, "regr_avgy": true, "regr_count": true,
	"regr_intercept": true, "regr_r2": true, "regr_slope": true, "regr_sxx": true, "regr_sxy": true, "regr_syy": true,
	"mode": true, "percentile_cont": true, "percentile_disc": true, "rank": true, "dense_rank": true,
	"percent_rank": true, "cume_dist": true, "range_agg": true, "range_intersect_agg": true, "any_value": true,
	"json_agg_strict": true, "json_objectagg": true, "json_arrayagg": true,
}

// assigned lists the columns of t a SET list assigns.
func assigned(t TableRef, targets []*pg_query.Node) []ColumnRef {
	var out []ColumnRef
	for _, n := range targets {
		if rt := n.GetResTarget(); rt != nil && rt.Name != "" {
			out = append(out, ColumnRef{Table: t, Column: rt.Name})
		}
	}
	return out
}
