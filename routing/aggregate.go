package routing

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Combining the partial aggregates of several shards, in PostgreSQL's
// text format, into the values one server would have computed.

// Agg is how one output column's values from several shards combine.
type Agg uint8

const (
	AggKey   Agg = iota // a group key: equal keys make one row
	AggCount            // counts add up
	AggSum              // sums add up; NULL only when every part is NULL
	AggMin
	AggMax
	AggAnd // bool_and
	AggOr  // bool_or
	AggAvg // avg: its sum combines as AggSum; Avg divides by the count
	// AggCountDistinct: the distinct values of count(DISTINCT x), which
	// the caller counts; the column keeps its first value.
	AggCountDistinct
	AggExpr // computed after the merge: the column keeps its first value
)

// ErrOutOfRange is a sum that leaves its type's range, as PostgreSQL
// reports it ("bigint out of range").
var ErrOutOfRange = errors.New("bigint out of range")

// A Fold folds value b of a column into a (both text format, nil for
// NULL) and returns the result; NULLs are skipped, as aggregates skip
// them.
type Fold func(a, b []byte) ([]byte, error)

// Folder returns how to fold the values of a column of type typ that agg
// made on each shard, or nil when pgshard cannot.
func Folder(agg Agg, typ uint32) Fold {
	var f func(a, b []byte) ([]byte, error)
	switch agg {
	case AggKey, AggCountDistinct, AggExpr:
		f = func(a, _ []byte) ([]byte, error) { return a, nil }
	case AggCount:
		f = addInt8
	case AggSum, AggAvg:
		f = sumFold(typ)
		// avg's shard sums: int8 or numeric for integer and numeric
		// input, float8 for float8. float4 input sums in float4 on the
		// shards, where avg would use float8.
		if agg == AggAvg && typ != oidInt8 && typ != oidNumeric && typ != oidFloat8 {
			f = nil
		}
	case AggMin, AggMax:
		if cmp := comparator(Column{Type: typ}); cmp != nil {
			f = func(a, b []byte) ([]byte, error) {
				if c := cmp(a, b); (agg == AggMin) == (c <= 0) {
					return a, nil
				}
				return b, nil
			}
		}
	case AggAnd, AggOr:
		if typ == oidBool {
			f = func(a, b []byte) ([]byte, error) {
				x, y := string(a) == "t", string(b) == "t"
				if agg == AggAnd && x && y || agg == AggOr && (x || y) {
					return []byte("t"), nil
				}
				return []byte("f"), nil
			}
		}
	}
	if f == nil {
		return nil
	}
	return func(a, b []byte) ([]byte, error) {
		switch {
		case a == nil:
			return b, nil
		case b == nil:
			return a, nil
		}
		return f(a, b)
	}
}

// sumFold adds sums of type typ; nil for types pgshard cannot add.
func sumFold(typ uint32) func(a, b []byte) ([]byte, error) {
	switch typ {
	case oidInt8, oidInt4, oidInt2:
		return addInt8
	case oidNumeric:
		return func(a, b []byte) ([]byte, error) {
			s, err := AddNumeric(string(a), string(b))
			return []byte(s), err
		}
	case oidFloat8, oidFloat4:
		bits := 64
		if typ == oidFloat4 {
			bits = 32
		}
		return func(a, b []byte) ([]byte, error) {
			x, _ := strconv.ParseFloat(string(a), 64)
			y, _ := strconv.ParseFloat(string(b), 64)
			return []byte(FormatFloat(x+y, bits)), nil
		}
	}
	return nil
}

func addInt8(a, b []byte) ([]byte, error) {
	x, err1 := strconv.ParseInt(string(a), 10, 64)
	y, err2 := strconv.ParseInt(string(b), 10, 64)
	if err1 != nil || err2 != nil {
		return nil, errors.New("malformed integer from a shard")
	}
	s := x + y
	if (x > 0 && y > 0 && s < 0) || (x < 0 && y < 0 && s >= 0) {
		return nil, ErrOutOfRange
	}
	return strconv.AppendInt(nil, s, 10), nil
}

// AddNumeric adds two numerics in text form; the result has the larger
// scale of the two, as PostgreSQL's numeric addition does.
func AddNumeric(a, b string) (string, error) {
	special := func(s string) bool { return s == "NaN" || s == "Infinity" || s == "-Infinity" }
	if special(a) || special(b) {
		switch {
		case a == "NaN" || b == "NaN":
			return "NaN", nil
		case special(a) && special(b) && a != b:
			return "NaN", nil
		case special(a):
			return a, nil
		}
		return b, nil
	}
	x, sx, err1 := parseDecimal(a)
	y, sy, err2 := parseDecimal(b)
	if err1 != nil || err2 != nil {
		return "", errors.New("malformed numeric from a shard")
	}
	scale := max(sx, sy)
	x.Mul(x, pow10(scale-sx))
	y.Mul(y, pow10(scale-sy))
	return formatDecimal(x.Add(x, y), scale), nil
}

func parseDecimal(s string) (*big.Int, int, error) {
	i, f, _ := strings.Cut(s, ".")
	n, ok := new(big.Int).SetString(i+f, 10)
	if !ok {
		return nil, 0, errors.New("not a decimal")
	}
	return n, len(f), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

func formatDecimal(n *big.Int, scale int) string {
	neg := n.Sign() < 0
	digits := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// FormatFloat prints a float4 (bits 32) or float8 as PostgreSQL does with
// extra_float_digits at its default: the shortest text that reads back
// the same, in exponent form below 1e-4 and from 1e15 (float4: 1e6) up.
func FormatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, bits)
	mant, exp, _ := strings.Cut(e, "e")
	x, _ := strconv.Atoi(exp)
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if x < -4 || x >= limit {
		sign := exp[0]
		digits := strings.TrimLeft(exp[1:], "0")
		for len(digits) < 2 {
			digits = "0" + digits
		}
		return mant + "e" + string(sign) + digits
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// GroupKey is the identity of a key value for grouping: values PostgreSQL
// finds equal have equal identities (1.0 and 1.00, -0 and 0).
func GroupKey(typ uint32, v []byte) string {
	switch typ {
	case oidNumeric:
		s := string(v)
		if s == "NaN" || strings.HasSuffix(s, "Infinity") {
			return s
		}
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		i, f, _ := strings.Cut(s, ".")
		i, f = strings.TrimLeft(i, "0"), strings.TrimRight(f, "0")
		if i == "" && f == "" {
			return "0"
		}
		if neg {
			return "-" + i + "." + f
		}
		return i + "." + f
	case oidFloat4, oidFloat8:
		x, err := strconv.ParseFloat(string(v), 64)
		if err == nil && x == 0 {
			return "0"
		}
	}
	return string(v)
}

// pgEpochDays is 2000-01-01, PostgreSQL's epoch, as a daysFromCivil day.
var pgEpochDays = daysFromCivil(2000, 1, 1)

// EncodeBinary turns a value of type typ from text format into binary
// format, for a client that asked for binary results.
func EncodeBinary(typ uint32, text []byte) ([]byte, error) {
	s := string(text)
	switch typ {
	case oidText, oidVarchar, oidBpchar, oidName:
		return text, nil
	case oidBool:
		if s == "t" {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case oidInt2, oidInt4, oidInt8:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, err
		}
		switch typ {
		case oidInt2:
			return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
		case oidInt4:
			return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
		}
		return binary.BigEndian.AppendUint64(nil, uint64(n)), nil
	case oidFloat4:
		f, err := strconv.ParseFloat(s, 32)
		return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(f))), err
	case oidFloat8:
		f, err := strconv.ParseFloat(s, 64)
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)), err
	case oidUUID:
		b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil || len(b) != 16 {
			return nil, errors.New("malformed uuid")
		}
		return b, nil
	case oidDate, oidTimestamp, oidTimestamptz:
		us, ok := isoMicros(s)
		if !ok {
			return nil, fmt.Errorf("cannot read %q", s)
		}
		if typ == oidDate {
			switch us {
			case math.MaxInt64:
				return binary.BigEndian.AppendUint32(nil, math.MaxInt32), nil
			case math.MinInt64:
				return binary.BigEndian.AppendUint32(nil, 1<<31), nil
			}
			return binary.BigEndian.AppendUint32(nil, uint32(int32(us/86400e6-pgEpochDays))), nil
		}
		if us != math.MaxInt64 && us != math.MinInt64 {
			us -= pgEpochDays * 86400e6
		}
		return binary.BigEndian.AppendUint64(nil, uint64(us)), nil
	case oidNumeric:
		return encodeNumeric(s)
	}
	return nil, fmt.Errorf("%w values of type OID %d in binary format", ErrNotComparable, typ)
}

// CanEncodeBinary reports whether EncodeBinary handles type typ.
func CanEncodeBinary(typ uint32) bool {
	switch typ {
	case oidText, oidVarchar, oidBpchar, oidName, oidBool, oidInt2, oidInt4, oidInt8, oidFloat4, oidFloat8,
		oidUUID, oidDate, oidTimestamp, oidTimestamptz, oidNumeric:
		return true
	}
	return false
}

// encodeNumeric writes a numeric's binary form: ndigits, weight, sign,
// dscale, then base-10000 digits.
func encodeNumeric(s string) ([]byte, error) {
	const (
		pos  = 0x0000
		neg  = 0x4000
		nan  = 0xC000
		pinf = 0xD000
		ninf = 0xF000
	)
	header := func(ndigits, weight, sign, dscale int) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(ndigits))
		b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
		b = binary.BigEndian.AppendUint16(b, uint16(sign))
		return binary.BigEndian.AppendUint16(b, uint16(dscale))
	}
	switch s {
	case "NaN":
		return header(0, 0, nan, 0), nil
	case "Infinity":
		return header(0, 0, pinf, 0), nil
	case "-Infinity":
		return header(0, 0, ninf, 0), nil
	}
	sign := pos
	if strings.HasPrefix(s, "-") {
		sign, s = neg, s[1:]
	}
	ip, fp, _ := strings.Cut(s, ".")
	dscale := len(fp)
	ip = strings.TrimLeft(ip, "0")
	// Pad the integer part on the left and the fraction on the right to
	// whole groups of four digits.
	if r := len(ip) % 4; r != 0 {
		ip = strings.Repeat("0", 4-r) + ip
	}
	if r := len(fp) % 4; r != 0 {
		fp += strings.Repeat("0", 4-r)
	}
	var digits []int
	for i := 0; i < len(ip); i += 4 {
		d, err := strconv.Atoi(ip[i : i+4])
		if err != nil {
			return nil, errors.New("malformed numeric")
		}
		digits = append(digits, d)
	}
	weight := len(digits) - 1
	for i := 0; i < len(fp); i += 4 {
		d, err := strconv.Atoi(fp[i : i+4])
		if err != nil {
			return nil, errors.New("malformed numeric")
		}
		digits = append(digits, d)
	}
	// Strip leading and trailing zero groups, as PostgreSQL stores them.
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		weight, sign = 0, pos
	}
	b := header(len(digits), weight, sign, dscale)
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, uint16(d))
	}
	return b, nil
}

// AvgType is the type avg returns for a sum column of type sumType.
func AvgType(sumType uint32) uint32 {
	if sumType == oidFloat8 {
		return oidFloat8
	}
	return oidNumeric
}

// Avg divides a sum (of type sumType, text format) by a count as
// PostgreSQL's avg does: in float8 for float8, else in numeric with the
// scale PostgreSQL's numeric division picks (at least 16 significant
// digits, no less than the sum's scale), rounded half away from zero.
// A NULL sum or a zero count gives NULL.
func Avg(sumType uint32, sum, count []byte) ([]byte, error) {
	if sum == nil || count == nil || string(count) == "0" {
		return nil, nil
	}
	if sumType == oidFloat8 {
		x, err1 := strconv.ParseFloat(string(sum), 64)
		n, err2 := strconv.ParseFloat(string(count), 64)
		if err1 != nil || err2 != nil {
			return nil, errors.New("malformed float from a shard")
		}
		return []byte(FormatFloat(x/n, 64)), nil
	}
	s := string(sum)
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return sum, nil
	}
	num, sumScale, err1 := parseDecimal(s)
	den, ok := new(big.Int).SetString(string(count), 10)
	if err1 != nil || !ok || den.Sign() <= 0 {
		return nil, errors.New("malformed sum or count from a shard")
	}
	return []byte(divNumeric(num, sumScale, s, den, 0, string(count))), nil
}

// numericWeight is the weight (position of the first non-zero base-10000
// digit, 0 for the units group) and that digit of a decimal in text form,
// as PostgreSQL's numeric stores it; 0, 0 for zero.
func numericWeight(s string) (weight, first int) {
	s = strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(s, ".")
	ip = strings.TrimLeft(ip, "0")
	if ip != "" {
		groups := (len(ip) + 3) / 4
		head := ip[:len(ip)-(groups-1)*4]
		first, _ = strconv.Atoi(head)
		return groups - 1, first
	}
	for i := 0; i*4 < len(fp); i++ {
		g := fp[i*4 : min(len(fp), i*4+4)]
		g += strings.Repeat("0", 4-len(g))
		if d, _ := strconv.Atoi(g); d != 0 {
			return -(i + 1), d
		}
	}
	return 0, 0
}
