package shard

import "sort"

// BucketConfig groups sequences by length so that a batch, drawn from one
// bucket, pads little.
type BucketConfig struct {
	// Boundaries are inclusive upper lengths, strictly ascending: bucket i
	// holds lengths in (Boundaries[i-1], Boundaries[i]], and lengths above
	// the last boundary go to a final bucket. When nil, boundaries are
	// derived from length quantiles.
	Boundaries []int
	// Buckets is the number of quantile buckets when Boundaries is nil.
	// Default 16: on lengths uniform over 5..500 with batches of 32 it cuts
	// padding from about 48% to about 5.5%, while each bucket still holds
	// many batches to shuffle.
	Buckets int
}

// DefaultBuckets is the default number of quantile buckets.
const DefaultBuckets = 16

// Validate reports whether the configuration is usable.
func (c BucketConfig) Validate() error {
	for i := 1; i < len(c.Boundaries); i++ {
		if c.Boundaries[i] <= c.Boundaries[i-1] {
			return configErr("bucket boundaries %v not strictly ascending", c.Boundaries)
		}
	}
	if c.Buckets < 0 {
		return configErr("Buckets %d negative", c.Buckets)
	}
	return nil
}

// Assign returns the bucket id of every length and the boundaries used.
func (c BucketConfig) Assign(lengths []int) (bucketOf, boundaries []int, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	boundaries = c.Boundaries
	if boundaries == nil {
		k := c.Buckets
		if k == 0 {
			k = DefaultBuckets
		}
		boundaries = QuantileBoundaries(lengths, k)
	}
	bucketOf = make([]int, len(lengths))
	for i, n := range lengths {
		bucketOf[i] = sort.SearchInts(boundaries, n)
	}
	return bucketOf, boundaries, nil
}

// QuantileBoundaries returns up to k-1 strictly ascending boundaries that cut
// lengths into k groups of about equal count: boundary q is the length at
// rank q*len/k of the sorted lengths (duplicates merged). The largest length
// falls in the final bucket, above every boundary, only if it is larger than
// the last boundary.
func QuantileBoundaries(lengths []int, k int) []int {
	if len(lengths) == 0 || k <= 1 {
		return nil
	}
	s := append([]int(nil), lengths...)
	sort.Ints(s)
	var out []int
	for q := 1; q < k; q++ {
		v := s[q*len(s)/k]
		if len(out) == 0 || v > out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// PaddingFraction returns the fraction of padded cells when each batch is
// padded to its longest member: 1 - sum(lengths) / sum(rows*max length).
func PaddingFraction(lengths []int, batches [][]int) float64 {
	var real, total int
	for _, b := range batches {
		m := 0
		for _, i := range b {
			real += lengths[i]
			m = max(m, lengths[i])
		}
		total += m * len(b)
	}
	if total == 0 {
		return 0
	}
	return 1 - float64(real)/float64(total)
}
