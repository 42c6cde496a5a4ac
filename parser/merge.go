package parser

import (
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Sorted says how the rows of a SELECT with ORDER BY, LIMIT or OFFSET
// that runs on several shards merge into its result: each shard returns
// its rows in the statement's order, and the proxy merges the shards'
// streams by Keys, then skips Offset rows and stops after Limit.
type Sorted struct {
	// Keys are the ORDER BY keys, as columns of the rows the shards
	// return: 0-based from the left, or negative from the right (-1 is the
	// last column) for keys the shards' statement adds (Hidden).
	Keys []SortKey
	// Limit and Offset are the statement's LIMIT and OFFSET, nil when
	// absent (LIMIT ALL is absent).
	Limit, Offset *Value
	// Hidden counts the columns added at the end of the shards' output
	// for ORDER BY keys that are not output columns; the proxy strips them.
	Hidden int
	// Rewrite says the shards run ShardQuery's rewrite of the statement
	// (hidden columns; LIMIT limit+offset without OFFSET), not the text.
	Rewrite bool
}

// SortKey is one ORDER BY key.
type SortKey struct {
	Column           int
	Desc, NullsFirst bool
}

// sorted returns how the rows of sel merge, or nil when they cannot be
// merged by sorting (see Sorted), with why.
func sorted(sel *pg_query.SelectStmt) (*Sorted, string) {
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE {
		return nil, "set operations other than UNION ALL"
	}
	if len(sel.SortClause) == 0 && sel.LimitCount == nil && sel.LimitOffset == nil {
		return nil, ""
	}
	switch {
	case len(sel.DistinctClause) > 0:
		return nil, "DISTINCT"
	case len(sel.GroupClause) > 0 || sel.HavingClause != nil:
		return nil, "GROUP BY"
	case len(sel.WindowClause) > 0:
		return nil, "window functions"
	case sel.IntoClause != nil || len(sel.ValuesLists) > 0:
		return nil, "SELECT INTO or VALUES"
	case sel.LimitOption == pg_query.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, "FETCH ... WITH TIES"
	}
	if !plainOutput(sel.TargetList) {
		return nil, "aggregates or window functions"
	}
	s := &Sorted{}
	var why string
	if s.Limit, s.Offset, why = limits(sel); why != "" {
		return nil, why
	}
	s.Rewrite = s.Offset != nil
	// Output columns known by position: those before any '*'.
	known := len(sel.TargetList)
	for i, t := range sel.TargetList {
		if rt := t.GetResTarget(); rt != nil && isStar(rt.Val) {
			known = i
			break
		}
	}
	var hidden []*pg_query.Node
	for _, n := range sel.SortClause {
		sb, key, why := sortKey(n)
		if why != "" {
			return nil, why
		}
		col, ok := outputColumn(sb.Node, sel.TargetList, known)
		if !ok && sb.Node.GetAConst() != nil {
			return nil, "ORDER BY a position after * or out of range"
		}
		if !ok {
			hidden = append(hidden, sb.Node)
			col = -len(hidden) // fixed up below, once all are known
		}
		key.Column = col
		s.Keys = append(s.Keys, key)
	}
	s.Hidden = len(hidden)
	for i := range s.Keys {
		if c := s.Keys[i].Column; c < 0 {
			// The j-th hidden key (c = -(j+1)) is the j-th added column.
			s.Keys[i].Column = -(len(hidden) - (-c - 1))
		}
	}
	if s.Hidden > 0 {
		s.Rewrite = true
	}
	return s, ""
}

// limits returns a SELECT's LIMIT and OFFSET, which pgshard can apply
// when they are numbers or parameters.
func limits(sel *pg_query.SelectStmt) (limit, offset *Value, why string) {
	limit, offset = limitValue(sel.LimitCount), limitValue(sel.LimitOffset)
	if limit != nil && limit.Kind != ValueInt && limit.Kind != ValueParam {
		return nil, nil, "a LIMIT that is not a number or a parameter"
	}
	if offset != nil && offset.Kind != ValueInt && offset.Kind != ValueParam {
		return nil, nil, "an OFFSET that is not a number or a parameter"
	}
	return limit, offset, ""
}

// sortKey reads an ORDER BY item's direction into a SortKey (Column is
// left to the caller).
func sortKey(n *pg_query.Node) (*pg_query.SortBy, SortKey, string) {
	sb := n.GetSortBy()
	if sb == nil || sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
		return nil, SortKey{}, "ORDER BY ... USING"
	}
	key := SortKey{Desc: sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC}
	key.NullsFirst = key.Desc
	switch sb.SortbyNulls {
	case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
		key.NullsFirst = true
	case pg_query.SortByNulls_SORTBY_NULLS_LAST:
		key.NullsFirst = false
	}
	return sb, key, ""
}

// plainOutput reports whether an output list has no aggregates, window
// functions or functions the analyser does not know.
func plainOutput(targets []*pg_query.Node) bool {
	ok := true
	for _, t := range targets {
		visitOutput(t, func(f *pg_query.FuncCall) {
			var parts []string
			for _, n := range f.Funcname {
				parts = append(parts, n.GetString_().GetSval())
			}
			if f.Over != nil || f.AggStar || f.AggDistinct || len(f.AggOrder) > 0 || f.AggFilter != nil ||
				len(parts) == 0 || aggregates[parts[len(parts)-1]] || funcClass(parts) == funcUnknown {
				ok = false
			}
		})
	}
	return ok
}

// limitValue is the value of a LIMIT or OFFSET expression; nil for none
// and for LIMIT ALL (a NULL constant).
func limitValue(n *pg_query.Node) *Value {
	if n == nil {
		return nil
	}
	v := valueOf(n)
	if v.Kind == ValueNull {
		return nil
	}
	return &v
}

func isStar(n *pg_query.Node) bool {
	cr := n.GetColumnRef()
	if cr == nil || len(cr.Fields) == 0 {
		return false
	}
	return cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

// outputColumn finds the output column an ORDER BY expression names: a
// position, an output name, or the same expression as an output column,
// among the first known columns.
func outputColumn(n *pg_query.Node, targets []*pg_query.Node, known int) (int, bool) {
	if c := n.GetAConst(); c != nil {
		if iv, ok := c.Val.(*pg_query.A_Const_Ival); ok {
			pos := int(iv.Ival.GetIval())
			if pos >= 1 && pos <= known {
				return pos - 1, true
			}
		}
		return 0, false
	}
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 {
		name := cr.Fields[0].GetString_().GetSval()
		for i, t := range targets[:known] {
			if rt := t.GetResTarget(); rt != nil && rt.Name != "" && rt.Name == name {
				return i, true
			}
		}
	}
	for i, t := range targets[:known] {
		if rt := t.GetResTarget(); rt != nil && sameExpr(rt.Val, n) {
			return i, true
		}
	}
	return 0, false
}

// sameExpr reports whether two expressions are the same but for where
// they stand in the text.
func sameExpr(a, b *pg_query.Node) bool {
	a, b = proto.Clone(a).(*pg_query.Node), proto.Clone(b).(*pg_query.Node)
	clearLocations(a.ProtoReflect())
	clearLocations(b.ProtoReflect())
	return proto.Equal(a, b)
}

func clearLocations(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Name() == "location" && fd.Kind() == protoreflect.Int32Kind:
			m.Clear(fd)
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				clearLocations(l.Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			clearLocations(v.Message())
		}
		return true
	})
}

// ShardQuery rewrites sql, a SELECT whose Analysis has Sorted.Rewrite, into
// what each shard runs: the ORDER BY keys that are not output columns
// added at the end of the output, and LIMIT limit+offset without OFFSET.
// The result is deparsed SQL: equivalent, but comments and layout are not
// kept.
func ShardQuery(sql string) (string, error) {
	tree, sel, err := parseSelect(sql)
	if err != nil {
		return "", err
	}
	known := len(sel.TargetList)
	for i, t := range sel.TargetList {
		if rt := t.GetResTarget(); rt != nil && isStar(rt.Val) {
			known = i
			break
		}
	}
	n := 0
	for _, sb := range sel.SortClause {
		node := sb.GetSortBy().GetNode()
		if _, ok := outputColumn(node, sel.TargetList, known); ok {
			continue
		}
		n++
		sel.TargetList = append(sel.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Name: "pgshard_sort_" + strconv.Itoa(n), Val: node}}})
	}
	if sel.LimitOffset != nil {
		if sel.LimitCount != nil && limitValue(sel.LimitCount) != nil {
			// bigint operands: parameters of unknown type must not make
			// the + ambiguous.
			bigint := func(n *pg_query.Node) *pg_query.Node {
				return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{Arg: n,
					TypeName: &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")}, Typemod: -1}}}}
			}
			sel.LimitCount = &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
				Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: []*pg_query.Node{pg_query.MakeStrNode("+")},
				Lexpr: bigint(sel.LimitCount), Rexpr: bigint(sel.LimitOffset)}}}
		}
		sel.LimitOffset = nil
	}
	return pg_query.Deparse(tree)
}

// Source says where the rows of a query come from, for deciding whether
// running it on each shard and putting the results together repeats rows:
// a row is counted once only if it involves a row of a sharded table
// (each such row lives on one shard). A Source is tied to sharded rows
// when: Table is sharded; any of Any is; every one of Every is. A query
// without tables is a Source with neither (never tied).
type Source struct {
	Table *TableRef
	Any   []Source
	Every []Source
}

// Tied evaluates s with sharded saying which tables are sharded.
func (s Source) Tied(sharded func(TableRef) bool) bool {
	switch {
	case s.Table != nil:
		return sharded(*s.Table)
	case len(s.Every) > 0:
		for _, k := range s.Every {
			if !k.Tied(sharded) {
				return false
			}
		}
		return true
	}
	for _, k := range s.Any {
		if k.Tied(sharded) {
			return true
		}
	}
	return false
}

// Subquery is a nested SELECT (subquery, CTE, derived table, set
// operation branch) whose result over one shard's rows is not its part of
// the result over all rows; Why says what it does.
type Subquery struct {
	Why    string
	Tables []TableRef
	Preds  []Pred
}

// selectSource is where the rows of sel come from.
func selectSource(sel *pg_query.SelectStmt, ctes map[string]*pg_query.SelectStmt, depth int) Source {
	if sel == nil || depth > 32 {
		return Source{}
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE && sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED {
		return Source{Every: []Source{selectSource(sel.Larg, ctes, depth+1), selectSource(sel.Rarg, ctes, depth+1)}}
	}
	if sel.WithClause != nil {
		ctes = withCTEs(ctes, sel.WithClause)
	}
	var s Source
	for _, n := range sel.FromClause {
		s.Any = append(s.Any, fromSource(n, ctes, depth+1))
	}
	return s
}

func withCTEs(ctes map[string]*pg_query.SelectStmt, w *pg_query.WithClause) map[string]*pg_query.SelectStmt {
	out := map[string]*pg_query.SelectStmt{}
	for k, v := range ctes {
		out[k] = v
	}
	for _, c := range w.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			out[cte.Ctename] = cte.Ctequery.GetSelectStmt() // nil for DML CTEs: never tied
		}
	}
	return out
}

func fromSource(n *pg_query.Node, ctes map[string]*pg_query.SelectStmt, depth int) Source {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_RangeVar:
		if sel, ok := ctes[x.RangeVar.Relname]; ok && x.RangeVar.Schemaname == "" {
			return selectSource(sel, ctes, depth+1)
		}
		t := tableRef(x.RangeVar)
		return Source{Table: &t}
	case *pg_query.Node_RangeSubselect:
		return selectSource(x.RangeSubselect.Subquery.GetSelectStmt(), ctes, depth+1)
	case *pg_query.Node_JoinExpr:
		j := x.JoinExpr
		l, r := fromSource(j.Larg, ctes, depth+1), fromSource(j.Rarg, ctes, depth+1)
		switch j.Jointype {
		case pg_query.JoinType_JOIN_LEFT:
			return l
		case pg_query.JoinType_JOIN_RIGHT:
			return r
		case pg_query.JoinType_JOIN_FULL:
			return Source{Every: []Source{l, r}}
		}
		return Source{Any: []Source{l, r}}
	}
	return Source{} // functions, VALUES, table samples...: not tied
}

// subquery describes a nested SELECT that is not local (see Subquery).
func subquery(sel *pg_query.SelectStmt, why string) Subquery {
	sub := &analyzer{top: sel}
	sub.walk(sel.ProtoReflect())
	sub.filterCTETables()
	sub.selectPreds(sel)
	return Subquery{Why: why, Tables: sub.out.Tables, Preds: sub.out.Preds}
}
