package routing

import (
	"slices"
	"testing"
)

// The routing decisions, row comparisons and aggregate folds a query pays
// for, as cases that are both tested and benchmarked.

var routeBenchCases = []struct {
	name   string
	st     Statement
	kind   PlanKind
	shards []string
}{
	{"point key", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "42")}}, Single, []string{"s0"}},
	{"IN of 3 keys", Statement{Tables: []TableRef{tbl("users")}, Keys: []KeyPred{key("users", "id", "1", "2", "5")}}, Multi, []string{"s0", "s2"}},
	{"key-less", Statement{Tables: []TableRef{tbl("users")}}, All, []string{"s0", "s1", "s2"}},
}

func TestRouteBenchCases(t *testing.T) {
	r := testRouter(t)
	for _, tc := range routeBenchCases {
		p, err := r.Route(tc.st)
		if err != nil || p.Kind != tc.kind || !slices.Equal(p.Shards, tc.shards) {
			t.Errorf("%s: %+v, %v; want %s on %v", tc.name, p, err, tc.kind, tc.shards)
		}
	}
}

func BenchmarkRouterRoute(b *testing.B) {
	r := testRouter(b)
	for _, tc := range routeBenchCases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Route(tc.st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// compareBenchCases are pairs of rows as the sorted merge compares them.
var compareBenchCases = []struct {
	name string
	cols []Column
	keys []SortKey
	a, b [][]byte
	want int
}{
	{"int4 text", []Column{{Type: oidInt4}}, []SortKey{{Column: 0}}, [][]byte{[]byte("12345")}, [][]byte{[]byte("12346")}, -1},
	{"int8 binary", []Column{{Type: oidInt8, Format: 1}}, []SortKey{{Column: 0, Desc: true}},
		[][]byte{{0, 0, 0, 0, 0, 0, 0, 2}}, [][]byte{{0, 0, 0, 0, 0, 0, 0, 1}}, -1},
	{"numeric", []Column{{Type: oidNumeric}}, []SortKey{{Column: 0}}, [][]byte{[]byte("100.25")}, [][]byte{[]byte("100.250")}, 0},
	{"text then int4", []Column{{Type: oidText}, {Type: oidInt4}}, []SortKey{{Column: 0}, {Column: 1}},
		[][]byte{[]byte("alice"), []byte("7")}, [][]byte{[]byte("alice"), []byte("8")}, -1},
}

func TestCompareBenchCases(t *testing.T) {
	for _, tc := range compareBenchCases {
		o, err := NewRowOrder(tc.cols, tc.keys)
		if err != nil {
			t.Fatal(tc.name, err)
		}
		if got := o.Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Compare = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func BenchmarkRowOrderCompare(b *testing.B) {
	for _, tc := range compareBenchCases {
		o, err := NewRowOrder(tc.cols, tc.keys)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				o.Compare(tc.a, tc.b)
			}
		})
	}
}

// foldBenchCases combine one aggregate column of two shards' rows.
var foldBenchCases = []struct {
	name string
	agg  Agg
	typ  uint32
	a, b string
	want string
}{
	{"count", AggCount, oidInt8, "1200", "34", "1234"},
	{"sum int8", AggSum, oidInt8, "-5", "12", "7"},
	{"sum numeric", AggSum, oidNumeric, "10.5", "0.25", "10.75"},
	{"sum float8", AggSum, oidFloat8, "1.5", "2.25", "3.75"},
	{"min int4", AggMin, oidInt4, "7", "-3", "-3"},
	{"max text", AggMax, oidText, "apple", "pear", "pear"},
}

func TestFoldBenchCases(t *testing.T) {
	for _, tc := range foldBenchCases {
		got, err := Folder(tc.agg, tc.typ)([]byte(tc.a), []byte(tc.b))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func BenchmarkFold(b *testing.B) {
	for _, tc := range foldBenchCases {
		f := Folder(tc.agg, tc.typ)
		a, c := []byte(tc.a), []byte(tc.b)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f(a, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dataRowBody is a DataRow body of (12345, NULL, 'alice').
var dataRowBody = []byte{0, 3, 0, 0, 0, 5, '1', '2', '3', '4', '5', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 'a', 'l', 'i', 'c', 'e'}

// TestSplitDataRowAllocs: the sorted merge splits every row it compares;
// with dst reused that costs nothing.
func TestSplitDataRowAllocs(t *testing.T) {
	row, err := SplitDataRow(dataRowBody, nil)
	if err != nil || len(row) != 3 || string(row[0]) != "12345" || row[1] != nil || string(row[2]) != "alice" {
		t.Fatalf("SplitDataRow = %q, %v", row, err)
	}
	if n := testing.AllocsPerRun(100, func() { row, _ = SplitDataRow(dataRowBody, row) }); n != 0 {
		t.Errorf("SplitDataRow allocates %v times", n)
	}
	if _, err := SplitDataRow(dataRowBody[:8], row); err == nil {
		t.Error("a truncated row split without error")
	}
}

func BenchmarkSplitDataRow(b *testing.B) {
	var row [][]byte
	b.ReportAllocs()
	for b.Loop() {
		row, _ = SplitDataRow(dataRowBody, row)
	}
}
