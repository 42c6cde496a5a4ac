package routing

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Expressions computed over merged groups: a HAVING predicate, or an
// output column that is an expression over aggregates. They follow
// PostgreSQL's rules for the types pgshard merges: integers, numeric,
// float, text, boolean, date/time and uuid; anything else fails to
// compile with ErrNotComparable.

// ExprOp is what an Expr node computes.
type ExprOp uint8

const (
	ExprCol       ExprOp = iota // the value of column Col
	ExprLit                     // the literal Lit
	ExprAvg                     // avg from a sum (Args[0]) and a count (Args[1])
	ExprCmp                     // Args[0] Name Args[1]; Name is =, <>, <, <=, > or >=
	ExprAnd                     // Args[0] AND Args[1] AND ...
	ExprOr                      // Args[0] OR Args[1] OR ...
	ExprNot                     // NOT Args[0]
	ExprIsNull                  // Args[0] IS NULL
	ExprIsNotNull               // Args[0] IS NOT NULL
	ExprArith                   // Args[0] Name Args[1]; Name is +, -, *, / or %
	ExprNeg                     // -Args[0]
)

// Expr is an expression over the columns of a merged row.
type Expr struct {
	Op   ExprOp
	Col  int
	Lit  Literal
	Name string
	Args []Expr
}

// LitKind is the kind of a literal.
type LitKind uint8

const (
	LitNull    LitKind = iota
	LitInt             // an integer: int4, int8 or numeric by its size
	LitNumeric         // a number with a fraction or an exponent: numeric
	LitString          // a string: of unknown type, taking the type it meets
	LitBool
)

// Literal is a constant of an Expr; Text is its text (digits with an
// optional '-', the unquoted string, "true" or "false").
type Literal struct {
	Kind LitKind
	Text string
}

// ErrDivisionByZero is PostgreSQL's "division by zero" (SQLSTATE 22012).
var ErrDivisionByZero = errors.New("division by zero")

// RangeError is a result out of its type's range (SQLSTATE 22003).
type RangeError struct{ Msg string }

func (e *RangeError) Error() string { return e.Msg }

// InputError is a literal that is not a valid value of the type it is
// compared with (SQLSTATE 22P02).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

const oidUnknown = 705

// Compiled is an Expr checked against the types of the columns it reads.
// It is immutable and safe for concurrent use.
type Compiled struct {
	// Type is the type OID of its values.
	Type uint32
	// ByteOrder is set when it orders text: right only under the C
	// collation, which the caller must check.
	ByteOrder bool
	eval      func(row [][]byte) ([]byte, error)
}

// Eval computes the expression over a row of text values (nil: NULL).
func (c *Compiled) Eval(row [][]byte) ([]byte, error) { return c.eval(row) }

// Compile checks e over rows whose columns are cols (text format).
func Compile(e Expr, cols []Column) (*Compiled, error) {
	c, err := compile(e, cols)
	if err != nil {
		return nil, err
	}
	if c.Type == oidUnknown {
		// A bare string literal is text, a bare NULL too.
		c.Type = oidText
	}
	return c, nil
}

// CompilePredicate compiles e and checks that it is a boolean.
func CompilePredicate(e Expr, cols []Column) (*Compiled, error) {
	c, err := compile(e, cols)
	if err != nil {
		return nil, err
	}
	if c.Type == oidUnknown && e.Op == ExprLit && e.Lit.Kind == LitNull {
		c.Type = oidBool
	}
	if c.Type != oidBool {
		return nil, fmt.Errorf("%w: a HAVING condition of type OID %d, not boolean", ErrNotComparable, c.Type)
	}
	return c, nil
}

func compile(e Expr, cols []Column) (*Compiled, error) {
	switch e.Op {
	case ExprCol:
		if e.Col < 0 || e.Col >= len(cols) {
			return nil, fmt.Errorf("expression column %d of %d", e.Col+1, len(cols))
		}
		i := e.Col
		return &Compiled{Type: cols[i].Type, eval: func(row [][]byte) ([]byte, error) { return row[i], nil }}, nil
	case ExprLit:
		return literal(e.Lit)
	case ExprAvg:
		args, err := compileArgs(e.Args, cols, 2)
		if err != nil {
			return nil, err
		}
		sum, count := args[0], args[1]
		typ := sum.Type
		return &Compiled{Type: AvgType(typ), eval: func(row [][]byte) ([]byte, error) {
			s, err := sum.eval(row)
			if err != nil {
				return nil, err
			}
			n, err := count.eval(row)
			if err != nil {
				return nil, err
			}
			return Avg(typ, s, n)
		}}, nil
	case ExprCmp:
		return compileCmp(e, cols)
	case ExprAnd, ExprOr, ExprNot:
		return compileBool(e, cols)
	case ExprIsNull, ExprIsNotNull:
		args, err := compileArgs(e.Args, cols, 1)
		if err != nil {
			return nil, err
		}
		a, want := args[0], e.Op == ExprIsNull
		return &Compiled{Type: oidBool, ByteOrder: a.ByteOrder, eval: func(row [][]byte) ([]byte, error) {
			v, err := a.eval(row)
			if err != nil {
				return nil, err
			}
			return boolText((v == nil) == want), nil
		}}, nil
	case ExprArith, ExprNeg:
		return compileArith(e, cols)
	}
	return nil, fmt.Errorf("unknown expression op %d", e.Op)
}

func compileArgs(args []Expr, cols []Column, n int) ([]*Compiled, error) {
	if n >= 0 && len(args) != n {
		return nil, fmt.Errorf("expression with %d arguments, want %d", len(args), n)
	}
	out := make([]*Compiled, len(args))
	for i, a := range args {
		c, err := compile(a, cols)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func boolText(b bool) []byte {
	if b {
		return []byte("t")
	}
	return []byte("f")
}

func literal(l Literal) (*Compiled, error) {
	constant := func(typ uint32, v []byte) *Compiled {
		return &Compiled{Type: typ, eval: func([][]byte) ([]byte, error) { return v, nil }}
	}
	switch l.Kind {
	case LitNull:
		return constant(oidUnknown, nil), nil
	case LitBool:
		return constant(oidBool, boolText(l.Text == "true")), nil
	case LitString:
		return constant(oidUnknown, []byte(l.Text)), nil
	case LitInt:
		n, err := strconv.ParseInt(l.Text, 10, 64)
		switch {
		case err != nil:
			if _, _, err := parseDecimal(l.Text); err != nil {
				return nil, fmt.Errorf("malformed integer literal %q", l.Text)
			}
			return constant(oidNumeric, []byte(l.Text)), nil
		case n >= math.MinInt32 && n <= math.MaxInt32:
			return constant(oidInt4, []byte(l.Text)), nil
		}
		return constant(oidInt8, []byte(l.Text)), nil
	case LitNumeric:
		v, ok := numericLiteral(l.Text)
		if !ok {
			return nil, fmt.Errorf("%w: the numeric literal %s", ErrNotComparable, l.Text)
		}
		return constant(oidNumeric, []byte(v)), nil
	}
	return nil, fmt.Errorf("unknown literal kind %d", l.Kind)
}

// numericLiteral writes a number such as 1.50, .5, -2e3 or 1.5E-2 as
// numeric prints it (the scale the literal has, as PostgreSQL keeps it).
func numericLiteral(s string) (string, bool) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "-"), "+")
	mant, exp := t, 0
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.Atoi(t[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return "", false
		}
		mant, exp = t[:i], e
	}
	ip, fp, _ := strings.Cut(mant, ".")
	if ip == "" && fp == "" || strings.Trim(ip+fp, "0123456789") != "" {
		return "", false
	}
	n, ok := new(big.Int).SetString("0"+ip+fp, 10)
	if !ok {
		return "", false
	}
	scale := len(fp) - exp
	if scale < 0 {
		n.Mul(n, pow10(-scale))
		scale = 0
	}
	if neg {
		n.Neg(n)
	}
	return formatDecimal(n, scale), true
}

// coerceLiteral turns the text of a string literal into a value of type
// typ, as PostgreSQL reads an unknown literal compared with typ.
func coerceLiteral(typ uint32, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	s := strings.TrimSpace(string(v))
	bad := func(name string) error {
		return &InputError{Msg: fmt.Sprintf("invalid input syntax for type %s: %q", name, string(v))}
	}
	switch typ {
	case oidText, oidVarchar, oidBpchar, oidName, oidUnknown:
		return v, nil
	case oidInt2, oidInt4, oidInt8:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, bad(intName(typ))
		}
		if lo, hi := intRange(typ); n < lo || n > hi {
			return nil, &RangeError{Msg: fmt.Sprintf("value %q is out of range for type %s", s, intName(typ))}
		}
		return []byte(strconv.FormatInt(n, 10)), nil
	case oidNumeric:
		switch strings.ToLower(s) {
		case "nan":
			return []byte("NaN"), nil
		case "infinity", "inf", "+infinity", "+inf":
			return []byte("Infinity"), nil
		case "-infinity", "-inf":
			return []byte("-Infinity"), nil
		}
		n, ok := numericLiteral(s)
		if !ok {
			return nil, bad("numeric")
		}
		return []byte(n), nil
	case oidFloat4, oidFloat8:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, bad("double precision")
		}
		return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case oidBool:
		switch strings.ToLower(s) {
		case "t", "true", "y", "yes", "on", "1":
			return []byte("t"), nil
		case "f", "false", "n", "no", "off", "0":
			return []byte("f"), nil
		}
		return nil, bad("boolean")
	case oidDate, oidTimestamp, oidTimestamptz:
		_, clock, _ := strings.Cut(s, " ")
		if _, ok := isoMicros(s); !ok || typ == oidTimestamptz && !strings.ContainsAny(clock, "+-") && s != "infinity" && s != "-infinity" {
			return nil, fmt.Errorf("%w: the literal %q with a date or time: write it as YYYY-MM-DD[ HH:MM:SS] (timestamptz with its offset)", ErrNotComparable, string(v))
		}
		return []byte(s), nil
	case oidUUID:
		h := strings.ReplaceAll(strings.ToLower(strings.Trim(s, "{}")), "-", "")
		if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
			return nil, bad("uuid")
		}
		return []byte(h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]), nil
	}
	return nil, fmt.Errorf("%w literals with values of type OID %d", ErrNotComparable, typ)
}

func intName(typ uint32) string {
	switch typ {
	case oidInt2:
		return "smallint"
	case oidInt4:
		return "integer"
	}
	return "bigint"
}

func intRange(typ uint32) (int64, int64) {
	switch typ {
	case oidInt2:
		return math.MinInt16, math.MaxInt16
	case oidInt4:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

func isInt(typ uint32) bool { return typ == oidInt2 || typ == oidInt4 || typ == oidInt8 }

func isFloat(typ uint32) bool { return typ == oidFloat4 || typ == oidFloat8 }

// unify resolves the operand types of a binary operator: an unknown
// literal takes the other side's type, as PostgreSQL resolves it; it
// returns the operands, with literals converted.
func unify(a, b *Compiled) (*Compiled, *Compiled, error) {
	fix := func(lit, other *Compiled) (*Compiled, error) {
		v, err := lit.eval(nil)
		if err != nil {
			return nil, err
		}
		if v, err = coerceLiteral(other.Type, v); err != nil {
			return nil, err
		}
		return &Compiled{Type: other.Type, eval: func([][]byte) ([]byte, error) { return v, nil }}, nil
	}
	var err error
	switch {
	case a.Type == oidUnknown && b.Type == oidUnknown:
		a.Type, b.Type = oidText, oidText
	case a.Type == oidUnknown:
		a, err = fix(a, b)
	case b.Type == oidUnknown:
		b, err = fix(b, a)
	}
	return a, b, err
}

func compileCmp(e Expr, cols []Column) (*Compiled, error) {
	args, err := compileArgs(e.Args, cols, 2)
	if err != nil {
		return nil, err
	}
	a, b, err := unify(args[0], args[1])
	if err != nil {
		return nil, err
	}
	var test func(c int) bool
	switch e.Name {
	case "=":
		test = func(c int) bool { return c == 0 }
	case "<>", "!=":
		test = func(c int) bool { return c != 0 }
	case "<":
		test = func(c int) bool { return c < 0 }
	case "<=":
		test = func(c int) bool { return c <= 0 }
	case ">":
		test = func(c int) bool { return c > 0 }
	case ">=":
		test = func(c int) bool { return c >= 0 }
	default:
		return nil, fmt.Errorf("%w with the operator %s", ErrNotComparable, e.Name)
	}
	cmp, err := crossComparator(a.Type, b.Type)
	if err != nil {
		return nil, err
	}
	ordered := e.Name != "=" && e.Name != "<>" && e.Name != "!="
	return &Compiled{Type: oidBool, ByteOrder: a.ByteOrder || b.ByteOrder || ordered && IsTextType(a.Type),
		eval: func(row [][]byte) ([]byte, error) {
			x, err := a.eval(row)
			if err != nil {
				return nil, err
			}
			y, err := b.eval(row)
			if err != nil || x == nil || y == nil {
				return nil, err
			}
			return boolText(test(cmp(x, y))), nil
		}}, nil
}

// crossComparator compares values of types ta and tb (text format) as
// PostgreSQL compares them, converting numbers to the wider type.
func crossComparator(ta, tb uint32) (func(a, b []byte) int, error) {
	numeric := func(t uint32) bool { return isInt(t) || t == oidNumeric }
	switch {
	case isInt(ta) && isInt(tb):
		return comparator(Column{Type: oidInt8}), nil
	case numeric(ta) && numeric(tb):
		return comparator(Column{Type: oidNumeric}), nil
	case (numeric(ta) || isFloat(ta)) && (numeric(tb) || isFloat(tb)):
		return func(a, b []byte) int {
			x, _ := strconv.ParseFloat(string(a), 64)
			y, _ := strconv.ParseFloat(string(b), 64)
			return compareFloat(x, y)
		}, nil
	case IsTextType(ta) && IsTextType(tb):
		if ta == oidBpchar || tb == oidBpchar {
			// char(n) ignores trailing spaces.
			return func(a, b []byte) int {
				return bytes.Compare(bytes.TrimRight(a, " "), bytes.TrimRight(b, " "))
			}, nil
		}
		return bytes.Compare, nil
	case ta == tb:
		if cmp := comparator(Column{Type: ta}); cmp != nil {
			return cmp, nil
		}
	}
	return nil, fmt.Errorf("%w values of types OID %d and %d", ErrNotComparable, ta, tb)
}

func compileBool(e Expr, cols []Column) (*Compiled, error) {
	n := -1
	if e.Op == ExprNot {
		n = 1
	}
	args, err := compileArgs(e.Args, cols, n)
	if err != nil {
		return nil, err
	}
	byteOrder := false
	for i, a := range args {
		if a.Type == oidUnknown {
			v, err := a.eval(nil)
			if err != nil {
				return nil, err
			}
			if v, err = coerceLiteral(oidBool, v); err != nil {
				return nil, err
			}
			args[i] = &Compiled{Type: oidBool, eval: func([][]byte) ([]byte, error) { return v, nil }}
		} else if a.Type != oidBool {
			return nil, fmt.Errorf("%w: an argument of AND, OR or NOT of type OID %d, not boolean", ErrNotComparable, a.Type)
		}
		byteOrder = byteOrder || a.ByteOrder
	}
	if e.Op == ExprNot {
		a := args[0]
		return &Compiled{Type: oidBool, ByteOrder: byteOrder, eval: func(row [][]byte) ([]byte, error) {
			v, err := a.eval(row)
			if err != nil || v == nil {
				return nil, err
			}
			return boolText(string(v) != "t"), nil
		}}, nil
	}
	// AND: false wins over NULL; OR: true wins over NULL.
	decisive := "f"
	if e.Op == ExprOr {
		decisive = "t"
	}
	return &Compiled{Type: oidBool, ByteOrder: byteOrder, eval: func(row [][]byte) ([]byte, error) {
		null := false
		for _, a := range args {
			v, err := a.eval(row)
			if err != nil {
				return nil, err
			}
			switch {
			case v == nil:
				null = true
			case string(v) == decisive:
				return v, nil
			}
		}
		if null {
			return nil, nil
		}
		if decisive == "f" {
			return []byte("t"), nil
		}
		return []byte("f"), nil
	}}, nil
}

// IsTrue reports whether a predicate's value is true (not false or NULL).
func IsTrue(v []byte) bool { return string(v) == "t" }
