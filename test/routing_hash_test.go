package test

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/routing"
)

// TestHashMatchesPostgres checks routing's hash method against PostgreSQL's
// own PARTITION BY HASH: for every supported key type and a few moduli,
// each value is inserted into a hash-partitioned table and the partition
// PostgreSQL put it in must be the one routing computes.
func TestHashMatchesPostgres(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, backend.SuperURL("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var ints []int64
	for i := int64(-300); i <= 300; i++ {
		ints = append(ints, i)
	}
	ints = append(ints, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32, 1<<32, -(1 << 32), 1<<40+7, -(1<<40 + 7), math.MaxInt16, math.MinInt16)
	var texts []string
	for i := range 300 {
		texts = append(texts, "user-"+strconv.Itoa(i))
	}
	texts = append(texts, "", "a", "ab", "abc", "abcd", "12345678901", "123456789012", "1234567890123",
		"naïve café", "日本語のテキスト", strings.Repeat("x", 1000), "with 'quote'", "tab\there")
	uuids := make([][16]byte, 200)
	for i := range uuids {
		rand.Read(uuids[i][:])
	}
	uuids = append(uuids, [16]byte{}, [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	type keyType struct {
		name   string
		values []any
		hash   func(v any) uint64
	}
	var int2s, int4s, int8s, textVals, uuidVals []any
	for _, v := range ints {
		int8s = append(int8s, v)
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			int4s = append(int4s, int32(v))
		}
		if v >= math.MinInt16 && v <= math.MaxInt16 {
			int2s = append(int2s, int16(v))
		}
	}
	for _, s := range texts {
		textVals = append(textVals, s)
	}
	for _, u := range uuids {
		uuidVals = append(uuidVals, u)
	}
	intHash := func(v any) uint64 {
		switch v := v.(type) {
		case int16:
			return routing.HashInt(int64(v))
		case int32:
			return routing.HashInt(int64(v))
		default:
			return routing.HashInt(v.(int64))
		}
	}
	types := []keyType{
		{"smallint", int2s, intHash},
		{"integer", int4s, intHash},
		{"bigint", int8s, intHash},
		{"text", textVals, func(v any) uint64 { return routing.HashText(v.(string)) }},
		{"varchar(2000)", textVals, func(v any) uint64 { return routing.HashText(v.(string)) }},
		{"uuid", uuidVals, func(v any) uint64 { return routing.HashUUID(v.([16]byte)) }},
	}
	for _, kt := range types {
		for _, modulus := range []int{2, 3, 7} {
			t.Run(fmt.Sprintf("%s/modulus_%d", kt.name, modulus), func(t *testing.T) {
				table := fmt.Sprintf("hp_%s_%d", strings.NewReplacer("(", "", ")", "").Replace(kt.name), modulus)
				ddl := fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (k %[2]s) PARTITION BY HASH (k);", table, kt.name)
				for r := range modulus {
					ddl += fmt.Sprintf("CREATE TABLE %[1]s_r%[2]d PARTITION OF %[1]s FOR VALUES WITH (MODULUS %[3]d, REMAINDER %[2]d);", table, r, modulus)
				}
				if _, err := conn.Exec(ctx, ddl); err != nil {
					t.Fatal(err)
				}
				defer conn.Exec(ctx, "DROP TABLE "+table)
				want := map[string]int{} // value as text -> remainder routing computes
				for _, v := range kt.values {
					var key string
					if err := conn.QueryRow(ctx, "INSERT INTO "+table+" VALUES ($1) RETURNING k::text", v).Scan(&key); err != nil {
						t.Fatalf("insert %v: %v", v, err)
					}
					want[key] = routing.PartitionIndex(kt.hash(v), modulus)
				}
				rows, err := conn.Query(ctx, "SELECT k::text, tableoid::regclass::text FROM "+table)
				if err != nil {
					t.Fatal(err)
				}
				n, bad := 0, 0
				for rows.Next() {
					var key, part string
					if err := rows.Scan(&key, &part); err != nil {
						t.Fatal(err)
					}
					n++
					got, _ := strconv.Atoi(part[strings.LastIndex(part, "_r")+2:])
					if got != want[key] {
						bad++
						if bad <= 5 {
							t.Errorf("key %q: PostgreSQL put it in remainder %d, routing says %d", key, got, want[key])
						}
					}
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				if n != len(kt.values) || bad > 0 {
					t.Fatalf("%d rows checked (want %d), %d placed differently", n, len(kt.values), bad)
				}
			})
		}
	}
}
