package routing

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// Arithmetic over merged values, with PostgreSQL's rules: integers keep
// the wider operand's type and truncate in division; an integer and a
// numeric make a numeric (+ and - keep the larger scale, * the sum of the
// scales, / the scale numeric division picks); a float makes a float8
// (float4 with float4 stays float4). Overflow is a RangeError (22003),
// division by zero ErrDivisionByZero (22012).

func compileArith(e Expr, cols []Column) (*Compiled, error) {
	if e.Op == ExprNeg {
		args, err := compileArgs(e.Args, cols, 1)
		if err != nil {
			return nil, err
		}
		a := args[0]
		if a.Type == oidUnknown {
			return nil, fmt.Errorf("%w: minus of a string literal", ErrNotComparable)
		}
		op, err := negator(a.Type)
		if err != nil {
			return nil, err
		}
		return &Compiled{Type: a.Type, ByteOrder: a.ByteOrder, eval: func(row [][]byte) ([]byte, error) {
			v, err := a.eval(row)
			if err != nil || v == nil {
				return nil, err
			}
			return op(v)
		}}, nil
	}
	args, err := compileArgs(e.Args, cols, 2)
	if err != nil {
		return nil, err
	}
	if args[0].Type == oidUnknown && args[1].Type == oidUnknown {
		return nil, fmt.Errorf("%w: arithmetic on two string literals", ErrNotComparable)
	}
	a, b, err := unify(args[0], args[1])
	if err != nil {
		return nil, err
	}
	typ, op, err := arithmetic(e.Name, a.Type, b.Type)
	if err != nil {
		return nil, err
	}
	return &Compiled{Type: typ, ByteOrder: a.ByteOrder || b.ByteOrder, eval: func(row [][]byte) ([]byte, error) {
		x, err := a.eval(row)
		if err != nil {
			return nil, err
		}
		y, err := b.eval(row)
		if err != nil || x == nil || y == nil {
			return nil, err
		}
		return op(x, y)
	}}, nil
}

func negator(typ uint32) (func(v []byte) ([]byte, error), error) {
	switch {
	case isInt(typ):
		lo, _ := intRange(typ)
		return func(v []byte) ([]byte, error) {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("malformed integer %q", v)
			}
			if n == lo {
				return nil, &RangeError{Msg: intName(typ) + " out of range"}
			}
			return strconv.AppendInt(nil, -n, 10), nil
		}, nil
	case typ == oidNumeric:
		return func(v []byte) ([]byte, error) {
			s := string(v)
			switch {
			case s == "NaN":
				return v, nil
			case s == "Infinity":
				return []byte("-Infinity"), nil
			case len(s) > 0 && s[0] == '-':
				return []byte(s[1:]), nil
			case CompareNumeric(s, "0") == 0:
				return v, nil
			}
			return []byte("-" + s), nil
		}, nil
	case isFloat(typ):
		bits := floatBits(typ)
		return func(v []byte) ([]byte, error) {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, fmt.Errorf("malformed float %q", v)
			}
			return []byte(FormatFloat(-f, bits)), nil
		}, nil
	}
	return nil, fmt.Errorf("%w: minus of type OID %d", ErrNotComparable, typ)
}

func floatBits(typ uint32) int {
	if typ == oidFloat4 {
		return 32
	}
	return 64
}

// arithmetic returns the result type of a op b and how to compute it.
func arithmetic(op string, ta, tb uint32) (uint32, func(a, b []byte) ([]byte, error), error) {
	switch op {
	case "+", "-", "*", "/", "%":
	default:
		return 0, nil, fmt.Errorf("%w with the operator %s", ErrNotComparable, op)
	}
	numeric := func(t uint32) bool { return isInt(t) || t == oidNumeric }
	switch {
	case isInt(ta) && isInt(tb):
		typ := ta
		for _, t := range []uint32{oidInt2, oidInt4, oidInt8} {
			if ta == t || tb == t {
				typ = t
			}
		}
		return typ, func(a, b []byte) ([]byte, error) { return intArith(op, typ, a, b) }, nil
	case numeric(ta) && numeric(tb):
		return oidNumeric, func(a, b []byte) ([]byte, error) {
			s, err := NumericArith(op, string(a), string(b))
			return []byte(s), err
		}, nil
	case (numeric(ta) || isFloat(ta)) && (numeric(tb) || isFloat(tb)):
		if op == "%" {
			return 0, nil, fmt.Errorf("%w: %% of floats (PostgreSQL has no such operator)", ErrNotComparable)
		}
		typ := uint32(oidFloat8)
		if ta == oidFloat4 && tb == oidFloat4 {
			typ = oidFloat4
		}
		return typ, func(a, b []byte) ([]byte, error) { return floatArith(op, typ, a, b) }, nil
	}
	return 0, nil, fmt.Errorf("%w: arithmetic on types OID %d and %d", ErrNotComparable, ta, tb)
}

func intArith(op string, typ uint32, a, b []byte) ([]byte, error) {
	x, err1 := strconv.ParseInt(string(a), 10, 64)
	y, err2 := strconv.ParseInt(string(b), 10, 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("malformed integer %q or %q", a, b)
	}
	// In big integers, so that no int64 overflow goes unseen.
	bx, by := big.NewInt(x), big.NewInt(y)
	r := new(big.Int)
	switch op {
	case "+":
		r.Add(bx, by)
	case "-":
		r.Sub(bx, by)
	case "*":
		r.Mul(bx, by)
	case "/", "%":
		if y == 0 {
			return nil, ErrDivisionByZero
		}
		q, m := new(big.Int).QuoRem(bx, by, new(big.Int)) // truncated, as C
		if op == "/" {
			r = q
		} else {
			r = m
		}
	}
	lo, hi := intRange(typ)
	if !r.IsInt64() || r.Int64() < lo || r.Int64() > hi {
		return nil, &RangeError{Msg: intName(typ) + " out of range"}
	}
	return strconv.AppendInt(nil, r.Int64(), 10), nil
}

func floatArith(op string, typ uint32, a, b []byte) ([]byte, error) {
	x, err1 := strconv.ParseFloat(string(a), 64)
	y, err2 := strconv.ParseFloat(string(b), 64)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("malformed float %q or %q", a, b)
	}
	if typ == oidFloat4 {
		x, y = float64(float32(x)), float64(float32(y))
	}
	var r float64
	switch op {
	case "+":
		r = x + y
	case "-":
		r = x - y
	case "*":
		r = x * y
	case "/":
		if y == 0 {
			return nil, ErrDivisionByZero
		}
		r = x / y
	}
	if typ == oidFloat4 {
		r = float64(float32(r))
	}
	switch {
	case math.IsInf(r, 0) && !math.IsInf(x, 0) && !math.IsInf(y, 0):
		return nil, &RangeError{Msg: "value out of range: overflow"}
	case r == 0 && (op == "*" && x != 0 && y != 0 || op == "/" && x != 0 && !math.IsInf(y, 0)):
		return nil, &RangeError{Msg: "value out of range: underflow"}
	}
	return []byte(FormatFloat(r, floatBits(typ))), nil
}

// NumericArith computes a op b (op one of + - * / %) over numerics in
// text form as PostgreSQL's numeric does.
func NumericArith(op, a, b string) (string, error) {
	if a == "NaN" || b == "NaN" {
		return "NaN", nil
	}
	special := func(s string) bool { return s == "Infinity" || s == "-Infinity" }
	if special(a) || special(b) {
		if op == "+" || op == "-" {
			if op == "-" {
				nb, _ := negator(oidNumeric)
				v, _ := nb([]byte(b))
				b = string(v)
			}
			return AddNumeric(a, b)
		}
		return "", fmt.Errorf("%w: %s of an infinite numeric", ErrNotComparable, op)
	}
	x, sx, err1 := parseDecimal(a)
	y, sy, err2 := parseDecimal(b)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("malformed numeric %q or %q", a, b)
	}
	align := func() int {
		s := max(sx, sy)
		x.Mul(x, pow10(s-sx))
		y.Mul(y, pow10(s-sy))
		return s
	}
	switch op {
	case "+":
		s := align()
		return formatDecimal(x.Add(x, y), s), nil
	case "-":
		s := align()
		return formatDecimal(x.Sub(x, y), s), nil
	case "*":
		return formatDecimal(x.Mul(x, y), sx+sy), nil
	case "%":
		if y.Sign() == 0 {
			return "", ErrDivisionByZero
		}
		s := align()
		return formatDecimal(new(big.Int).Rem(x, y), s), nil
	}
	if y.Sign() == 0 {
		return "", ErrDivisionByZero
	}
	return divNumeric(x, sx, a, y, sy, b), nil
}

// divNumeric divides x/10^sx (text a) by y/10^sy (text b) with the scale
// PostgreSQL's numeric division picks (at least 16 significant digits, no
// less than either operand's scale, at most 1000), rounded half away from
// zero.
func divNumeric(x *big.Int, sx int, a string, y *big.Int, sy int, b string) string {
	w1, d1 := numericWeight(a)
	w2, d2 := numericWeight(b)
	qweight := w1 - w2
	if d1 <= d2 {
		qweight--
	}
	rscale := min(max(16-qweight*4, sx, sy, 0), 1000)
	// x/10^sx / (y/10^sy) = x*10^sy / (y*10^sx); scaled by 10^rscale.
	num := new(big.Int).Mul(x, pow10(rscale+sy))
	den := new(big.Int).Mul(y, pow10(sx))
	neg := num.Sign()*den.Sign() < 0
	num.Abs(num)
	den.Abs(den)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Lsh(r, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	return formatDecimal(q, rscale)
}
