package parser

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; make fuzz runs every
// target. One by hand:
//
//	go test ./parser -run '^$' -fuzz '^FuzzNormalize$' -fuzztime 30s -parallel 2

// FuzzNormalize checks the literal normalizer on arbitrary text:
//
//   - it keeps what dst and lits held, and reports false with nothing
//     added, or true with at least one literal;
//   - its output is bounded: no longer than the text plus the digits of
//     the parameters that replaced literals, and every literal is a piece
//     of the text (a number as written, a string with its quotes doubled);
//   - the parse cache's answer for a simple Query (AnalyzeQuery, which
//     normalizes) is the analysis of the text itself whenever the text
//     parses, with each parameter read as its literal. The normalized text
//     may fail to parse where the text does (a literal where the grammar
//     wants a constant, as in varchar(20)): the cache then analyses the
//     text as it is, which is what is checked.
func FuzzNormalize(f *testing.F) {
	for _, sql := range normalizeCorpus {
		f.Add(sql)
	}
	for _, tc := range analyzeCases {
		f.Add(tc.sql)
	}
	f.Add("SELECT /* $1 */ 5 WHERE a = 'x''y' AND b = 1e5 AND c = .5 AND d = 1.2.3")
	f.Add("SELECT 'a''")
	f.Add("SELECT $x$ 1 $y$ 2 $x$, 3 ORDER BY (1), 2 LIMIT 4")
	f.Fuzz(func(t *testing.T, sql string) {
		key, lits, ok := Normalize([]byte("dst:"), []string{"lit"}, sql)
		if string(key[:4]) != "dst:" || lits[0] != "lit" {
			t.Fatalf("Normalize overwrote what dst and lits held: %q %q", key, lits)
		}
		key, lits = key[4:], lits[1:]
		if !ok {
			if len(key) != 0 || len(lits) != 0 {
				t.Fatalf("Normalize(%q) reported false but added %q %q", sql, key, lits)
			}
		} else if len(lits) == 0 {
			t.Fatalf("Normalize(%q) = %q, true, with no literal", sql, key)
		}
		grow := 0
		for i, l := range lits {
			grow += len("$" + strconv.Itoa(i+1))
			// A string's closing quote may be missing: the text does not
			// parse then, and the server says so.
			if !strings.Contains(sql, l) && !strings.Contains(sql, "'"+strings.ReplaceAll(l, "'", "''")) {
				t.Fatalf("Normalize(%q): literal %q is not in the text", sql, l)
			}
		}
		if len(key) > len(sql)+grow {
			t.Fatalf("Normalize(%q) = %q: longer than the text and its parameters", sql, key)
		}

		want, werr := Analyze(sql)
		c := NewCache(1 << 20)
		var sc Scratch
		got, glits, gerr := c.AnalyzeQuery(sql, &sc)
		if werr != nil {
			// The server reports the text's own error. The normalized text
			// may parse (an unterminated string whose end the normalizer
			// took as a literal); nothing more is promised then.
			return
		}
		if gerr != nil {
			t.Fatalf("%q parses, but the cache's analysis of it fails: %v", sql, gerr)
		}
		if ok && glits != nil && len(glits) != len(lits) {
			t.Fatalf("%q: AnalyzeQuery returned %d literals, Normalize %d", sql, len(glits), len(lits))
		}
		same := func(got []Analysis, lits []string) bool {
			if canonical(got, lits) == canonical(want, nil) {
				return true
			}
			zl := slices.Clone(lits)
			for i := range zl {
				zl[i] = noLeadingZeros(zl[i])
			}
			return canonical(constKeys(got), zl) == canonical(constKeys(want), nil)
		}
		if !same(got, glits) {
			g, w := canonical(got, glits), canonical(want, nil)
			t.Fatalf("%q\nnormalized %q changes the analysis:\n got  %s\n want %s", sql, key, g, w)
		}
		// The second time the answer comes from the cache, the same.
		again, alits, aerr := c.AnalyzeQuery(sql, &sc)
		if aerr != nil || !same(again, alits) {
			t.Fatalf("%q: the cached answer differs from the first: %v", sql, aerr)
		}
	})
}

// noLeadingZeros drops the leading zeros of a number. The analyser reads
// 007 as the integer 7; normalized, the parameter's value is the number as
// written, which a key column parses to the same value.
func noLeadingZeros(s string) string {
	if len(s) < 2 || s[0] != '0' || strings.Trim(s, "0123456789") != "" {
		return s
	}
	if s = strings.TrimLeft(s, "0"); s == "" {
		return "0"
	}
	return s
}

// constKeys returns as with every output column a grouped merge computes
// itself (AggExpr) counted as a GROUP BY key, and numbers without leading
// zeros (noLeadingZeros). The analyser takes a constant
// output column for a key when it equals a positional GROUP BY item
// (SELECT 2, f(x) ... GROUP BY 2); normalized, the constant is a parameter
// and an expression. A constant is the same in every row, so either way
// merges alike.
func constKeys(as []Analysis) []Analysis {
	out := slices.Clone(as)
	for i := range out {
		if g := out[i].Grouped; g != nil {
			c := *g
			c.Cols = slices.Clone(g.Cols)
			for j, k := range c.Cols {
				if k == AggExpr {
					c.Cols[j] = AggKey
				}
			}
			out[i].Grouped = &c
		}
		zero := func(vs []Value) []Value {
			vs = slices.Clone(vs)
			for j := range vs {
				vs[j].Text = noLeadingZeros(vs[j].Text)
			}
			return vs
		}
		out[i].Preds = slices.Clone(out[i].Preds)
		for j := range out[i].Preds {
			out[i].Preds[j].Values = zero(out[i].Preds[j].Values)
		}
		out[i].Inserts = slices.Clone(out[i].Inserts)
		for j := range out[i].Inserts {
			rows := slices.Clone(out[i].Inserts[j].Rows)
			for k := range rows {
				rows[k] = zero(rows[k])
			}
			out[i].Inserts[j].Rows = rows
		}
	}
	return out
}
