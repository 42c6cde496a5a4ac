package routing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Merging the rows of several shards in ORDER BY order: each shard sends
// its rows sorted, and a RowOrder compares the heads of the shards'
// streams the way PostgreSQL would compare the values.

// Column is how a result column is sent: its type OID and format code
// (0 text, 1 binary), as a RowDescription gives them.
type Column struct {
	Type   uint32
	Format int16
}

// SortKey is one ORDER BY key: a column of the rows (0-based) and its
// direction.
type SortKey struct {
	Column           int
	Desc, NullsFirst bool
}

// RowOrder compares rows (the values of DataRows, nil for NULL) by sort
// keys.
type RowOrder struct {
	keys []orderKey
}

type orderKey struct {
	SortKey
	cmp func(a, b []byte) int
}

// ErrNotComparable is returned by NewRowOrder for a sort key of a type,
// or a format, that pgshard cannot compare as PostgreSQL does.
var ErrNotComparable = errors.New("cannot compare")

// Type OIDs of the types a RowOrder compares.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
)

// IsTextType reports whether values of type oid compare by collation
// (pgshard compares them byte by byte, which is the C collation's order).
func IsTextType(oid uint32) bool {
	switch oid {
	case oidText, oidVarchar, oidBpchar, oidName:
		return true
	}
	return false
}

// NewRowOrder returns the order of keys over rows whose columns are cols.
func NewRowOrder(cols []Column, keys []SortKey) (*RowOrder, error) {
	o := &RowOrder{}
	for _, k := range keys {
		if k.Column < 0 || k.Column >= len(cols) {
			return nil, fmt.Errorf("sort key column %d of %d", k.Column+1, len(cols))
		}
		c := cols[k.Column]
		cmp := comparator(c)
		if cmp == nil {
			format := "text"
			if c.Format != 0 {
				format = "binary"
			}
			return nil, fmt.Errorf("%w values of type OID %d in %s format", ErrNotComparable, c.Type, format)
		}
		o.keys = append(o.keys, orderKey{SortKey: k, cmp: cmp})
	}
	return o, nil
}

// Compare returns -1, 0 or +1 as row a sorts before, with or after row b.
func (o *RowOrder) Compare(a, b [][]byte) int {
	for _, k := range o.keys {
		x, y := a[k.Column], b[k.Column]
		var c int
		switch {
		case x == nil && y == nil:
			continue
		case x == nil || y == nil:
			// NULLs sort as larger than any value: last ascending, first
			// descending, unless NULLS FIRST/LAST says otherwise.
			c = 1
			if x != nil {
				c = -1
			}
			if k.NullsFirst {
				c = -c
			}
			return c
		default:
			c = k.cmp(x, y)
		}
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// errMalformedDataRow is SplitDataRow's error: one value, so that
// splitting a row allocates nothing.
var errMalformedDataRow = errors.New("malformed DataRow")

// SplitDataRow returns the values of a DataRow body, nil for NULL; they
// alias body. dst is reused.
func SplitDataRow(body []byte, dst [][]byte) ([][]byte, error) {
	bad := errMalformedDataRow
	if len(body) < 2 {
		return nil, bad
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	dst = dst[:0]
	for i := 0; i < n; i++ {
		if len(body) < 4 {
			return nil, bad
		}
		l := int32(binary.BigEndian.Uint32(body))
		body = body[4:]
		if l < 0 {
			dst = append(dst, nil)
			continue
		}
		if int(l) > len(body) {
			return nil, bad
		}
		dst = append(dst, body[:l:l])
		body = body[l:]
	}
	return dst, nil
}

func comparator(c Column) func(a, b []byte) int {
	if c.Format == 0 {
		switch c.Type {
		case oidInt2, oidInt4, oidInt8, oidOID:
			return byParsed(func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
		case oidFloat4, oidFloat8:
			return func(a, b []byte) int {
				x, _ := strconv.ParseFloat(string(a), 64)
				y, _ := strconv.ParseFloat(string(b), 64)
				return compareFloat(x, y)
			}
		case oidNumeric:
			return func(a, b []byte) int { return CompareNumeric(string(a), string(b)) }
		case oidBool, oidText, oidVarchar, oidBpchar, oidName, oidUUID, oidBytea, oidTime:
			// bool is t/f; uuid and bytea print as lower-case hex that
			// sorts as their bytes do; time as fixed-width HH:MM:SS.
			return bytes.Compare
		case oidDate, oidTimestamp, oidTimestamptz:
			return func(a, b []byte) int {
				x, okx := isoMicros(string(a))
				y, oky := isoMicros(string(b))
				if !okx || !oky {
					return bytes.Compare(a, b)
				}
				return compareInt(x, y)
			}
		}
		return nil
	}
	switch c.Type {
	case oidInt2:
		return func(a, b []byte) int { return compareInt(int64(int16(be16(a))), int64(int16(be16(b)))) }
	case oidInt4, oidDate:
		return func(a, b []byte) int { return compareInt(int64(int32(be32(a))), int64(int32(be32(b)))) }
	case oidInt8, oidTimestamp, oidTimestamptz, oidTime:
		return func(a, b []byte) int { return compareInt(int64(be64(a)), int64(be64(b))) }
	case oidOID:
		return func(a, b []byte) int { return compareInt(int64(be32(a)), int64(be32(b))) }
	case oidFloat4:
		return func(a, b []byte) int {
			return compareFloat(float64(math.Float32frombits(be32(a))), float64(math.Float32frombits(be32(b))))
		}
	case oidFloat8:
		return func(a, b []byte) int {
			return compareFloat(math.Float64frombits(be64(a)), math.Float64frombits(be64(b)))
		}
	case oidBool, oidText, oidVarchar, oidBpchar, oidName, oidUUID, oidBytea:
		return bytes.Compare
	}
	return nil
}

func be16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func be32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func be64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func byParsed(parse func(string) (int64, error)) func(a, b []byte) int {
	return func(a, b []byte) int {
		x, errx := parse(string(a))
		y, erry := parse(string(b))
		if errx != nil || erry != nil {
			return bytes.Compare(a, b)
		}
		return compareInt(x, y)
	}
}

func compareInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// compareFloat orders floats as PostgreSQL does: NaN equals NaN and sorts
// after everything else.
func compareFloat(x, y float64) int {
	switch xn, yn := math.IsNaN(x), math.IsNaN(y); {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// CompareNumeric compares two numeric values in PostgreSQL's text form
// ("-12.50", "NaN", "Infinity", "-Infinity") by value: NaN sorts after
// everything, as in PostgreSQL.
func CompareNumeric(a, b string) int {
	rank := func(s string) int {
		switch s {
		case "NaN":
			return 2
		case "Infinity":
			return 1
		case "-Infinity":
			return -1
		}
		return 0
	}
	if ra, rb := rank(a), rank(b); ra != 0 || rb != 0 {
		return compareInt(int64(ra), int64(rb))
	}
	na, nb := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	a, b = strings.TrimLeft(strings.TrimPrefix(a, "-"), "0"), strings.TrimLeft(strings.TrimPrefix(b, "-"), "0")
	ia, fa, _ := strings.Cut(a, ".")
	ib, fb, _ := strings.Cut(b, ".")
	fa, fb = strings.TrimRight(fa, "0"), strings.TrimRight(fb, "0")
	zeroA, zeroB := ia == "" && fa == "", ib == "" && fb == ""
	if zeroA {
		na = false
	}
	if zeroB {
		nb = false
	}
	if na != nb {
		if na {
			return -1
		}
		return 1
	}
	c := compareInt(int64(len(ia)), int64(len(ib)))
	if c == 0 {
		c = strings.Compare(ia, ib)
	}
	if c == 0 {
		c = strings.Compare(fa, fb)
	}
	if na {
		c = -c
	}
	return c
}

// isoMicros reads a date, timestamp or timestamptz in PostgreSQL's
// ISO output ("2025-03-01", "2025-03-01 10:00:00.5", "... +02", "... BC",
// "infinity") as microseconds since year 0 in UTC, for ordering.
func isoMicros(s string) (int64, bool) {
	switch s {
	case "infinity":
		return math.MaxInt64, true
	case "-infinity":
		return math.MinInt64, true
	}
	bc := strings.HasSuffix(s, " BC")
	s = strings.TrimSuffix(s, " BC")
	date, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(date, "-")
	if len(parts) != 3 {
		return 0, false
	}
	y, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	d, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, false
	}
	if bc {
		y = 1 - y
	}
	days := daysFromCivil(int64(y), int64(m), int64(d))
	var us int64
	if rest != "" {
		clock, offset := rest, ""
		if i := strings.IndexAny(rest, "+-"); i >= 0 {
			clock, offset = rest[:i], rest[i:]
		}
		hms := strings.Split(clock, ":")
		if len(hms) != 3 {
			return 0, false
		}
		h, e1 := strconv.Atoi(hms[0])
		mi, e2 := strconv.Atoi(hms[1])
		sec, e3 := strconv.ParseFloat(hms[2], 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return 0, false
		}
		us = int64(h)*3600e6 + int64(mi)*60e6 + int64(math.Round(sec*1e6))
		if offset != "" {
			sign := int64(1)
			if offset[0] == '-' {
				sign = -1
			}
			var off int64
			for i, f := range strings.Split(offset[1:], ":") {
				n, err := strconv.Atoi(f)
				if err != nil || i > 2 {
					return 0, false
				}
				off += int64(n) * []int64{3600e6, 60e6, 1e6}[i]
			}
			us -= sign * off
		}
	}
	return days*86400e6 + us, true
}

// daysFromCivil is the day number of a proleptic Gregorian date.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe
}
