package parser

import (
	"errors"
	"fmt"
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// Grouped says how the rows of a SELECT with aggregates, GROUP BY or
// DISTINCT that runs on several shards merge into its result: each shard
// returns its groups with partial aggregates (GroupedShardQuery drops
// HAVING, ORDER BY, LIMIT and OFFSET, and adds the columns the merge
// needs), and the proxy combines the rows of equal keys, keeps the groups
// Having holds for, computes the output columns by Out, then sorts by
// Keys and applies Offset and Limit.
type Grouped struct {
	// Cols says how the values of each column the shards return combine:
	// one column per output column, then Hidden more.
	Cols []AggKind
	// Out computes each output column from the merged columns.
	Out []Expr
	// Having, when set, is the HAVING predicate over the merged columns.
	Having *Expr
	// Keys, Limit and Offset are as in Sorted (Keys over output columns
	// only).
	Keys          []SortKey
	Limit, Offset *Value
	// Hidden counts the columns the shards' query adds at the end: an
	// avg's count, aggregates that HAVING or an output expression needs,
	// GROUP BY keys that are not output columns.
	Hidden int
	// OneRow: aggregates without GROUP BY make one row even when no shard
	// returns one (a count(DISTINCT) makes the shards group).
	OneRow bool
	// Distinct lists the count(DISTINCT x) columns. The proxy may turn one
	// into AggCount when x is its table's shard key (no value is on two
	// shards), and GroupedShardQuery then keeps count(DISTINCT x).
	Distinct []DistinctArg
	// Rewrite says the shards run GroupedShardQuery's rewrite.
	Rewrite bool
}

// DistinctArg is the argument x of a count(DISTINCT x) column: Column
// names its table and column when x is a column of a table in the FROM
// list (the zero ColumnRef otherwise).
type DistinctArg struct {
	Col    int
	Column ColumnRef
}

// AggKind is how the values of one column from several shards combine.
type AggKind uint8

const (
	AggKey           AggKind = iota // a GROUP BY key (or DISTINCT column): rows with equal keys combine
	AggCount                        // count(...): the counts add up
	AggSum                          // sum(...): the sums add up; NULL when all are
	AggMin                          // min(...)
	AggMax                          // max(...)
	AggAnd                          // bool_and, every
	AggOr                           // bool_or
	AggAvg                          // the sum of an avg; Out divides it by its count
	AggCountDistinct                // count(DISTINCT x): the shards send x, grouped by it; the merge counts the distinct values
	AggExpr                         // an output expression: the shards send NULL, Out computes it
)

var aggKindNames = [...]string{"key", "count", "sum", "min", "max", "and", "or", "avg", "countdistinct", "expr"}

func (k AggKind) String() string { return aggKindNames[k] }

// ExprOp is what an Expr node computes.
type ExprOp uint8

const (
	ExprCol       ExprOp = iota // the merged column Col
	ExprLit                     // the literal Lit (int, numeric, string, null or bool)
	ExprAvg                     // avg from a sum (Args[0]) and a count (Args[1])
	ExprCmp                     // Args[0] Name Args[1]; Name is =, <>, <, <=, > or >=
	ExprAnd                     // all of Args
	ExprOr                      // any of Args
	ExprNot                     // NOT Args[0]
	ExprIsNull                  // Args[0] IS NULL
	ExprIsNotNull               // Args[0] IS NOT NULL
	ExprArith                   // Args[0] Name Args[1]; Name is +, -, *, / or %
	ExprNeg                     // -Args[0]
)

// Expr is an expression over the merged columns of a grouped SELECT.
type Expr struct {
	Op   ExprOp
	Col  int
	Lit  Value
	Name string
	Args []Expr
}

// String prints e for tests and SHOW ROUTE: $n for column n (0-based).
func (e Expr) String() string {
	args := func(sep string) string {
		s := ""
		for i, a := range e.Args {
			if i > 0 {
				s += sep
			}
			s += a.String()
		}
		return s
	}
	switch e.Op {
	case ExprCol:
		return "c" + strconv.Itoa(e.Col)
	case ExprLit:
		if e.Lit.Kind == ValueString {
			return strconv.Quote(e.Lit.Text)
		}
		switch e.Lit.Kind {
		case ValueNull:
			return "NULL"
		case ValueParam:
			return e.Lit.String()
		}
		return e.Lit.Text
	case ExprAvg:
		return "avg(" + args(", ") + ")"
	case ExprCmp, ExprArith:
		return "(" + args(" "+e.Name+" ") + ")"
	case ExprAnd:
		return "(" + args(" AND ") + ")"
	case ExprOr:
		return "(" + args(" OR ") + ")"
	case ExprNot:
		return "NOT " + args("")
	case ExprIsNull:
		return args("") + " IS NULL"
	case ExprIsNotNull:
		return args("") + " IS NOT NULL"
	case ExprNeg:
		return "-" + args("")
	}
	return "?"
}

// shardCol is a column of the shards' query.
type shardCol struct {
	kind AggKind
	node *pg_query.Node // what the shards compute
	name string         // its output name; "" keeps the expression's own
	arg  *pg_query.Node // count(DISTINCT x): x
}

// groupBuilder works out the shards' columns of a grouped SELECT.
type groupBuilder struct {
	sel  *pg_query.SelectStmt
	cols []shardCol
}

// grouped returns how the rows of sel merge, or nil with why not.
func grouped(sel *pg_query.SelectStmt) (*Grouped, string) {
	g, _, why := buildGrouped(sel)
	return g, why
}

func buildGrouped(sel *pg_query.SelectStmt) (*Grouped, *groupBuilder, string) {
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE {
		return nil, nil, "set operations other than UNION ALL"
	}
	switch {
	case len(sel.WindowClause) > 0:
		return nil, nil, "window functions"
	case sel.IntoClause != nil || len(sel.ValuesLists) > 0:
		return nil, nil, "SELECT INTO or VALUES"
	case sel.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, nil, "FETCH ... WITH TIES"
	}
	distinct := len(sel.DistinctClause) > 0
	if distinct && sel.DistinctClause[0].GetNode() != nil {
		return nil, nil, "DISTINCT ON"
	}
	for _, g := range sel.GroupClause {
		if g.GetGroupingSet() != nil {
			return nil, nil, "GROUPING SETS, ROLLUP or CUBE"
		}
	}
	b := &groupBuilder{sel: sel}
	g := &Grouped{OneRow: len(sel.GroupClause) == 0 && !distinct}
	// The output columns first, one shard column each.
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		if rt == nil || isStar(rt.Val) {
			if distinct {
				return nil, nil, "SELECT DISTINCT *"
			}
			return nil, nil, "* with aggregates"
		}
		c, why := b.slot(rt, distinct && len(sel.GroupClause) == 0)
		if why != "" {
			return nil, nil, why
		}
		b.cols = append(b.cols, c)
	}
	n := len(b.cols)
	// Then what they are computed from.
	for i, t := range sel.TargetList {
		rt := t.GetResTarget()
		switch c := b.cols[i]; c.kind {
		case AggAvg:
			f := rt.Val.GetFuncCall()
			g.Out = append(g.Out, Expr{Op: ExprAvg, Args: []Expr{{Op: ExprCol, Col: i}, {Op: ExprCol, Col: b.col(AggCount, renamed(f, "count"), nil)}}})
		case AggExpr:
			e, why := b.expr(rt.Val, "an output expression")
			if why != "" {
				return nil, nil, why
			}
			g.Out = append(g.Out, *e)
		default:
			g.Out = append(g.Out, Expr{Op: ExprCol, Col: i})
		}
	}
	// GROUP BY keys that are not output columns still tell groups apart.
	outKeys := true
	for _, gb := range sel.GroupClause {
		if col, ok := outputColumn(gb, sel.TargetList, n); ok && b.cols[col].kind == AggKey {
			continue
		}
		outKeys = false
		b.col(AggKey, gb, nil)
	}
	if distinct && len(sel.GroupClause) > 0 && !outKeys {
		return nil, nil, "DISTINCT with GROUP BY keys that are not output columns"
	}
	if sel.HavingClause != nil {
		e, why := b.expr(sel.HavingClause, "HAVING")
		if why != "" {
			return nil, nil, why
		}
		g.Having = e
	}
	for i, c := range b.cols {
		g.Cols = append(g.Cols, c.kind)
		if c.kind == AggCountDistinct {
			g.Distinct = append(g.Distinct, DistinctArg{Col: i})
		}
	}
	g.Hidden = len(b.cols) - n
	var why string
	if g.Limit, g.Offset, why = limits(sel); why != "" {
		return nil, nil, why
	}
	for _, node := range sel.SortClause {
		sb, key, why := sortKey(node)
		if why != "" {
			return nil, nil, why
		}
		col, ok := outputColumn(sb.Node, sel.TargetList, n)
		if !ok {
			return nil, nil, "ORDER BY an expression that is not an output column, with aggregates, GROUP BY or DISTINCT"
		}
		key.Column = col
		g.Keys = append(g.Keys, key)
	}
	g.Rewrite = len(g.Keys) > 0 || g.Limit != nil || g.Offset != nil || g.Having != nil || g.Hidden > 0
	for _, k := range g.Cols {
		if k == AggAvg || k == AggCountDistinct || k == AggExpr {
			g.Rewrite = true
		}
	}
	return g, b, ""
}

// slot is the shard column of an output column.
func (b *groupBuilder) slot(rt *pg_query.ResTarget, distinctOnly bool) (shardCol, string) {
	f := rt.Val.GetFuncCall()
	if f != nil && isAggregate(f) {
		if distinctOnly {
			return shardCol{}, "DISTINCT with aggregates"
		}
		kind, why := aggFunc(f)
		if why != "" {
			return shardCol{}, why
		}
		switch kind {
		case AggAvg:
			name := rt.Name
			if name == "" {
				name = "avg" // the column keeps the name avg(x) gives it
			}
			return shardCol{kind: AggAvg, node: renamed(f, "sum"), name: name}, ""
		case AggCountDistinct:
			name := rt.Name
			if name == "" {
				name = "count"
			}
			return shardCol{kind: kind, node: rt.Val, name: name, arg: f.Args[0]}, ""
		}
		return shardCol{kind: kind, node: rt.Val, name: rt.Name}, ""
	}
	if distinctOnly || b.isGroupKey(rt.Val) {
		return shardCol{kind: AggKey, node: rt.Val, name: rt.Name}, ""
	}
	name := rt.Name
	if name == "" {
		name = "?column?"
	}
	null := &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true}}}
	return shardCol{kind: AggExpr, node: null, name: name}, ""
}

// aggFunc classifies an aggregate call.
func aggFunc(f *pg_query.FuncCall) (AggKind, string) {
	name := f.Funcname[len(f.Funcname)-1].GetString_().GetSval()
	switch {
	case f.Over != nil:
		return 0, "window functions"
	case f.AggFilter != nil:
		return 0, "aggregates with FILTER"
	case len(f.AggOrder) > 0 || f.AggWithinGroup:
		return 0, "aggregates with ORDER BY or WITHIN GROUP"
	}
	var kind AggKind
	switch name {
	case "count":
		kind = AggCount
		if f.AggDistinct {
			if len(f.Args) != 1 || f.Args[0].GetAConst() != nil {
				return 0, "count(DISTINCT) of several values or of a constant"
			}
			kind = AggCountDistinct
		}
	case "sum":
		kind = AggSum
	case "min":
		kind = AggMin
	case "max":
		kind = AggMax
	case "bool_and", "every":
		kind = AggAnd
	case "bool_or":
		kind = AggOr
	case "avg":
		kind = AggAvg
	default:
		return 0, name + "()"
	}
	if f.AggDistinct && (kind == AggSum || kind == AggAvg) {
		// min, max, bool_and and bool_or of the distinct values are
		// those of all values.
		return 0, name + "(DISTINCT)"
	}
	return kind, ""
}

// renamed is a copy of aggregate f calling pg_catalog.name instead.
func renamed(f *pg_query.FuncCall, name string) *pg_query.Node {
	c := proto.Clone(f).(*pg_query.FuncCall)
	c.Funcname = []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(name)}
	return &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: c}}
}

// col returns the shard column that computes node as kind, adding a
// hidden one when there is none.
func (b *groupBuilder) col(kind AggKind, node, arg *pg_query.Node) int {
	for i, c := range b.cols {
		if c.kind == kind && kind != AggExpr && sameExpr(c.node, node) {
			return i
		}
	}
	b.cols = append(b.cols, shardCol{kind: kind, node: node, arg: arg})
	return len(b.cols) - 1
}

// isGroupKey reports whether n is a GROUP BY key: the same expression as
// one, or as the output column one names.
func (b *groupBuilder) isGroupKey(n *pg_query.Node) bool {
	targets := b.sel.TargetList
	for _, gb := range b.sel.GroupClause {
		if sameExpr(gb, n) {
			return true
		}
		// GROUP BY 1 or GROUP BY an output name.
		if col, ok := outputColumn(gb, targets, len(targets)); ok {
			if rt := targets[col].GetResTarget(); rt != nil && sameExpr(rt.Val, n) {
				return true
			}
		}
	}
	return false
}

// expr turns an expression over aggregates and GROUP BY keys into an
// Expr over the shard columns, adding those it needs; where names the
// clause, for why.
func (b *groupBuilder) expr(n *pg_query.Node, where string) (*Expr, string) {
	if n.GetAConst() == nil && n.GetParamRef() == nil && b.isGroupKey(n) {
		return &Expr{Op: ExprCol, Col: b.col(AggKey, n, nil)}, ""
	}
	pair := func(op ExprOp, name string, l, r *pg_query.Node) (*Expr, string) {
		x, why := b.expr(l, where)
		if why != "" {
			return nil, why
		}
		y, why := b.expr(r, where)
		if why != "" {
			return nil, why
		}
		return &Expr{Op: op, Name: name, Args: []Expr{*x, *y}}, ""
	}
	switch x := n.GetNode().(type) {
	case *pg_query.Node_AConst:
		v := valueOf(n)
		if v.Kind == ValueExpr {
			return nil, where + " with a constant pgshard cannot read"
		}
		return &Expr{Op: ExprLit, Lit: v}, ""
	case *pg_query.Node_BoolExpr:
		op := map[pg_query.BoolExprType]ExprOp{pg_query.BoolExprType_AND_EXPR: ExprAnd, pg_query.BoolExprType_OR_EXPR: ExprOr, pg_query.BoolExprType_NOT_EXPR: ExprNot}[x.BoolExpr.Boolop]
		e := &Expr{Op: op}
		for _, a := range x.BoolExpr.Args {
			arg, why := b.expr(a, where)
			if why != "" {
				return nil, why
			}
			e.Args = append(e.Args, *arg)
		}
		return e, ""
	case *pg_query.Node_NullTest:
		arg, why := b.expr(x.NullTest.Arg, where)
		if why != "" {
			return nil, why
		}
		op := ExprIsNull
		if x.NullTest.Nulltesttype == pg_query.NullTestType_IS_NOT_NULL {
			op = ExprIsNotNull
		}
		return &Expr{Op: op, Args: []Expr{*arg}}, ""
	case *pg_query.Node_AExpr:
		e := x.AExpr
		name := opName(e.Name)
		switch e.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP:
			if v := valueOf(n); v.Kind == ValueInt || v.Kind == ValueNumeric {
				return &Expr{Op: ExprLit, Lit: v}, "" // a negative number
			}
			switch name {
			case "=", "<>", "!=", "<", "<=", ">", ">=":
				return pair(ExprCmp, name, e.Lexpr, e.Rexpr)
			case "+", "-", "*", "/", "%":
				if e.Lexpr == nil {
					if name != "-" {
						break
					}
					arg, why := b.expr(e.Rexpr, where)
					if why != "" {
						return nil, why
					}
					return &Expr{Op: ExprNeg, Args: []Expr{*arg}}, ""
				}
				return pair(ExprArith, name, e.Lexpr, e.Rexpr)
			}
			return nil, where + " with the operator " + name + " (pgshard evaluates =, <>, <, <=, >, >=, +, -, *, /, %, AND, OR, NOT, IS [NOT] NULL)"
		case pg_query.A_Expr_Kind_AEXPR_IN:
			// x IN (a, b) is x = a OR x = b; x NOT IN (a, b) is x <> a AND x <> b.
			list := e.Rexpr.GetList()
			if list == nil {
				break
			}
			out := &Expr{Op: ExprOr}
			if name == "<>" {
				out.Op = ExprAnd
			}
			for _, item := range list.Items {
				c, why := pair(ExprCmp, name, e.Lexpr, item)
				if why != "" {
					return nil, why
				}
				out.Args = append(out.Args, *c)
			}
			return out, ""
		}
		return nil, where + " with IN (subquery), LIKE, BETWEEN, IS DISTINCT FROM or another operator pgshard does not evaluate"
	case *pg_query.Node_FuncCall:
		f := x.FuncCall
		if f.Over != nil {
			return nil, "window functions"
		}
		if !isAggregate(f) {
			return nil, where + " with a function call other than an aggregate"
		}
		kind, why := aggFunc(f)
		if why != "" {
			return nil, why
		}
		switch kind {
		case AggAvg:
			return &Expr{Op: ExprAvg, Args: []Expr{
				{Op: ExprCol, Col: b.col(AggAvg, renamed(f, "sum"), nil)},
				{Op: ExprCol, Col: b.col(AggCount, renamed(f, "count"), nil)}}}, ""
		case AggCountDistinct:
			return &Expr{Op: ExprCol, Col: b.col(kind, n, f.Args[0])}, ""
		}
		return &Expr{Op: ExprCol, Col: b.col(kind, n, nil)}, ""
	case *pg_query.Node_ParamRef:
		// The proxy reads it from the Bind, or from the literal the cache
		// made it (see Normalize).
		return &Expr{Op: ExprLit, Lit: valueOf(n)}, ""
	case *pg_query.Node_TypeCast:
		return nil, where + " with a type cast"
	case *pg_query.Node_SubLink:
		return nil, where + " with a subquery"
	case *pg_query.Node_ColumnRef:
		return nil, where + " on a column that is not a GROUP BY key"
	}
	return nil, where + " with an expression pgshard does not evaluate (it evaluates comparisons, arithmetic, AND, OR, NOT and IS [NOT] NULL of aggregates, GROUP BY keys and literals)"
}

func isAggregate(f *pg_query.FuncCall) bool {
	if len(f.Funcname) == 0 {
		return false
	}
	if len(f.Funcname) == 2 && f.Funcname[0].GetString_().GetSval() != "pg_catalog" {
		return false
	}
	return aggregates[f.Funcname[len(f.Funcname)-1].GetString_().GetSval()]
}

// parseSelect parses sql, which must be one SELECT.
func parseSelect(sql string) (*pg_query.ParseResult, *pg_query.SelectStmt, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].GetStmt().GetSelectStmt() == nil {
		return nil, nil, errors.New("shard query: expected one SELECT")
	}
	return tree, tree.Stmts[0].GetStmt().GetSelectStmt(), nil
}

// GroupedShardQuery rewrites sql, a SELECT whose Analysis has Grouped g
// (as the proxy may have changed it, see Grouped.Distinct), into what
// each shard runs: without HAVING, ORDER BY, LIMIT and OFFSET, which
// apply to the merged groups; avg(x) as sum(x), with count(x) added;
// count(DISTINCT x) as x, grouped by; output expressions as NULL, with
// the aggregates and keys they need added; GROUP BY keys that are not
// output columns added.
func GroupedShardQuery(sql string, g *Grouped) (string, error) {
	tree, sel, err := parseSelect(sql)
	if err != nil {
		return "", err
	}
	_, b, why := buildGrouped(sel)
	if why != "" {
		return "", errors.New("shard query: " + why)
	}
	if len(b.cols) != len(g.Cols) {
		return "", fmt.Errorf("shard query: %d columns, the merge expects %d", len(b.cols), len(g.Cols))
	}
	for i, c := range b.cols {
		if c.kind != g.Cols[i] && (c.kind != AggCountDistinct || g.Cols[i] != AggCount) {
			return "", fmt.Errorf("shard query: column %d is %s, the merge expects %s", i+1, c.kind, g.Cols[i])
		}
	}
	sel.SortClause, sel.LimitCount, sel.LimitOffset, sel.HavingClause = nil, nil, nil, nil
	sel.LimitOption = pg_query.LimitOption_LIMIT_OPTION_DEFAULT
	targets := make([]*pg_query.Node, 0, len(b.cols))
	n := len(sel.TargetList)
	for i, c := range b.cols {
		node, name := c.node, c.name
		if c.kind == AggCountDistinct && g.Cols[i] == AggCountDistinct {
			node = c.arg
			sel.GroupClause = append(sel.GroupClause, proto.Clone(c.arg).(*pg_query.Node))
		}
		if i >= n {
			name = "pgshard_merge_" + strconv.Itoa(i-n+1)
		}
		targets = append(targets, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: node}}})
	}
	sel.TargetList = targets
	return pg_query.Deparse(tree)
}
