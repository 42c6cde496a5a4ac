package routing

import (
	"slices"
	"testing"
)

func TestCompareNumeric(t *testing.T) {
	// In ascending order, equal neighbours marked.
	order := []string{"-Infinity", "-100", "-99.5", "-1.10", "-1.1", "-0.001", "0", "-0.000", "0.00", "0.5", "1", "1.0", "9.99", "10", "100.000001", "Infinity", "NaN"}
	equal := map[[2]string]bool{{"-1.10", "-1.1"}: true, {"0", "-0.000"}: true, {"-0.000", "0.00"}: true, {"1", "1.0"}: true}
	for i := 0; i+1 < len(order); i++ {
		a, b := order[i], order[i+1]
		want := -1
		if equal[[2]string{a, b}] {
			want = 0
		}
		if got := CompareNumeric(a, b); got != want {
			t.Errorf("CompareNumeric(%s, %s) = %d, want %d", a, b, got, want)
		}
		if got := CompareNumeric(b, a); got != -want {
			t.Errorf("CompareNumeric(%s, %s) = %d, want %d", b, a, got, -want)
		}
	}
}

func TestTimestampOrder(t *testing.T) {
	order := []string{"-infinity", "0044-03-15 BC", "0001-01-01", "1999-12-31 23:59:59.999999", "2000-01-01", "2000-01-01 00:00:00.5",
		"2025-03-01 12:00:00+02", "2025-03-01 11:00:00", "2025-03-01 11:00:00.000001+00", "10000-01-01", "infinity"}
	for i := 0; i+1 < len(order); i++ {
		x, okx := isoMicros(order[i])
		y, oky := isoMicros(order[i+1])
		if !okx || !oky || x >= y {
			t.Errorf("%s (%d %v) should sort before %s (%d %v)", order[i], x, okx, order[i+1], y, oky)
		}
	}
}

func TestRowOrder(t *testing.T) {
	cols := []Column{{Type: oidInt4}, {Type: oidText}, {Type: oidFloat8, Format: 1}}
	o, err := NewRowOrder(cols, []SortKey{{Column: 1, Desc: true, NullsFirst: false}, {Column: 0}})
	if err != nil {
		t.Fatal(err)
	}
	row := func(id, name string) [][]byte {
		r := [][]byte{[]byte(id), []byte(name), {0, 0, 0, 0, 0, 0, 0, 0}}
		if name == "NULL" {
			r[1] = nil
		}
		return r
	}
	rows := [][][]byte{row("10", "a"), row("9", "b"), row("2", "NULL"), row("1", "b"), row("-3", "a")}
	slices.SortStableFunc(rows, o.Compare)
	var got []string
	for _, r := range rows {
		got = append(got, string(r[0]))
	}
	if want := []string{"1", "9", "-3", "10", "2"}; !slices.Equal(got, want) {
		t.Errorf("sorted ids %q, want %q (name DESC NULLS LAST, id)", got, want)
	}
	if _, err := NewRowOrder([]Column{{Type: 1186}}, []SortKey{{Column: 0}}); err == nil {
		t.Error("interval keys accepted")
	}
	if _, err := NewRowOrder([]Column{{Type: oidNumeric, Format: 1}}, []SortKey{{Column: 0}}); err == nil {
		t.Error("binary numeric keys accepted")
	}
}

func TestCombine(t *testing.T) {
	for _, tc := range []struct {
		agg  Agg
		typ  uint32
		a, b string
		want string
	}{
		{AggCount, oidInt8, "3", "4", "7"},
		{AggSum, oidInt8, "-3", "10", "7"},
		{AggSum, oidNumeric, "1.50", "-0.125", "1.375"},
		{AggSum, oidNumeric, "-2.5", "2.50", "0.00"},
		{AggSum, oidNumeric, "NaN", "1", "NaN"},
		{AggSum, oidFloat8, "0.1", "0.2", "0.30000000000000004"},
		{AggSum, oidFloat8, "1e+15", "1", "1.000000000000001e+15"},
		{AggSum, oidFloat8, "99999999999999", "0", "99999999999999"},
		{AggSum, oidFloat4, "500000", "500000", "1e+06"},
		{AggMin, oidNumeric, "10", "9.5", "9.5"},
		{AggMax, oidText, "b", "ab", "b"},
		{AggAnd, oidBool, "t", "f", "f"},
		{AggOr, oidBool, "f", "t", "t"},
		{AggOr, oidBool, "f", "f", "f"},
		{AggAnd, oidBool, "t", "t", "t"},
	} {
		got, err := Folder(tc.agg, tc.typ)([]byte(tc.a), []byte(tc.b))
		if err != nil || string(got) != tc.want {
			t.Errorf("Folder(%d, %d)(%s, %s) = %s, %v; want %s", tc.agg, tc.typ, tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := Folder(AggSum, oidInt8)([]byte("9223372036854775807"), []byte("1")); err != ErrOutOfRange {
		t.Errorf("int8 overflow: %v", err)
	}
	if got, _ := Folder(AggSum, oidInt8)(nil, []byte("5")); string(got) != "5" {
		t.Errorf("NULL + 5 = %s", got)
	}
	if Folder(AggAvg, oidFloat4) != nil || Folder(AggSum, 1186) != nil || Folder(AggMin, 1186) != nil || Folder(AggAnd, oidInt4) != nil {
		t.Error("a fold for a type pgshard cannot combine")
	}
	if GroupKey(oidNumeric, []byte("1.50")) != GroupKey(oidNumeric, []byte("01.5")) || GroupKey(oidFloat8, []byte("-0")) != GroupKey(oidFloat8, []byte("0")) {
		t.Error("equal keys group apart")
	}
}

func TestAvg(t *testing.T) {
	// The results are PostgreSQL 15's for SELECT avg(x) over such rows.
	for _, tc := range []struct {
		typ              uint32
		sum, count, want string
	}{
		{oidNumeric, "3", "2", "1.5000000000000000"},               // avg of 1, 2
		{oidNumeric, "10", "3", "3.3333333333333333"},              // 3, 3, 4
		{oidNumeric, "-7", "3", "-2.3333333333333333"},             // -1, -2, -4
		{oidNumeric, "1000000", "3", "333333.333333333333"},        // 1000000, 0, 0
		{oidNumeric, "0", "4", "0.00000000000000000000"},           // zeros
		{oidNumeric, "1.005", "2", "0.50250000000000000000"},       // 1, 0.005
		{oidNumeric, "123456789012", "1", "123456789012.00000000"}, // one big value
		{oidFloat8, "1", "3", "0.3333333333333333"},
		{oidNumeric, "5", "0", "NULL"},
	} {
		got, err := Avg(tc.typ, []byte(tc.sum), []byte(tc.count))
		s := string(got)
		if got == nil {
			s = "NULL"
		}
		if err != nil || s != tc.want {
			t.Errorf("Avg(%s / %s) = %s, %v; want %s", tc.sum, tc.count, s, err, tc.want)
		}
	}
}
