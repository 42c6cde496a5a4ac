package routing

import (
	"errors"
	"testing"
)

func col(i int) Expr               { return Expr{Op: ExprCol, Col: i} }
func lit(k LitKind, s string) Expr { return Expr{Op: ExprLit, Lit: Literal{Kind: k, Text: s}} }
func bin(op ExprOp, name string, a, b Expr) Expr {
	return Expr{Op: op, Name: name, Args: []Expr{a, b}}
}

func TestPredicates(t *testing.T) {
	// Columns: count (int8), sum (numeric), name (text), max (float8),
	// born (date), ok (bool), small (int2).
	cols := []Column{{Type: oidInt8}, {Type: oidNumeric}, {Type: oidText}, {Type: oidFloat8}, {Type: oidDate}, {Type: oidBool}, {Type: oidInt2}}
	row := [][]byte{[]byte("3"), []byte("-10.50"), []byte("bob"), []byte("2.5"), []byte("1990-06-01"), []byte("t"), nil}
	for _, tc := range []struct {
		name string
		e    Expr
		want string // "t", "f", "NULL"
	}{
		{"int > int", bin(ExprCmp, ">", col(0), lit(LitInt, "1")), "t"},
		{"int = numeric literal", bin(ExprCmp, "=", col(0), lit(LitNumeric, "3.00")), "t"},
		{"int < numeric literal", bin(ExprCmp, "<", col(0), lit(LitNumeric, "2.5")), "f"},
		{"numeric vs negative int", bin(ExprCmp, "<", col(1), lit(LitInt, "-10")), "t"},
		{"numeric = numeric of another scale", bin(ExprCmp, "=", col(1), lit(LitNumeric, "-10.5")), "t"},
		{"int vs numeric column", bin(ExprCmp, ">", col(0), col(1)), "t"},
		{"float vs int", bin(ExprCmp, ">=", col(3), lit(LitInt, "2")), "t"},
		{"text = string", bin(ExprCmp, "=", col(2), lit(LitString, "bob")), "t"},
		{"text < string", bin(ExprCmp, "<", col(2), lit(LitString, "Bob")), "f"},
		{"string literal read as int", bin(ExprCmp, "=", col(0), lit(LitString, " 3")), "t"},
		{"date > string", bin(ExprCmp, ">", col(4), lit(LitString, "1990-01-01")), "t"},
		{"bool = string", bin(ExprCmp, "=", col(5), lit(LitString, "true")), "t"},
		{"NULL column", bin(ExprCmp, "=", col(6), lit(LitInt, "1")), "NULL"},
		{"NULL literal", bin(ExprCmp, "<>", col(0), lit(LitNull, "")), "NULL"},
		{"IS NULL", Expr{Op: ExprIsNull, Args: []Expr{col(6)}}, "t"},
		{"IS NOT NULL", Expr{Op: ExprIsNotNull, Args: []Expr{col(6)}}, "f"},
		{"AND with NULL and false", Expr{Op: ExprAnd, Args: []Expr{bin(ExprCmp, "=", col(6), lit(LitInt, "1")), bin(ExprCmp, "=", col(0), lit(LitInt, "4"))}}, "f"},
		{"AND with NULL and true", Expr{Op: ExprAnd, Args: []Expr{bin(ExprCmp, "=", col(6), lit(LitInt, "1")), col(5)}}, "NULL"},
		{"OR with NULL and true", Expr{Op: ExprOr, Args: []Expr{bin(ExprCmp, "=", col(6), lit(LitInt, "1")), col(5)}}, "t"},
		{"NOT NULL", Expr{Op: ExprNot, Args: []Expr{bin(ExprCmp, "=", col(6), lit(LitInt, "1"))}}, "NULL"},
		{"NOT", Expr{Op: ExprNot, Args: []Expr{col(5)}}, "f"},
		{"avg", bin(ExprCmp, "=", Expr{Op: ExprAvg, Args: []Expr{col(1), col(0)}}, lit(LitNumeric, "-3.5")), "t"},
		{"arithmetic", bin(ExprCmp, "=", bin(ExprArith, "*", col(0), lit(LitInt, "2")), lit(LitInt, "6")), "t"},
	} {
		c, err := CompilePredicate(tc.e, cols)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		v, err := c.Eval(row)
		got := string(v)
		if v == nil {
			got = "NULL"
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %s %v, want %s", tc.name, got, err, tc.want)
		}
	}
	c, err := CompilePredicate(bin(ExprCmp, "<", col(2), lit(LitString, "x")), cols)
	if err != nil || !c.ByteOrder {
		t.Errorf("text < needs byte order: %v %v", c, err)
	}
	for name, e := range map[string]Expr{
		"not boolean":        col(0),
		"date vs int":        bin(ExprCmp, "=", col(4), lit(LitInt, "1")),
		"text vs int":        bin(ExprCmp, "=", col(2), col(0)),
		"AND of an integer":  {Op: ExprAnd, Args: []Expr{col(5), col(0)}},
		"date in odd format": bin(ExprCmp, "=", col(4), lit(LitString, "June 1, 1990")),
	} {
		if _, err := CompilePredicate(e, cols); !errors.Is(err, ErrNotComparable) {
			t.Errorf("%s: %v, want ErrNotComparable", name, err)
		}
	}
	var ie *InputError
	if _, err := CompilePredicate(bin(ExprCmp, "=", col(0), lit(LitString, "abc")), cols); !errors.As(err, &ie) {
		t.Errorf("bad integer literal: %v, want an InputError", err)
	}
}

func TestArithmetic(t *testing.T) {
	// int8, int4, int2, numeric, numeric, float8, float4
	cols := []Column{{Type: oidInt8}, {Type: oidInt4}, {Type: oidInt2}, {Type: oidNumeric}, {Type: oidNumeric}, {Type: oidFloat8}, {Type: oidFloat4}}
	row := [][]byte{[]byte("7"), []byte("-2"), []byte("32767"), []byte("10.50"), []byte("3"), []byte("0.1"), []byte("1.5")}
	for _, tc := range []struct {
		name string
		e    Expr
		typ  uint32
		want string
	}{
		{"int8 / int4 truncates", bin(ExprArith, "/", col(0), col(1)), oidInt8, "-3"},
		{"int8 % int4", bin(ExprArith, "%", col(0), col(1)), oidInt8, "1"},
		{"int4 - int4", bin(ExprArith, "-", col(1), lit(LitInt, "5")), oidInt4, "-7"},
		{"numeric + int", bin(ExprArith, "+", col(3), col(0)), oidNumeric, "17.50"},
		{"numeric * numeric", bin(ExprArith, "*", col(3), lit(LitNumeric, "0.5")), oidNumeric, "5.250"},
		{"numeric / int", bin(ExprArith, "/", col(3), col(0)), oidNumeric, "1.5000000000000000"},
		{"numeric / numeric", bin(ExprArith, "/", col(4), lit(LitInt, "3")), oidNumeric, "1.00000000000000000000"},
		{"numeric % int", bin(ExprArith, "%", col(3), lit(LitInt, "4")), oidNumeric, "2.50"},
		{"float + int", bin(ExprArith, "+", col(5), lit(LitInt, "1")), oidFloat8, "1.1"},
		{"float4 * float4", bin(ExprArith, "*", col(6), col(6)), oidFloat4, "2.25"},
		{"minus", Expr{Op: ExprNeg, Args: []Expr{col(3)}}, oidNumeric, "-10.50"},
		{"string literal as int", bin(ExprArith, "+", col(0), lit(LitString, "1")), oidInt8, "8"},
		{"NULL", bin(ExprArith, "+", col(0), lit(LitNull, "")), oidInt8, "NULL"},
	} {
		c, err := Compile(tc.e, cols)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		v, err := c.Eval(row)
		got := string(v)
		if v == nil {
			got = "NULL"
		}
		if err != nil || got != tc.want || c.Type != tc.typ {
			t.Errorf("%s: %s (type %d) %v, want %s (type %d)", tc.name, got, c.Type, err, tc.want, tc.typ)
		}
	}
	for name, tc := range map[string]struct {
		e    Expr
		want func(error) bool
	}{
		"int2 overflow":     {bin(ExprArith, "+", col(2), col(2)), func(err error) bool { var re *RangeError; return errors.As(err, &re) }},
		"int division by 0": {bin(ExprArith, "/", col(0), lit(LitInt, "0")), func(err error) bool { return errors.Is(err, ErrDivisionByZero) }},
		"numeric % by 0":    {bin(ExprArith, "%", col(3), lit(LitInt, "0")), func(err error) bool { return errors.Is(err, ErrDivisionByZero) }},
		"float / 0":         {bin(ExprArith, "/", col(5), lit(LitInt, "0")), func(err error) bool { return errors.Is(err, ErrDivisionByZero) }},
		"int8 overflow": {bin(ExprArith, "*", lit(LitInt, "9223372036854775807"), lit(LitInt, "2")),
			func(err error) bool {
				var re *RangeError
				return errors.As(err, &re) && re.Msg == "bigint out of range"
			}},
	} {
		c, err := Compile(tc.e, cols)
		if err == nil {
			_, err = c.Eval(row)
		}
		if !tc.want(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNumericLiteral(t *testing.T) {
	for in, want := range map[string]string{"1.50": "1.50", ".5": "0.5", "-2e3": "-2000", "1.5E-2": "0.015", "0": "0"} {
		if got, ok := numericLiteral(in); !ok || got != want {
			t.Errorf("numericLiteral(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := numericLiteral("1.2.3"); ok {
		t.Error("numericLiteral(1.2.3) ok")
	}
}
