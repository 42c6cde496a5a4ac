package parser

import (
	"reflect"
	"testing"
)

var parseCopyCases = []struct {
	sql  string
	want CopyStmt
	err  bool
}{
	{sql: "copy users from stdin", want: CopyStmt{Table: tb("users"),
		Options: CopyOptions{Delimiter: '\t', Null: `\N`}}},
	{sql: `copy app.users (id, "Name") from stdin with (format csv, header match, delimiter ';', null 'x', quote '''', escape '\', force_not_null (id), force_null *, freeze, encoding 'UTF8')`,
		want: CopyStmt{Table: tbs("app", "users"), Columns: []string{"id", "Name"},
			Options: CopyOptions{Format: CopyCSV, Header: CopyHeaderMatch, Delimiter: ';', Null: "x", Quote: '\'', Escape: '\\',
				ForceNotNull: []string{"id"}, ForceNullAll: true, Freeze: true, Encoding: "UTF8"}}},
	{sql: `copy t from stdin with csv header delimiter ',' quote '"' force not null a, b null 'z'`,
		want: CopyStmt{Table: tb("t"), Options: CopyOptions{Format: CopyCSV, Header: CopyHeaderSkip, Delimiter: ',', Null: "z",
			Quote: '"', Escape: '"', ForceNotNull: []string{"a", "b"}}}},
	{sql: "copy t from stdin binary", want: CopyStmt{Table: tb("t"), Options: CopyOptions{Format: CopyBinary, Delimiter: '\t', Null: `\N`}}},
	{sql: "copy t from stdin with (header false, freeze 0, format text)", want: CopyStmt{Table: tb("t"), Options: CopyOptions{Delimiter: '\t', Null: `\N`}}},
	{sql: "copy t from stdin with (header on)", want: CopyStmt{Table: tb("t"), Options: CopyOptions{Delimiter: '\t', Null: `\N`, Header: CopyHeaderSkip}}},
	{sql: "copy (select 1) to stdout", want: CopyStmt{Direction: CopyToStdout, Query: true, Options: CopyOptions{Delimiter: '\t', Null: `\N`}}},
	{sql: "copy t from '/x' where a > 1", want: CopyStmt{Direction: CopyFromServer, Table: tb("t"), Where: true, Options: CopyOptions{Delimiter: '\t', Null: `\N`}}},
	{sql: "copy t to program 'cat'", want: CopyStmt{Direction: CopyToServer, Table: tb("t"), Options: CopyOptions{Delimiter: '\t', Null: `\N`}}},
	{sql: "copy t from stdin with (format xml)", err: true},
	{sql: "copy t from stdin with (delimiter ';;')", err: true},
	{sql: "copy t from stdin with (quote '\"')", err: true},
	{sql: "copy t from stdin with (format csv, delimiter '\"')", err: true},
	{sql: "copy t from stdin with (format binary, header)", err: true},
	{sql: "copy t from stdin with (format binary, null 'x')", err: true},
	{sql: "copy t from stdin with (delimiter 'a')", err: true},
	{sql: "copy t from stdin with (header maybe)", err: true},
	{sql: "copy t from stdin with (freeze, freeze)", err: true},
	{sql: "copy t from stdin with (frobnicate 1)", err: true},
	{sql: "select 1", err: true},
	{sql: "copy t from stdin; copy t from stdin", err: true},
}

func TestParseCopy(t *testing.T) {
	for _, tc := range parseCopyCases {
		got, err := ParseCopy(tc.sql)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error, want one", tc.sql)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.sql, got, tc.want)
		}
	}
}

func TestAnalyzeCopy(t *testing.T) {
	as, err := Analyze("copy t (a, b) from stdin with (format csv)")
	if err != nil {
		t.Fatal(err)
	}
	c := as[0].Copy
	if c == nil || c.Options.Format != CopyCSV || c.Splittable() != nil {
		t.Fatalf("Copy = %+v", c)
	}
	if i, ok := c.KeyIndex("b", nil); i != 1 || !ok {
		t.Errorf("KeyIndex(b) = %d, %v", i, ok)
	}
	as, err = Analyze("copy t from stdin with (format xml)")
	if err != nil {
		t.Fatal(err)
	}
	if as[0].Copy != nil || as[0].CopyErr == nil {
		t.Errorf("bad options: Copy = %+v, CopyErr = %v", as[0].Copy, as[0].CopyErr)
	}
	if i, ok := (&CopyStmt{}).KeyIndex("b", []string{"a", "b"}); i != 1 || !ok {
		t.Errorf("KeyIndex(b) over table columns = %d, %v", i, ok)
	}
}
