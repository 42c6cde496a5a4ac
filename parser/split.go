package parser

import (
	"errors"
	"fmt"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SplitInsert rewrites sql, a single INSERT ... VALUES statement, so that
// it inserts only the rows (0-based, in VALUES order) for which keep is
// true. The result is deparsed SQL: equivalent, but comments and layout are
// not kept.
//
// Parameters the kept statement still refers to are renumbered from $1 up
// in their original order; params lists, for each new number, the original
// one (params[0] is what $1 was), so that a Bind can be cut to match.
func SplitInsert(sql string, keep func(row int) bool) (stmt string, params []int, err error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return "", nil, fmt.Errorf("parse: %w", err)
	}
	if len(tree.Stmts) != 1 {
		return "", nil, errors.New("split insert: expected one statement")
	}
	ins := tree.Stmts[0].GetStmt().GetInsertStmt()
	sel := ins.GetSelectStmt().GetSelectStmt()
	if sel == nil || len(sel.ValuesLists) == 0 {
		return "", nil, errors.New("split insert: not an INSERT ... VALUES")
	}
	kept := sel.ValuesLists[:0]
	for i, row := range sel.ValuesLists {
		if keep(i) {
			kept = append(kept, row)
		}
	}
	if len(kept) == 0 {
		return "", nil, errors.New("split insert: no rows kept")
	}
	sel.ValuesLists = kept

	var refs []*pg_query.ParamRef
	visitParams(tree.ProtoReflect(), func(p *pg_query.ParamRef) { refs = append(refs, p) })
	for _, p := range refs {
		params = append(params, int(p.Number))
	}
	slices.Sort(params)
	params = slices.Compact(params)
	for _, p := range refs {
		n, _ := slices.BinarySearch(params, int(p.Number))
		p.Number = int32(n + 1)
	}
	stmt, err = pg_query.Deparse(tree)
	return stmt, params, err
}

// visitParams calls fn for each parameter reference ($n) in the tree.
func visitParams(m protoreflect.Message, fn func(*pg_query.ParamRef)) {
	if p, ok := m.Interface().(*pg_query.ParamRef); ok {
		fn(p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitParams(l.Get(i).Message(), fn)
			}
		case fd.Message() != nil && !fd.IsMap():
			visitParams(v.Message(), fn)
		}
		return true
	})
}
