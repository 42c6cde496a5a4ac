package routing

import "testing"

// Golden values from PostgreSQL 15 itself, e.g.
// SELECT hashint8extended(42, 8816678312871386365), where the seed is
// HASH_PARTITION_SEED. (test/routing_hash_test.go checks placement against
// real hash-partitioned tables.)
func TestHashGolden(t *testing.T) {
	ints := []struct {
		v    int64
		want int64
	}{
		{0, -4403592609991167795},
		{1, 5968994663651403477},
		{-1, -5017072347659237694},
		{42, 7363975540656877951},
		{-42, 6660635123915733087},
		{2147483647, -6050265599104649060},
		{-2147483648, 4938542303000433043},
		{4294967296, 5968994663651403477},
		{9223372036854775807, 4938542303000433043},
		{-9223372036854775808, -6050265599104649060},
	}
	for _, tc := range ints {
		if got := int64(HashInt(tc.v)); got != tc.want {
			t.Errorf("HashInt(%d) = %d, want %d", tc.v, got, tc.want)
		}
	}
	texts := []struct {
		v    string
		want int64
	}{
		{"", -5700645584453517373},
		{"a", -6705225459120232837},
		{"abcd", 4029384952263848046},
		{"123456789012", 7684977364204133850},
		{"naïve café", -312925380848054187},
		{"user-42", 646029547852301266},
	}
	for _, tc := range texts {
		if got := int64(HashText(tc.v)); got != tc.want {
			t.Errorf("HashText(%q) = %d, want %d", tc.v, got, tc.want)
		}
	}
	uuids := []struct {
		v    [16]byte
		want int64
	}{
		{[16]byte{}, -5281082146396728638},
		{[16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}, 424513190990560493},
	}
	for _, tc := range uuids {
		if got := int64(HashUUID(tc.v)); got != tc.want {
			t.Errorf("HashUUID(%x) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestPartitionIndexRange(t *testing.T) {
	for _, m := range []int{1, 2, 3, 16, 256} {
		for v := int64(-1000); v < 1000; v++ {
			if i := PartitionIndex(HashInt(v), m); i < 0 || i >= m {
				t.Fatalf("PartitionIndex(HashInt(%d), %d) = %d", v, m, i)
			}
		}
	}
}

func BenchmarkHash(b *testing.B) {
	b.Run("int", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			PartitionIndex(HashInt(123456789), 4)
		}
	})
	b.Run("text", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			PartitionIndex(HashText("user-123456789"), 4)
		}
	})
}
