package routing

import (
	"encoding/binary"
	"math/bits"
)

// PostgreSQL's hash partitioning, reproduced exactly so that a key sharded
// with method hash lands where PARTITION BY HASH (key) with MODULUS n would
// put it: remainder i is the i-th shard of the rule. The functions follow
// src/common/hashfn.c (Bob Jenkins' lookup3 with a 64-bit seed) and the
// type-specific *extended hash functions, on little-endian byte order,
// which is what every PostgreSQL server pgshard talks to uses for this.

// partitionSeed is HASH_PARTITION_SEED from PostgreSQL's partbounds.c.
const partitionSeed uint64 = 0x7A5B22367996DCFD

func mix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func final(a, b, c uint32) (uint32, uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return a, b, c
}

// hashUint32Extended is hash_bytes_uint32_extended.
func hashUint32Extended(k uint32, seed uint64) uint64 {
	a := uint32(0x9e3779b9 + 4 + 3923095)
	b, c := a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = mix(a, b, c)
	}
	a += k
	_, b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// hashBytesExtended is hash_bytes_extended (hash_any_extended).
func hashBytesExtended(k []byte, seed uint64) uint64 {
	a := 0x9e3779b9 + uint32(len(k)) + 3923095
	b, c := a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = mix(a, b, c)
	}
	for len(k) >= 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a, b, c = mix(a, b, c)
		k = k[12:]
	}
	// The last 11 bytes; the lowest byte of c is reserved for the length.
	switch len(k) {
	case 11:
		c += uint32(k[10]) << 24
		fallthrough
	case 10:
		c += uint32(k[9]) << 16
		fallthrough
	case 9:
		c += uint32(k[8]) << 8
		fallthrough
	case 8:
		b += uint32(k[7]) << 24
		fallthrough
	case 7:
		b += uint32(k[6]) << 16
		fallthrough
	case 6:
		b += uint32(k[5]) << 8
		fallthrough
	case 5:
		b += uint32(k[4])
		fallthrough
	case 4:
		a += uint32(k[3]) << 24
		fallthrough
	case 3:
		a += uint32(k[2]) << 16
		fallthrough
	case 2:
		a += uint32(k[1]) << 8
		fallthrough
	case 1:
		a += uint32(k[0])
	}
	_, b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// HashInt is the partition hash of an integer key: hashint8extended, which
// for values in int2 and int4 range equals hashint2extended and
// hashint4extended, so smallint, integer and bigint keys all use it.
func HashInt(v int64) uint64 {
	lo, hi := uint32(v), uint32(v>>32)
	if v >= 0 {
		lo ^= hi
	} else {
		lo ^= ^hi
	}
	return hashUint32Extended(lo, partitionSeed)
}

// HashText is the partition hash of a text or varchar key under a
// deterministic collation (the default): hashtextextended over its bytes
// in the database encoding.
func HashText(s string) uint64 {
	return hashBytesExtended([]byte(s), partitionSeed)
}

// HashUUID is the partition hash of a uuid key: uuid_hash_extended over
// its 16 bytes.
func HashUUID(u [16]byte) uint64 {
	return hashBytesExtended(u[:], partitionSeed)
}

// PartitionIndex is the remainder PostgreSQL computes for a one-column
// partition key with hash h and the given modulus: the combined row hash
// (hash_combine64 of 0 and h) modulo the modulus.
func PartitionIndex(h uint64, modulus int) int {
	row := h + 0x49a0f4dd15e5a8e3 // hash_combine64(0, h)
	return int(row % uint64(modulus))
}
