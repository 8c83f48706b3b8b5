package shard

// LastBatch says what happens to a bucket's last, partial batch.
type LastBatch int

const (
	// KeepLast keeps each bucket's last partial batch (the default), so every
	// example is seen exactly once per epoch.
	KeepLast LastBatch = iota
	// DropLast drops each bucket's last partial batch (fewer than BatchSize
	// examples per bucket are skipped each epoch; which ones changes with the
	// shuffle).
	DropLast
)

// SamplerConfig configures the global batch order.
type SamplerConfig struct {
	// BatchSize is the global batch size, summed over all ranks. Required.
	BatchSize int
	// Seed, with the epoch number, determines the order.
	Seed uint64
	// NoShuffle keeps dataset order within buckets and bucket order between
	// batches (for evaluation). The default shuffles.
	NoShuffle bool
	// Last is the partial-batch rule; the default is KeepLast.
	Last LastBatch
}

// Validate reports whether the configuration is usable.
func (c SamplerConfig) Validate() error {
	if c.BatchSize <= 0 {
		return configErr("BatchSize %d must be positive", c.BatchSize)
	}
	if c.Last != KeepLast && c.Last != DropLast {
		return configErr("Last %d is neither KeepLast nor DropLast", c.Last)
	}
	return nil
}

// Sampler computes, from (seed, epoch), the order of global batches of an
// epoch. The order depends only on the dataset size, the bucket of each
// example and the config, never on the number of workers: workers cut each
// global batch with Span. It is pure: no I/O, no clocks.
//
// The rule for epoch e, with rng = splitmix64(deriveSeed(Seed, e)):
//  1. for each bucket in ascending bucket id, shuffle its member indices
//     (ascending before the shuffle) and cut them into batches of BatchSize,
//     the last one partial (kept or dropped by Last);
//  2. shuffle the list of all batches from all buckets.
//
// With NoShuffle both shuffles are skipped.
type Sampler struct {
	cfg     SamplerConfig
	n       int
	buckets [][]int
	fp      uint64
	nb      int
}

// NewSampler returns a sampler over n examples. bucketOf gives the bucket id
// (0..k-1) of each example; nil puts every example in one bucket.
func NewSampler(n int, bucketOf []int, cfg SamplerConfig) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, configErr("sampler over %d examples", n)
	}
	if bucketOf != nil && len(bucketOf) != n {
		return nil, configErr("bucketOf has %d entries for %d examples", len(bucketOf), n)
	}
	s := &Sampler{cfg: cfg, n: n}
	words := []uint64{uint64(n), uint64(cfg.BatchSize), uint64(cfg.Last), b2u(cfg.NoShuffle)}
	if bucketOf == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		s.buckets = [][]int{all}
	} else {
		for i, b := range bucketOf {
			if b < 0 || b >= n {
				return nil, configErr("bucket id %d of example %d outside [0, %d)", b, i, n)
			}
			for len(s.buckets) <= b {
				s.buckets = append(s.buckets, nil)
			}
			s.buckets[b] = append(s.buckets[b], i)
			words = append(words, uint64(b))
		}
	}
	s.fp = fingerprint(words...)
	for _, m := range s.buckets {
		s.nb += len(m) / cfg.BatchSize
		if cfg.Last == KeepLast && len(m)%cfg.BatchSize != 0 {
			s.nb++
		}
	}
	if s.nb == 0 {
		return nil, configErr("no batch of %d fits %d examples with DropLast", cfg.BatchSize, n)
	}
	return s, nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// NumBatches returns the number of global batches in every epoch.
func (s *Sampler) NumBatches() int { return s.nb }

// Fingerprint identifies the dataset size, bucket layout and config (not the
// seed); cursors carry it to refuse a mismatched resume.
func (s *Sampler) Fingerprint() uint64 { return s.fp }

// Epoch returns the global batches of epoch e, each a list of example
// indices.
func (s *Sampler) Epoch(e uint64) [][]int {
	rng := NewSplitMix64(deriveSeed(s.cfg.Seed, e, purposeOrder))
	bs := s.cfg.BatchSize
	batches := make([][]int, 0, s.nb)
	for _, members := range s.buckets {
		m := append([]int(nil), members...)
		if !s.cfg.NoShuffle {
			rng.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
		}
		for lo := 0; lo < len(m); lo += bs {
			hi := min(lo+bs, len(m))
			if hi-lo < bs && s.cfg.Last == DropLast {
				break
			}
			batches = append(batches, m[lo:hi:hi])
		}
	}
	if !s.cfg.NoShuffle {
		rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
	}
	return batches
}

// Span returns the half-open range [lo, hi) of a global batch of n rows that
// rank takes out of world ranks. Ranks get contiguous, balanced slices in rank
// order: the first n%world ranks get one row more than the others, so the
// union over ranks is exactly the batch and sizes differ by at most one (a
// rank gets zero rows when n < world). It panics on rank outside [0, world),
// a programmer error.
func Span(n, rank, world int) (lo, hi int) {
	if world <= 0 || rank < 0 || rank >= world {
		panic("shard: Span with rank outside [0, world)")
	}
	q, r := n/world, n%world
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// RankSizes returns the rows each of world ranks takes from a batch of n.
func RankSizes(n, world int) []int {
	out := make([]int, world)
	for r := range out {
		lo, hi := Span(n, r, world)
		out[r] = hi - lo
	}
	return out
}
