package parser

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recordSink records what a splitter passes on, as strings.
type recordSink struct {
	events []string
	all    bytes.Buffer // every byte passed on, in order
}

func (r *recordSink) CopyRow(row, key []byte, keyNull bool) error {
	k := fmt.Sprintf("%q", key)
	if keyNull {
		k = "NULL"
	}
	r.events = append(r.events, fmt.Sprintf("row %q key %s", row, k))
	r.all.Write(row)
	return nil
}

func (r *recordSink) CopyAll(data []byte) error {
	r.events = append(r.events, fmt.Sprintf("all %q", data))
	r.all.Write(data)
	return nil
}

func row(raw, key string) string { return fmt.Sprintf("row %q key %q", raw, key) }
func nullRow(raw string) string  { return fmt.Sprintf("row %q key NULL", raw) }
func all(raw string) string      { return fmt.Sprintf("all %q", raw) }

var binHeader = "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// copySplitCases are COPY statements, their data and what the splitter
// should make of it: the rows with their keys, and an error (with its
// SQLSTATE) when PostgreSQL would reject the data.
var copySplitCases = []struct {
	name string
	sql  string
	key  int
	data string
	want []string
	err  string // substring of the error; "" for none
	code string
}{
	{name: "text", sql: "copy t from stdin", key: 0, data: "1\ta\n2\tb\n",
		want: []string{row("1\ta\n", "1"), row("2\tb\n", "2")}},
	{name: "text second key", sql: "copy t from stdin", key: 1, data: "1\ta\n2\tb\n",
		want: []string{row("1\ta\n", "a"), row("2\tb\n", "b")}},
	{name: "text null", sql: "copy t from stdin", key: 1, data: "1\t\\N\n2\t\n",
		want: []string{nullRow("1\t\\N\n"), row("2\t\n", "")}},
	{name: "text null string", sql: "copy t from stdin with (null 'x')", key: 0, data: "x\t1\n\\N\t2\n",
		want: []string{nullRow("x\t1\n"), row("\\N\t2\n", "N")}},
	{name: "text empty null", sql: "copy t from stdin with (null '')", key: 0, data: "\t1\n",
		want: []string{nullRow("\t1\n")}},
	{name: "text escapes", sql: "copy t from stdin", key: 0,
		data: "a\\tb\\nc\\\\d\\101\\x41\\x4g\\xg\\b\\f\\r\\v\\q\\\t9\n",
		want: []string{row("a\\tb\\nc\\\\d\\101\\x41\\x4g\\xg\\b\\f\\r\\v\\q\\\t9\n", "a\tb\nc\\dAA\x04gxg\b\f\r\vq\t9")}},
	{name: "text octal", sql: "copy t from stdin", key: 0, data: "\\0\\7\\777\\1234\n",
		want: []string{row("\\0\\7\\777\\1234\n", "\x00\x07\xffS4")}},
	{name: "text escaped delimiter and newline", sql: "copy t from stdin", key: 0, data: "a\\\tb\\\nc\td\n",
		want: []string{row("a\\\tb\\\nc\td\n", "a\tb\nc")}},
	{name: "text delimiter", sql: "copy t from stdin with (delimiter '|')", key: 1, data: "1|x\ty|z\n",
		want: []string{row("1|x\ty|z\n", "x\ty")}},
	{name: "text crlf", sql: "copy t from stdin", key: 0, data: "1\ta\r\n2\tb\r\n",
		want: []string{row("1\ta\r\n", "1"), row("2\tb\r\n", "2")}},
	{name: "text cr", sql: "copy t from stdin", key: 0, data: "1\ta\r2\tb\r",
		want: []string{row("1\ta\r", "1"), row("2\tb\r", "2")}},
	{name: "text mixed crlf then lf", sql: "copy t from stdin", key: 0, data: "1\r\n2\n",
		want: []string{row("1\r\n", "1")}, err: "literal newline found in data", code: "22P04"},
	{name: "text mixed lf then cr", sql: "copy t from stdin", key: 0, data: "1\n2\r3\n",
		want: []string{row("1\n", "1")}, err: "literal carriage return found in data", code: "22P04"},
	{name: "text cr then lf", sql: "copy t from stdin", key: 0, data: "1\r2\n",
		want: []string{row("1\r", "1")}, err: "literal newline found in data", code: "22P04"},
	{name: "text last row without newline", sql: "copy t from stdin", key: 0, data: "1\ta\n2\tb",
		want: []string{row("1\ta\n", "1"), row("2\tb", "2")}},
	{name: "text trailing backslash", sql: "copy t from stdin", key: 0, data: "ab\\",
		want: []string{row("ab\\", "ab")}},
	{name: "text empty line", sql: "copy t from stdin", key: 0, data: "\n",
		want: []string{row("\n", "")}},
	{name: "text missing key", sql: "copy t from stdin", key: 2, data: "1\ta\n",
		err: "missing data for shard key field 3", code: "22P04"},
	{name: "text end marker", sql: "copy t from stdin", key: 0, data: "1\n\\.\n2\n",
		want: []string{row("1\n", "1")}},
	{name: "text end marker crlf", sql: "copy t from stdin", key: 0, data: "1\r\n\\.\r\n2\n",
		want: []string{row("1\r\n", "1")}},
	{name: "text end marker cr", sql: "copy t from stdin", key: 0, data: "1\r\\.\r2\n",
		want: []string{row("1\r", "1")}},
	{name: "text end marker first", sql: "copy t from stdin", key: 0, data: "\\.\n1\n",
		want: nil},
	{name: "text end marker after data", sql: "copy t from stdin", key: 0, data: "1\tab\\.\n2\n",
		want: []string{row("1\tab\\.\n", "1")}},
	{name: "text end marker without newline", sql: "copy t from stdin", key: 0, data: "1\n\\.",
		want: []string{row("1\n", "1")}, err: "end-of-copy marker corrupt", code: "22P04"},
	{name: "text end marker corrupt", sql: "copy t from stdin", key: 0, data: "1\n\\.x\n",
		want: []string{row("1\n", "1")}, err: "end-of-copy marker corrupt", code: "22P04"},
	{name: "text end marker newline style", sql: "copy t from stdin", key: 0, data: "1\r\n\\.\n",
		want: []string{row("1\r\n", "1")}, err: "end-of-copy marker does not match previous newline style", code: "22P04"},
	{name: "text escaped backslash dot", sql: "copy t from stdin", key: 0, data: "\\\\.\n",
		want: []string{row("\\\\.\n", "\\.")}},
	{name: "text header", sql: "copy t from stdin with (header)", key: 0, data: "id\tname\n1\ta\n",
		want: []string{all("id\tname\n"), row("1\ta\n", "1")}},
	{name: "text header only", sql: "copy t from stdin with (header match)", key: 0, data: "id",
		want: []string{all("id")}},

	{name: "csv", sql: "copy t from stdin with (format csv)", key: 1, data: "1,a\n2,\"b,c\"\n",
		want: []string{row("1,a\n", "a"), row("2,\"b,c\"\n", "b,c")}},
	{name: "csv null", sql: "copy t from stdin with csv", key: 0, data: ",1\n\"\",2\n",
		want: []string{nullRow(",1\n"), row("\"\",2\n", "")}},
	{name: "csv null string", sql: "copy t from stdin with (format csv, null 'NULL')", key: 0, data: "NULL,1\n\"NULL\",2\n,3\n",
		want: []string{nullRow("NULL,1\n"), row("\"NULL\",2\n", "NULL"), row(",3\n", "")}},
	{name: "csv force not null", sql: "copy t (k) from stdin with (format csv, force_not_null (k))", key: 0, data: ",1\n",
		want: []string{row(",1\n", "")}},
	{name: "csv force null", sql: "copy t (k) from stdin with (format csv, force_null (k))", key: 0, data: "\"\",1\n",
		want: []string{nullRow("\"\",1\n")}},
	{name: "csv quoted newline", sql: "copy t from stdin with csv", key: 0, data: "\"a\nb\r\nc\",1\n2,x\n",
		want: []string{row("\"a\nb\r\nc\",1\n", "a\nb\r\nc"), row("2,x\n", "2")}},
	{name: "csv doubled quote", sql: "copy t from stdin with csv", key: 0, data: "\"a\"\"b\"x\"c\",1\n",
		want: []string{row("\"a\"\"b\"x\"c\",1\n", "a\"bxc")}},
	{name: "csv escape", sql: `copy t from stdin with (format csv, escape '\')`, key: 0, data: "\"a\\\"b\\\\c\\d\",1\n",
		want: []string{row("\"a\\\"b\\\\c\\d\",1\n", "a\"b\\c\\d")}},
	{name: "csv escape is quote outside", sql: `copy t from stdin with (format csv, escape '\')`, key: 0, data: "a\\\"b,c\"\n",
		want: []string{row("a\\\"b,c\"\n", "a\\b,c")}},
	{name: "csv quote char", sql: "copy t from stdin with (format csv, quote '''')", key: 0, data: "'a,b',1\n",
		want: []string{row("'a,b',1\n", "a,b")}},
	{name: "csv header", sql: "copy t from stdin with csv header", key: 0, data: "\"i\nd\",name\n1,a\n",
		want: []string{all("\"i\nd\",name\n"), row("1,a\n", "1")}},
	{name: "csv crlf", sql: "copy t from stdin with csv", key: 0, data: "1,a\r\n\"2\r\n\",b\r\n",
		want: []string{row("1,a\r\n", "1"), row("\"2\r\n\",b\r\n", "2\r\n")}},
	{name: "csv unquoted cr", sql: "copy t from stdin with csv", key: 0, data: "1\r\n2\r3\r\n",
		want: []string{row("1\r\n", "1")}, err: "unquoted carriage return found in data", code: "22P04"},
	{name: "csv unterminated quote", sql: "copy t from stdin with csv", key: 0, data: "1\n\"2,3\n",
		want: []string{row("1\n", "1")}, err: "unterminated CSV quoted field", code: "22P04"},
	{name: "csv end marker", sql: "copy t from stdin with csv", key: 0, data: "1\n\\.\n2\n",
		want: []string{row("1\n", "1")}},
	{name: "csv backslash dot data", sql: "copy t from stdin with csv", key: 0, data: "\\.x,1\na\\.\n\\.",
		want: []string{row("\\.x,1\n", "\\.x"), row("a\\.\n", "a\\."), row("\\.", "\\.")}},
	{name: "csv backslash dot crlf", sql: "copy t from stdin with csv", key: 0, data: "1\r\n\\.\r\n2\r\n",
		want: []string{row("1\r\n", "1")}},
	{name: "csv backslash dot lf in crlf", sql: "copy t from stdin with csv", key: 0, data: "1\r\n\\.\n",
		want: []string{row("1\r\n", "1")}, err: "unquoted newline found in data", code: "22P04"},
	{name: "csv missing key", sql: "copy t from stdin with csv", key: 1, data: "1\n",
		err: "missing data", code: "22P04"},
	{name: "csv default marker", sql: "copy t from stdin with (format csv, default 'D')", key: 0, data: "D,1\n",
		err: "DEFAULT marker", code: "0A000"},

	{name: "binary", sql: "copy t from stdin binary", key: 1,
		data: binHeader + "\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x02bc" + "\x00\x02\x00\x00\x00\x00\xff\xff\xff\xff" + "\xff\xff",
		want: []string{all(binHeader), row("\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x02bc", "bc"),
			nullRow("\x00\x02\x00\x00\x00\x00\xff\xff\xff\xff"), all("\xff\xff")}},
	{name: "binary header extension", sql: "copy t from stdin binary", key: 0,
		data: "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x03xyz" + "\x00\x01\x00\x00\x00\x00",
		want: []string{all("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x03xyz"), row("\x00\x01\x00\x00\x00\x00", "")}},
	{name: "binary data after trailer", sql: "copy t from stdin binary", key: 0, data: binHeader + "\xff\xffx",
		want: []string{all(binHeader), all("\xff\xff")}, err: "received copy data after EOF marker", code: "22P04"},
	{name: "binary cut tuple", sql: "copy t from stdin binary", key: 0, data: binHeader + "\x00\x01\x00\x00\x00\x05abc",
		want: []string{all(binHeader)}, err: "unexpected EOF in COPY data", code: "22P04"},
	{name: "binary bad signature", sql: "copy t from stdin binary", key: 0, data: "PGCOPX",
		err: "COPY file signature not recognized", code: "22P04"},
	{name: "binary short", sql: "copy t from stdin binary", key: 0, data: "PGC",
		err: "COPY file signature not recognized", code: "22P04"},
	{name: "binary oids", sql: "copy t from stdin binary", key: 0, data: "PGCOPY\n\xff\r\n\x00\x00\x01\x00\x00\x00\x00\x00\x00",
		err: "WITH OIDS", code: "22P04"},
	{name: "binary bad field size", sql: "copy t from stdin binary", key: 0, data: binHeader + "\x00\x01\xff\xff\xff\xfe",
		want: []string{all(binHeader)}, err: "invalid field size", code: "22P04"},
	{name: "binary too few fields", sql: "copy t from stdin binary", key: 2, data: binHeader + "\x00\x01\x00\x00\x00\x00",
		want: []string{all(binHeader)}, err: "row field count is 1", code: "22P04"},
	{name: "binary empty", sql: "copy t from stdin binary", key: 0, data: "",
		err: "COPY file signature not recognized", code: "22P04"},
}

// splitCopy feeds data to a new splitter in chunks of at most chunk bytes
// (all at once when chunk is 0).
func splitCopy(t testing.TB, sql string, key, maxRow int, data string, chunk int) (*recordSink, error) {
	t.Helper()
	stmt, err := ParseCopy(sql)
	if err != nil {
		t.Fatal(err)
	}
	var sink recordSink
	keyName := ""
	if len(stmt.Columns) > key {
		keyName = stmt.Columns[key]
	}
	s, err := NewCopySplitter(CopySplitterConfig{Options: stmt.Options, KeyColumn: key, KeyName: keyName, MaxRowLen: maxRow}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(data)
	for len(b) > 0 {
		n := len(b)
		if chunk > 0 && chunk < n {
			n = chunk
		}
		// A fresh slice each time, overwritten after the call, catches a
		// splitter that keeps the caller's buffer.
		msg := append([]byte(nil), b[:n]...)
		err := s.Write(msg)
		for i := range msg {
			msg[i] = '#'
		}
		if err != nil {
			return &sink, err
		}
		b = b[n:]
	}
	return &sink, s.Close()
}

func TestCopySplitter(t *testing.T) {
	for _, tc := range copySplitCases {
		for _, chunk := range []int{0, 1, 2, 3, 7} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				sink, err := splitCopy(t, tc.sql, tc.key, 1<<20, tc.data, chunk)
				if strings.Join(sink.events, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(sink.events, "\n\t"), strings.Join(tc.want, "\n\t"))
				}
				if tc.err == "" {
					if err != nil {
						t.Fatalf("error %v", err)
					}
					return
				}
				var ce *CopyError
				if !errors.As(err, &ce) {
					t.Fatalf("error %v, want a CopyError %q", err, tc.err)
				}
				if !strings.Contains(ce.Message, tc.err) || ce.SQLState() != tc.code {
					t.Errorf("error %s %v, want %s %q", ce.SQLState(), err, tc.code, tc.err)
				}
			})
		}
	}
}

func TestCopySplitterRowLimit(t *testing.T) {
	for _, chunk := range []int{0, 1, 4} {
		sink, err := splitCopy(t, "copy t from stdin", 0, 8, "1234567\n12345678\n", chunk)
		var ce *CopyError
		if !errors.As(err, &ce) || ce.Code != CodeProgramLimitExceeded || ce.Line != 2 {
			t.Errorf("chunk %d: error %v, want 54000 at line 2", chunk, err)
		}
		if len(sink.events) != 1 {
			t.Errorf("chunk %d: events %q", chunk, sink.events)
		}
		_, err = splitCopy(t, "copy t from stdin binary", 0, 32, binHeader+"\x00\x01\x00\x00\x10\x00", chunk)
		if !errors.As(err, &ce) || ce.Code != CodeProgramLimitExceeded {
			t.Errorf("chunk %d: binary error %v, want 54000", chunk, err)
		}
	}
}

func TestCopySplitterEncoding(t *testing.T) {
	_, err := NewCopySplitter(CopySplitterConfig{Options: CopyOptions{Encoding: "sjis"}, MaxRowLen: 10}, &recordSink{})
	var ce *CopyError
	if !errors.As(err, &ce) || ce.Code != CodeFeatureNotSupported {
		t.Errorf("SJIS: %v", err)
	}
	if !CopyEncodingSplittable("UTF8") || CopyEncodingSplittable("Shift_JIS_2004") {
		t.Error("CopyEncodingSplittable")
	}
}

type discardSink struct{}

func (discardSink) CopyRow(row, key []byte, keyNull bool) error { return nil }
func (discardSink) CopyAll(data []byte) error                   { return nil }

func BenchmarkCopySplitter(b *testing.B) {
	for _, bc := range []struct{ name, sql, line string }{
		{"text", "copy t from stdin", "12345\tsome text value\t2024-01-01\t3.14159\n"},
		{"text escaped key", "copy t from stdin", "12\\t345\tsome text value\t2024-01-01\t3.14159\n"},
		{"csv", "copy t from stdin with csv", "12345,\"some, quoted\",2024-01-01,3.14159\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stmt, _ := ParseCopy(bc.sql)
			msg := []byte(strings.Repeat(bc.line, 8192/len(bc.line)))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			s, _ := NewCopySplitter(CopySplitterConfig{Options: stmt.Options, MaxRowLen: 1 << 20}, discardSink{})
			for b.Loop() {
				if err := s.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fuzzCopyModes are the statements FuzzCopySplitter splits data by.
var fuzzCopyModes = []string{
	"copy t from stdin",
	"copy t from stdin with (format csv)",
	`copy t from stdin with (format csv, escape '\', header)`,
	"copy t from stdin with (format binary)",
	"copy t from stdin with (header, null '', delimiter ',')",
}

// FuzzCopySplitter checks that the splitter does not panic, that what it
// passes on is, byte for byte, the start of its input (all of it when the
// data is accepted and has no end marker), that how the data is cut into
// messages changes nothing, and that it never buffers more than its limit.
// Seed corpus: testdata/fuzz/FuzzCopySplitter.
func FuzzCopySplitter(f *testing.F) {
	for _, tc := range copySplitCases {
		for m, sql := range fuzzCopyModes {
			if sql == tc.sql || m == 0 {
				f.Add([]byte(tc.data), uint8(m), uint8(tc.key), uint8(3))
			}
		}
	}
	const maxRow = 64
	f.Fuzz(func(t *testing.T, data []byte, mode, key, chunk uint8) {
		sql := fuzzCopyModes[int(mode)%len(fuzzCopyModes)]
		stmt, err := ParseCopy(sql)
		if err != nil {
			t.Fatal(err)
		}
		run := func(chunk int) (*recordSink, error, bool) {
			var sink recordSink
			s, err := NewCopySplitter(CopySplitterConfig{Options: stmt.Options, KeyColumn: int(key % 4), MaxRowLen: maxRow}, &sink)
			if err != nil {
				t.Fatal(err)
			}
			b := data
			for len(b) > 0 {
				n := min(len(b), chunk)
				if chunk == 0 {
					n = len(b)
				}
				err := s.Write(b[:n])
				if cap(s.carry) > 2*maxRow+16 {
					t.Fatalf("buffer grew to %d bytes, limit %d", cap(s.carry), maxRow)
				}
				if err != nil {
					return &sink, err, s.Ended()
				}
				b = b[n:]
			}
			return &sink, s.Close(), s.Ended()
		}
		whole, errWhole, ended := run(0)
		got := whole.all.Bytes()
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("passed on %q, not a prefix of the input %q", got, data)
		}
		if errWhole == nil && !ended && !bytes.Equal(got, data) {
			t.Fatalf("passed on %q, input %q", got, data)
		}
		if errWhole != nil {
			var ce *CopyError
			if !errors.As(errWhole, &ce) {
				t.Fatalf("error %v is not a CopyError", errWhole)
			}
		}
		cut, errCut, _ := run(int(chunk%16) + 1)
		if strings.Join(cut.events, "\n") != strings.Join(whole.events, "\n") || (errCut == nil) != (errWhole == nil) {
			t.Fatalf("in pieces of %d: %q, %v\nwhole: %q, %v", chunk%16+1, cut.events, errCut, whole.events, errWhole)
		}
	})
}
