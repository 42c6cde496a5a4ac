package routing

import (
	"bytes"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; make fuzz runs every
// target. One by hand:
//
//	go test ./routing -run '^$' -fuzz '^FuzzMerge$' -fuzztime 30s -parallel 2

// fuzzRow is a row of FuzzMerge: an int8, a text and a numeric column, and
// the shard that holds it.
type fuzzRow struct {
	vals  [][]byte // int8, text, numeric; nil for NULL
	shard int
}

// fuzzRows decodes data, 4 bytes a row, into rows spread over n shards.
// Numerics come with scales 0 to 2 and sometimes a trailing zero, so that
// equal values are written differently (1.5, 1.50).
func fuzzRows(data []byte, n int) []fuzzRow {
	var rows []fuzzRow
	for ; len(data) >= 4 && len(rows) < 256; data = data[4:] {
		b0, b1, b2, b3 := data[0], data[1], data[2], data[3]
		r := fuzzRow{vals: make([][]byte, 3), shard: int(b0) % n}
		if b0&0x80 == 0 {
			r.vals[0] = strconv.AppendInt(nil, int64(int16(uint16(b1)<<8|uint16(b2))), 10)
		}
		if b1&0x80 == 0 {
			r.vals[1] = []byte{b2 % 4, b3}
		}
		if b2&0x80 == 0 {
			v := int64(int8(b3))
			scale := int(b0>>4) % 3
			s := new(big.Rat).SetFrac64(v, [...]int64{1, 10, 100}[scale]).FloatString(scale)
			if b0&0x40 != 0 {
				if scale == 0 {
					s += "."
				}
				s += "0"
			}
			r.vals[2] = []byte(s)
		}
		rows = append(rows, r)
	}
	return rows
}

func ratOf(t *testing.T, v []byte) *big.Rat {
	r, ok := new(big.Rat).SetString(string(v))
	if !ok {
		t.Fatalf("numeric %q", v)
	}
	return r
}

// refCompare is PostgreSQL's order of two values of column c, computed
// apart from the code under test: int8 as integers, text byte by byte (the
// C collation), numeric as rationals; NULL sorts as the key says.
func refCompare(t *testing.T, c int, k SortKey, a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		// NullsFirst puts NULLs first in either direction (the parser
		// sets it for DESC unless NULLS LAST says otherwise).
		if k.NullsFirst {
			return -1
		}
		return 1
	case b == nil:
		if k.NullsFirst {
			return 1
		}
		return -1
	}
	var r int
	switch c {
	case 0:
		x, _ := strconv.ParseInt(string(a), 10, 64)
		y, _ := strconv.ParseInt(string(b), 10, 64)
		r = compareInt(x, y)
	case 1:
		r = bytes.Compare(a, b)
	case 2:
		r = ratOf(t, a).Cmp(ratOf(t, b))
	}
	if k.Desc {
		r = -r
	}
	return r
}

// FuzzMerge splits arbitrary rows over 1 to 4 shards and checks the two
// ways pgshard merges the shards' answers against the answer of one
// server, computed independently:
//
//   - ORDER BY ... LIMIT ... OFFSET: each shard's rows come sorted; taking
//     the smallest head by RowOrder.Compare, as the session does, must
//     give the keys of the whole set sorted, after OFFSET, up to LIMIT;
//   - GROUP BY with count, sum and min/max: each shard's partial
//     aggregates folded together by Folder must be the aggregates over the
//     whole set, and GroupKey must put numerics in one group exactly when
//     they are equal.
func FuzzMerge(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x81\x00\x05\x06\x42\x07\x08\x09\xc3\x0a\x0b\x0c"), uint8(3), uint8(2), uint8(1), uint8(0))
	f.Add([]byte("\x10\x00\x00\x05\x20\x00\x00\x32\x50\x00\x00\x05\x61\x00\x00\x32\x02\xff\xff\x80\x03\x7f\xff\x7f"), uint8(1), uint8(0), uint8(255), uint8(1))
	f.Add(bytes.Repeat([]byte("\x01\x80\x80\x80\x02\x00\x00\x00"), 8), uint8(6), uint8(9), uint8(3), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, cfg, order, limit, offset uint8) {
		n := 1 + int(cfg%4)
		rows := fuzzRows(data, n)
		cols := []Column{{Type: oidInt8}, {Type: oidText}, {Type: oidNumeric}}

		// The sort keys: a permutation of the columns, each ascending or
		// descending, NULLS FIRST or LAST.
		perm := [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2}, {1}, {0}}[int(order)%6]
		var keys []SortKey
		for i, c := range perm {
			keys = append(keys, SortKey{Column: c, Desc: cfg>>(2+i)&1 == 1, NullsFirst: order>>(3+i)&1 == 1})
		}
		o, err := NewRowOrder(cols, keys)
		if err != nil {
			t.Fatal(err)
		}
		ref := func(a, b [][]byte) int {
			for _, k := range keys {
				if c := refCompare(t, k.Column, k, a[k.Column], b[k.Column]); c != 0 {
					return c
				}
			}
			return 0
		}
		shards := make([][][][]byte, n)
		var all [][][]byte
		for _, r := range rows {
			shards[r.shard] = append(shards[r.shard], r.vals)
			all = append(all, r.vals)
		}
		lim, off := int(limit%8), int(offset%4)
		unlimited := limit >= 128
		for i := range shards {
			slices.SortStableFunc(shards[i], ref)
			// Each shard runs the statement with LIMIT limit+offset and no
			// OFFSET.
			if !unlimited && len(shards[i]) > lim+off {
				shards[i] = shards[i][:lim+off]
			}
		}
		slices.SortStableFunc(all, ref)
		heads := make([]int, n)
		var merged [][][]byte
		for skip := off; unlimited || len(merged) < lim; {
			min := -1
			for i := range shards {
				if heads[i] < len(shards[i]) && (min < 0 || o.Compare(shards[i][heads[i]], shards[min][heads[min]]) < 0) {
					min = i
				}
			}
			if min < 0 {
				break
			}
			if skip > 0 {
				skip--
			} else {
				merged = append(merged, shards[min][heads[min]])
			}
			heads[min]++
		}
		want := all[min(off, len(all)):]
		if !unlimited && len(want) > lim {
			want = want[:lim]
		}
		if len(merged) != len(want) {
			t.Fatalf("merged %d rows, want %d", len(merged), len(want))
		}
		for i := range merged {
			if ref(merged[i], want[i]) != 0 {
				t.Fatalf("row %d of the merge: %q, want %q (keys %+v)", i, merged[i], want[i], keys)
			}
		}
		// Compare agrees with the reference on any two rows.
		for i := 0; i+1 < len(rows) && i < 32; i++ {
			a, b := rows[i].vals, rows[i+1].vals
			if got, want := o.Compare(a, b), ref(a, b); (got < 0) != (want < 0) || (got == 0) != (want == 0) {
				t.Fatalf("Compare(%q, %q) = %d, want the sign of %d (keys %+v)", a, b, got, want, keys)
			}
		}

		checkGroups(t, rows, n)
	})
}

// checkGroups runs SELECT int8col, count(*), count(num), sum(num),
// min(num), max(num) GROUP BY int8col on each shard (in the reference
// way), folds the shards' rows as the grouped merge does, and compares
// with the same statement over all rows.
func checkGroups(t *testing.T, rows []fuzzRow, n int) {
	type agg struct {
		count, nonNull int64
		sum            *big.Rat
		scale          int
		min, max       []byte
	}
	add := func(g *agg, v []byte) {
		g.count++
		if v == nil {
			return
		}
		g.nonNull++
		r := ratOf(t, v)
		_, frac, _ := strings.Cut(string(v), ".")
		g.scale = max(g.scale, len(frac))
		if g.sum == nil {
			g.sum, g.min, g.max = new(big.Rat), v, v
		}
		g.sum.Add(g.sum, r)
		if r.Cmp(ratOf(t, g.min)) < 0 {
			g.min = v
		}
		if r.Cmp(ratOf(t, g.max)) > 0 {
			g.max = v
		}
	}
	// One row a group, as a server sends it: key, count(*), count(num),
	// sum(num), min(num), max(num).
	result := func(g *agg) [][]byte {
		row := [][]byte{nil, strconv.AppendInt(nil, g.count, 10), strconv.AppendInt(nil, g.nonNull, 10), nil, g.min, g.max}
		if g.sum != nil {
			row[3] = []byte(g.sum.FloatString(g.scale))
		}
		return row
	}
	keyOf := func(v []byte) string {
		if v == nil {
			return "N"
		}
		return "V" + string(v)
	}
	whole := map[string]*agg{}
	parts := make([]map[string]*agg, n)
	for i := range parts {
		parts[i] = map[string]*agg{}
	}
	for _, r := range rows {
		k := keyOf(r.vals[0])
		for _, m := range []map[string]*agg{whole, parts[r.shard]} {
			if m[k] == nil {
				m[k] = &agg{}
			}
			add(m[k], r.vals[2])
		}
	}
	aggs := []Agg{AggKey, AggCount, AggCount, AggSum, AggMin, AggMax}
	types := []uint32{oidInt8, oidInt8, oidInt8, oidNumeric, oidNumeric, oidNumeric}
	folds := make([]Fold, len(aggs))
	for i := range aggs {
		if folds[i] = Folder(aggs[i], types[i]); folds[i] == nil {
			t.Fatalf("no fold for %d of type %d", aggs[i], types[i])
		}
	}
	merged := map[string][][]byte{}
	for _, part := range parts {
		for k, g := range part {
			row := result(g)
			if m, ok := merged[k]; ok {
				for i, fold := range folds {
					v, err := fold(m[i], row[i])
					if err != nil {
						t.Fatalf("fold of column %d: %v", i, err)
					}
					m[i] = v
				}
				continue
			}
			merged[k] = row
		}
	}
	if len(merged) != len(whole) {
		t.Fatalf("%d groups merged, want %d", len(merged), len(whole))
	}
	for k, g := range whole {
		want, got := result(g), merged[k]
		for i := 1; i < 4; i++ {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("group %q column %d: %q, want %q", k, i, got[i], want[i])
			}
		}
		for i := 4; i < 6; i++ {
			if (got[i] == nil) != (want[i] == nil) || got[i] != nil && ratOf(t, got[i]).Cmp(ratOf(t, want[i])) != 0 {
				t.Fatalf("group %q column %d: %q, want %q", k, i, got[i], want[i])
			}
		}
	}
	// GroupKey: one group for equal numerics, whatever their scale.
	for i := 0; i+1 < len(rows) && i < 32; i++ {
		a, b := rows[i].vals[2], rows[i+1].vals[2]
		if a == nil || b == nil {
			continue
		}
		if eq := ratOf(t, a).Cmp(ratOf(t, b)) == 0; eq != (GroupKey(oidNumeric, a) == GroupKey(oidNumeric, b)) {
			t.Fatalf("GroupKey(%q) = %q, GroupKey(%q) = %q; equal values: %v", a, GroupKey(oidNumeric, a), b, GroupKey(oidNumeric, b), eq)
		}
	}
}
