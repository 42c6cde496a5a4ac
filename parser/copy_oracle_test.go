package parser_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/parser"
	"github.com/pgshard/pgshard/test/pgtest"
)

// groupSink collects rows per key, as the proxy would send them to
// shards, with the bytes for every shard in front of each group.
type groupSink struct {
	head   []byte
	order  []string
	groups map[string]*bytes.Buffer
	keys   []string
}

func (g *groupSink) CopyRow(row, key []byte, keyNull bool) error {
	k := string(key)
	if keyNull {
		k = "<NULL>"
	}
	g.keys = append(g.keys, k)
	b := g.groups[k]
	if b == nil {
		b = bytes.NewBuffer(append([]byte(nil), g.head...))
		g.groups[k] = b
		g.order = append(g.order, k)
	}
	b.Write(row)
	return nil
}

func (g *groupSink) CopyAll(data []byte) error {
	if len(g.groups) == 0 {
		g.head = append(g.head, data...)
	}
	for _, b := range g.groups {
		b.Write(data)
	}
	return nil
}

// oracleCopyCases are COPY data for a table (k text, v text), key k.
var oracleCopyCases = []struct{ opts, data string }{
	{"", "1\ta\n2\tb\n1\tc\n"},
	{"", "\\N\ta\n\\x41\\101\tb\nA\\\tB\tc\\\nd\n"},
	{"", "1\ta\r\n2\tb\r\n"},
	{"", "1\ta\r2\tb\r"},
	{"", "1\ta\n2\tb"},
	{"", "1\ta\n\\.\n3\tc\n"},
	{"", "1\ta\n2\tb\\.\n3\tc\n"},
	{"", "1\ta\r\n\\.\n"},
	{"", "1\ta\n\\.x\n"},
	{"", "1\ta\n2\tb\r\n"},
	{"(header)", "k\tv\n1\ta\n2\tb\n"},
	{"(null 'x')", "x\ta\n\\N\tb\n"},
	{"(format csv)", "1,a\n\"2\n\",\"b\"\"\"\n,c\n\"\",d\n"},
	{"(format csv)", "1,a\r\n\"2\r\n\",b\r\n\\.\r\n3,c\r\n"},
	{"(format csv)", "\\.x,a\n\\.,b\n\\.\n4,d\n"},
	{"(format csv)", "1,a\n\"2,b\n"},
	{"(format csv)", "1,a\r\n\\.\n"},
	{"(format csv, header match)", "k,v\n1,a\n"},
	{"(format csv, header)", "\"k\n\",v\n1,a\n2,b"},
	{"(format csv, escape '\\', null 'N')", "\"1\\\"\",a\nN,b\n\"N\",c\n"},
	{"(format csv, force_null (k), force_not_null (v))", "\"\",\n1,\n"},
	{"(format binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" +
		"\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x01b" + "\x00\x02\xff\xff\xff\xff\x00\x00\x00\x01c" +
		"\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x01d" + "\xff\xff"},
	{"(format binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" + "\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x01b"},
	{"(format binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00" + "\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x05b"},
}

// TestCopySplitterOracle copies each case's data into PostgreSQL whole,
// and again in one COPY per key of the rows the splitter cut out: both
// must be accepted or refused alike and load the same rows, with the keys
// the splitter found.
func TestCopySplitterOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	srv := pgtest.StartT(t, pgtest.Options{Name: "copysplit"})
	conn, err := pgx.Connect(ctx, srv.SuperURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("create table whole (k text, v text); create table parts (k text, v text)")
	dump := func(table string) string {
		var s string
		err := conn.QueryRow(ctx, "select coalesce(string_agg(coalesce(k, '<NULL>') || '|' || coalesce(v, '<NULL>'), ',' order by k, v), '') from "+table).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range oracleCopyCases {
		t.Run(fmt.Sprintf("%s %q", tc.opts, tc.data), func(t *testing.T) {
			exec("truncate whole, parts")
			sql := "copy %s from stdin"
			if tc.opts != "" {
				sql += " with " + tc.opts
			}
			_, pgErr := conn.PgConn().CopyFrom(ctx, strings.NewReader(tc.data), fmt.Sprintf(sql, "whole"))

			stmt, err := parser.ParseCopy(fmt.Sprintf(sql, "whole"))
			if err != nil {
				t.Fatal(err)
			}
			g := &groupSink{groups: map[string]*bytes.Buffer{}}
			s, err := parser.NewCopySplitter(parser.CopySplitterConfig{Options: stmt.Options, KeyName: "k", MaxRowLen: 1 << 16}, g)
			if err != nil {
				t.Fatal(err)
			}
			splitErr := s.Write([]byte(tc.data))
			if splitErr == nil {
				splitErr = s.Close()
			}
			if (pgErr == nil) != (splitErr == nil) {
				t.Fatalf("PostgreSQL: %v; splitter: %v", pgErr, splitErr)
			}
			if pgErr != nil {
				return
			}
			for _, k := range g.order {
				if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(g.groups[k].Bytes()), fmt.Sprintf(sql, "parts")); err != nil {
					t.Fatalf("rows of key %q: %v", k, err)
				}
			}
			if w, p := dump("whole"), dump("parts"); w != p {
				t.Errorf("whole: %s\nparts: %s", w, p)
			}
			var pgKeys []string
			rows, _ := conn.Query(ctx, "select coalesce(k, '<NULL>') from whole order by 1")
			pgKeys, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(pgKeys) != fmt.Sprint(slices.Sorted(slices.Values(g.keys))) {
				t.Errorf("PostgreSQL keys %q, splitter keys %q", pgKeys, g.keys)
			}
		})
	}
}
