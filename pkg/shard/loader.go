package shard

import "fmt"

// LoaderConfig configures a Loader.
type LoaderConfig struct {
	Sampler SamplerConfig
	// Buckets groups examples by input length; nil disables bucketing, so
	// batches mix all lengths.
	Buckets *BucketConfig
	// Rank of this worker, in [0, World).
	Rank int
	// World is the number of workers; 0 means 1.
	World int
}

// Validate reports whether the configuration is usable.
func (c LoaderConfig) Validate() error {
	if err := c.Sampler.Validate(); err != nil {
		return err
	}
	if c.Buckets != nil {
		if err := c.Buckets.Validate(); err != nil {
			return err
		}
	}
	w := max(c.World, 1)
	if c.World < 0 || c.Rank < 0 || c.Rank >= w {
		return configErr("rank %d of world %d", c.Rank, c.World)
	}
	return nil
}

// Loader yields one rank's share of each global batch of a Dataset, in the
// order a Sampler gives, and can save and restore its position. It is not
// safe for concurrent use.
type Loader struct {
	ds          Dataset
	s           *Sampler
	seed        uint64
	rank, world int
	boundaries  []int

	epoch   uint64
	pos     int
	batches [][]int // batches of epoch, computed on first use
}

// NewLoader returns a loader positioned at the start of epoch 0.
func NewLoader(ds Dataset, cfg LoaderConfig) (*Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var bucketOf, bounds []int
	if cfg.Buckets != nil {
		var err error
		if bucketOf, bounds, err = cfg.Buckets.Assign(Lengths(ds)); err != nil {
			return nil, err
		}
	}
	s, err := NewSampler(ds.Len(), bucketOf, cfg.Sampler)
	if err != nil {
		return nil, err
	}
	return &Loader{ds: ds, s: s, seed: cfg.Sampler.Seed, rank: cfg.Rank, world: max(cfg.World, 1), boundaries: bounds}, nil
}

// Sampler returns the sampler that orders the batches.
func (l *Loader) Sampler() *Sampler { return l.s }

// Boundaries returns the bucket boundaries in use (nil without bucketing).
func (l *Loader) Boundaries() []int { return l.boundaries }

// GlobalBatch returns the example indices of the next global batch, without
// advancing.
func (l *Loader) GlobalBatch() []int {
	l.fill()
	return l.batches[l.pos]
}

func (l *Loader) fill() {
	if l.batches == nil {
		l.batches = l.s.Epoch(l.epoch)
	}
}

// Next returns this rank's contiguous slice (see Span) of the next global
// batch, collated, and advances. After the last batch of an epoch the next
// epoch begins.
func (l *Loader) Next() (*Batch, error) {
	idx := l.GlobalBatch()
	lo, hi := Span(len(idx), l.rank, l.world)
	mine := idx[lo:hi]
	exs := make([]Example, len(mine))
	for i, j := range mine {
		exs[i] = l.ds.Example(j)
	}
	b, err := Collate(exs)
	if err != nil {
		return nil, fmt.Errorf("epoch %d batch %d: %w", l.epoch, l.pos, err)
	}
	b.Epoch, b.Step = l.epoch, uint64(l.pos)
	b.Indices = append([]int(nil), mine...)
	b.GlobalB = len(idx)
	b.RankSizes = RankSizes(len(idx), l.world)
	l.pos++
	if l.pos == len(l.batches) {
		l.epoch, l.pos, l.batches = l.epoch+1, 0, nil
	}
	return b, nil
}

// Cursor returns the position of the next unseen global batch.
func (l *Loader) Cursor() Cursor {
	return Cursor{Seed: l.seed, Fingerprint: l.s.Fingerprint(), Epoch: l.epoch, Batch: uint64(l.pos)}
}

// Restore moves the loader to c, which may come from a loader with another
// rank or world size over the same data and sampler config.
func (l *Loader) Restore(c Cursor) error {
	if err := c.checkSource(l.seed, l.s.Fingerprint()); err != nil {
		return err
	}
	if len(c.Offsets) != 0 {
		return fmt.Errorf("%w: cursor has %d stream offsets; a loader has none", ErrCursorMismatch, len(c.Offsets))
	}
	if c.Batch >= uint64(l.s.NumBatches()) {
		return fmt.Errorf("%w: cursor batch %d, epoch has %d", ErrCursorMismatch, c.Batch, l.s.NumBatches())
	}
	l.epoch, l.pos, l.batches = c.Epoch, int(c.Batch), nil
	return nil
}
