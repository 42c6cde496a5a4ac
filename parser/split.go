package parser

import (
	"errors"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// SplitInsert rewrites sql, a single INSERT ... VALUES statement, so that
// it inserts only the rows (0-based, in VALUES order) for which keep is
// true. The result is deparsed SQL: equivalent, but comments and layout are
// not kept.
func SplitInsert(sql string, keep func(row int) bool) (string, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return "", fmt.Errorf("parse: %w", err)
	}
	if len(tree.Stmts) != 1 {
		return "", errors.New("split insert: expected one statement")
	}
	ins := tree.Stmts[0].GetStmt().GetInsertStmt()
	sel := ins.GetSelectStmt().GetSelectStmt()
	if sel == nil || len(sel.ValuesLists) == 0 {
		return "", errors.New("split insert: not an INSERT ... VALUES")
	}
	kept := sel.ValuesLists[:0]
	for i, row := range sel.ValuesLists {
		if keep(i) {
			kept = append(kept, row)
		}
	}
	if len(kept) == 0 {
		return "", errors.New("split insert: no rows kept")
	}
	sel.ValuesLists = kept
	return pg_query.Deparse(tree)
}
