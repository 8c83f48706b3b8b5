package shard

import (
	"hash/fnv"
	"math/bits"
)

// SplitMix64 is the splitmix64 generator of Steele, Lea and Flood (2014),
// implemented here so that orders derived from a seed are identical on every
// Go version and platform (math/rand/v2 does not promise stable streams).
// Its constants are fixed forever; a golden test pins its output.
type SplitMix64 struct{ state uint64 }

// NewSplitMix64 returns a generator seeded with seed.
func NewSplitMix64(seed uint64) *SplitMix64 { return &SplitMix64{state: seed} }

// Uint64 returns the next 64 random bits.
func (r *SplitMix64) Uint64() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// IntN returns a uniform integer in [0, n) by Lemire's multiply-shift method
// with rejection, so it has no modulo bias. It panics if n <= 0 (a
// programmer error, never caused by data).
func (r *SplitMix64) IntN(n int) int {
	if n <= 0 {
		panic("shard: IntN with n <= 0")
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// Shuffle permutes n elements by Fisher-Yates, from the last element down,
// calling swap(i, j) for each exchange.
func (r *SplitMix64) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		j := r.IntN(i + 1)
		swap(i, j)
	}
}

// Purposes keep the random streams for different decisions independent.
const (
	purposeOrder  uint64 = 1 // example and batch order of an epoch
	purposeOffset uint64 = 2 // TBPTT stream offset of an epoch
)

// deriveSeed mixes the user seed, the epoch and a purpose into the seed of
// one independent stream, by feeding them through splitmix64 in turn.
func deriveSeed(seed, epoch, purpose uint64) uint64 {
	r := SplitMix64{state: seed}
	a := r.Uint64()
	r.state ^= epoch
	b := r.Uint64()
	r.state ^= purpose
	return a ^ bits.RotateLeft64(b, 17) ^ r.Uint64()
}

// fingerprint hashes shape parameters (FNV-1a, little-endian words) so a
// cursor can tell the source it was saved from.
func fingerprint(words ...uint64) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	for _, w := range words {
		for i := range buf {
			buf[i] = byte(w >> (8 * i))
		}
		h.Write(buf[:])
	}
	return h.Sum64()
}
