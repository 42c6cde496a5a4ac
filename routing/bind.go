package routing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// BindText turns a Bind parameter holding a shard key into the text form
// the methods read. format is the parameter's format code (0 text,
// 1 binary); for binary the value is decoded as PostgreSQL's send
// function for the key type writes it. An int key accepts 2-, 4- and
// 8-byte integers, since clients bind whichever type they inferred.
func BindText(t KeyType, format int16, raw []byte) (string, error) {
	if format == 0 {
		return string(raw), nil
	}
	if format != 1 {
		return "", fmt.Errorf("unknown parameter format code %d", format)
	}
	switch t {
	case KeyInt:
		switch len(raw) {
		case 2:
			return strconv.FormatInt(int64(int16(binary.BigEndian.Uint16(raw))), 10), nil
		case 4:
			return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(raw))), 10), nil
		case 8:
			return strconv.FormatInt(int64(binary.BigEndian.Uint64(raw)), 10), nil
		}
		return "", fmt.Errorf("binary integer of %d bytes", len(raw))
	case KeyText:
		return string(raw), nil
	case KeyUUID:
		if len(raw) != 16 {
			return "", fmt.Errorf("binary uuid of %d bytes", len(raw))
		}
		return fmt.Sprintf("%x-%x-%x-%x-%x", raw[0:4], raw[4:6], raw[6:8], raw[8:10], raw[10:16]), nil
	case KeyDate:
		if len(raw) != 4 {
			return "", fmt.Errorf("binary date of %d bytes", len(raw))
		}
		days := int32(binary.BigEndian.Uint32(raw))
		return pgEpoch.AddDate(0, 0, int(days)).Format("2006-01-02"), nil
	case KeyTimestamp, KeyTimestampTZ:
		if len(raw) != 8 {
			return "", fmt.Errorf("binary timestamp of %d bytes", len(raw))
		}
		us := int64(binary.BigEndian.Uint64(raw))
		ts := pgEpoch.Add(time.Duration(us) * time.Microsecond)
		if t == KeyTimestampTZ {
			return ts.Format("2006-01-02 15:04:05.999999Z07:00"), nil
		}
		return ts.Format("2006-01-02 15:04:05.999999"), nil
	case KeyNumeric:
		return numericText(raw)
	}
	return "", errors.New("unsupported key type")
}

// pgEpoch is PostgreSQL's date and timestamp epoch.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// numericText decodes numeric's binary form: int16 ndigits, weight, sign,
// dscale, then ndigits base-10000 digits, the first one weight places
// before the decimal point.
func numericText(raw []byte) (string, error) {
	if len(raw) < 8 {
		return "", errors.New("short binary numeric")
	}
	ndigits := int(binary.BigEndian.Uint16(raw))
	weight := int(int16(binary.BigEndian.Uint16(raw[2:])))
	sign := binary.BigEndian.Uint16(raw[4:])
	if len(raw) != 8+2*ndigits {
		return "", errors.New("malformed binary numeric")
	}
	switch sign {
	case 0xC000:
		return "NaN", errors.New("NaN is not a shard key")
	case 0xD000, 0xF000:
		return "", errors.New("infinity is not a shard key")
	}
	v := new(big.Rat)
	base := big.NewRat(10000, 1)
	for i := 0; i < ndigits; i++ {
		d := int64(binary.BigEndian.Uint16(raw[8+2*i:]))
		// digit i is worth d * 10000^(weight - i)
		term := big.NewRat(d, 1)
		exp := weight - i
		for e := 0; e < exp; e++ {
			term.Mul(term, base)
		}
		for e := 0; e > exp; e-- {
			term.Quo(term, base)
		}
		v.Add(v, term)
	}
	if sign == 0x4000 {
		v.Neg(v)
	}
	s := v.FloatString(40)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s, nil
}
