package routing

import (
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// The binary forms come from pgx's encoders, as a client would send them.
func TestBindText(t *testing.T) {
	m := pgtype.NewMap()
	enc := func(oid uint32, v any) []byte {
		t.Helper()
		b, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		typ  KeyType
		raw  []byte
		want string
	}{
		{"int2", KeyInt, enc(pgtype.Int2OID, int16(-7)), "-7"},
		{"int4", KeyInt, enc(pgtype.Int4OID, int32(123456)), "123456"},
		{"int8", KeyInt, enc(pgtype.Int8OID, int64(-9223372036854775808)), "-9223372036854775808"},
		{"text", KeyText, enc(pgtype.TextOID, "naïve"), "naïve"},
		{"uuid", KeyUUID, enc(pgtype.UUIDOID, [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"date", KeyDate, enc(pgtype.DateOID, time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)), "1999-12-31"},
		{"timestamp", KeyTimestamp, enc(pgtype.TimestampOID, time.Date(2025, 1, 1, 12, 30, 0, 500000000, time.UTC)), "2025-01-01 12:30:00.5"},
		{"timestamptz", KeyTimestampTZ, enc(pgtype.TimestamptzOID, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), "2025-01-01 00:00:00Z"},
		{"numeric", KeyNumeric, enc(pgtype.NumericOID, pgtype.Numeric{Int: big.NewInt(-123456789), Exp: -4, Valid: true}), "-12345.6789"},
		{"numeric int", KeyNumeric, enc(pgtype.NumericOID, pgtype.Numeric{Int: big.NewInt(10000), Exp: 2, Valid: true}), "1000000"},
		{"numeric small", KeyNumeric, enc(pgtype.NumericOID, pgtype.Numeric{Int: big.NewInt(5), Exp: -9, Valid: true}), "0.000000005"},
	}
	for _, tc := range cases {
		got, err := BindText(tc.typ, 1, tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
		// The text form places a key exactly where the value does.
		if tc.typ == KeyInt {
			h, _ := NewHash(KeyInt, 5)
			a, _ := h.Shard(got)
			b, _ := h.Shard(tc.want)
			if a != b {
				t.Errorf("%s: binary and text forms placed apart", tc.name)
			}
		}
	}
	if got, _ := BindText(KeyInt, 0, []byte("42")); got != "42" {
		t.Errorf("text format: %q", got)
	}
	for _, bad := range [][]byte{{1, 2, 3}, nil} {
		if _, err := BindText(KeyInt, 1, bad); err == nil {
			t.Errorf("binary int of %d bytes accepted", len(bad))
		}
	}
	if _, err := BindText(KeyInt, 2, []byte{1}); err == nil {
		t.Error("format code 2 accepted")
	}
}
