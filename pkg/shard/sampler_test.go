package shard

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSpan(t *testing.T) {
	for _, tc := range []struct{ n, world int }{{0, 1}, {1, 4}, {7, 3}, {8, 4}, {32, 1}, {33, 4}, {3, 8}} {
		next := 0
		sizes := RankSizes(tc.n, tc.world)
		for r := 0; r < tc.world; r++ {
			lo, hi := Span(tc.n, r, tc.world)
			if lo != next || hi < lo || hi-lo != sizes[r] {
				t.Fatalf("n=%d world=%d rank %d: [%d,%d) after %d, size %d", tc.n, tc.world, r, lo, hi, next, sizes[r])
			}
			next = hi
		}
		if next != tc.n {
			t.Fatalf("n=%d world=%d: spans cover %d", tc.n, tc.world, next)
		}
		if slices.Max(sizes)-slices.Min(sizes) > 1 {
			t.Fatalf("n=%d world=%d: unbalanced %v", tc.n, tc.world, sizes)
		}
	}
}

// randomBuckets gives n examples bucket ids in [0, k), from a seeded RNG.
func randomBuckets(n, k int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]int, n)
	for i := range out {
		out[i] = rng.IntN(k)
	}
	return out
}

func TestSamplerExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, bs, k   int
		last       LastBatch
		noShuffle  bool
		wantDrops  bool
		wantSorted bool
	}{
		{name: "one bucket keep", n: 103, bs: 10, k: 1},
		{name: "buckets keep", n: 500, bs: 16, k: 7},
		{name: "buckets drop", n: 500, bs: 16, k: 7, last: DropLast, wantDrops: true},
		{name: "no shuffle", n: 50, bs: 8, k: 1, noShuffle: true, wantSorted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bo := randomBuckets(tc.n, tc.k, 3)
			orig := slices.Clone(bo)
			s, err := NewSampler(tc.n, bo, SamplerConfig{BatchSize: tc.bs, Seed: 9, Last: tc.last, NoShuffle: tc.noShuffle})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bo, orig) {
				t.Fatal("NewSampler modified bucketOf")
			}
			for e := uint64(0); e < 3; e++ {
				batches := s.Epoch(e)
				if len(batches) != s.NumBatches() {
					t.Fatalf("epoch %d: %d batches, NumBatches %d", e, len(batches), s.NumBatches())
				}
				seen := make([]int, tc.n)
				var flat []int
				for _, b := range batches {
					if len(b) == 0 || len(b) > tc.bs || (tc.last == DropLast && len(b) != tc.bs) {
						t.Fatalf("batch of %d", len(b))
					}
					for _, i := range b {
						if bo[i] != bo[b[0]] {
							t.Fatalf("batch mixes buckets %d and %d", bo[i], bo[b[0]])
						}
						seen[i]++
						flat = append(flat, i)
					}
				}
				dropped := 0
				for i, c := range seen {
					if c > 1 {
						t.Fatalf("example %d seen %d times", i, c)
					}
					dropped += 1 - c
				}
				if (dropped > 0) != tc.wantDrops || dropped >= tc.k*tc.bs {
					t.Fatalf("%d examples dropped", dropped)
				}
				if tc.wantSorted && !slices.IsSorted(flat) {
					t.Fatalf("NoShuffle order %v", flat)
				}
			}
		})
	}
}

func TestSamplerEpochsDifferAndRepeat(t *testing.T) {
	mk := func() *Sampler {
		s, err := NewSampler(64, nil, SamplerConfig{BatchSize: 8, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk(), mk()
	if !equalBatches(a.Epoch(5), b.Epoch(5)) {
		t.Fatal("same seed and epoch gave different orders")
	}
	if equalBatches(a.Epoch(0), a.Epoch(1)) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
}

func equalBatches(a, b [][]int) bool {
	return slices.EqualFunc(a, b, func(x, y []int) bool { return slices.Equal(x, y) })
}

func TestSamplerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		bo   []int
		cfg  SamplerConfig
	}{
		{"zero batch", 10, nil, SamplerConfig{}},
		{"no examples", 0, nil, SamplerConfig{BatchSize: 1}},
		{"bucketOf length", 3, []int{0}, SamplerConfig{BatchSize: 1}},
		{"negative bucket", 2, []int{0, -1}, SamplerConfig{BatchSize: 1}},
		{"drop everything", 3, nil, SamplerConfig{BatchSize: 4, Last: DropLast}},
		{"bad last", 3, nil, SamplerConfig{BatchSize: 1, Last: 7}},
	} {
		if _, err := NewSampler(tc.n, tc.bo, tc.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", tc.name, err)
		}
	}
}

// The central sharding property: the union over ranks of what each rank
// receives is the global batch, identical for every world size.
func TestLoaderWorldIndependent(t *testing.T) {
	exs := syntheticExamples(230, 5, 60, 11)
	global := func(world int) [][]int {
		ls := make([]*Loader, world)
		for r := range ls {
			l, err := NewLoader(exs, LoaderConfig{Sampler: SamplerConfig{BatchSize: 16, Seed: 4}, Buckets: &BucketConfig{Buckets: 4}, Rank: r, World: world})
			if err != nil {
				t.Fatal(err)
			}
			ls[r] = l
		}
		var out [][]int
		for step := 0; step < 40; step++ { // crosses an epoch boundary
			var union []int
			for r, l := range ls {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b.B != len(b.Indices) || b.B != b.RankSizes[r] || b.GlobalB != sum(b.RankSizes) {
					t.Fatalf("rank %d: B %d, %d indices, sizes %v, global %d", r, b.B, len(b.Indices), b.RankSizes, b.GlobalB)
				}
				checkBatch(t, b, exs)
				union = append(union, b.Indices...)
			}
			out = append(out, union)
		}
		return out
	}
	want := global(1)
	for _, w := range []int{2, 3, 4} {
		if got := global(w); !equalBatches(got, want) {
			t.Fatalf("world %d sees different global batches", w)
		}
	}
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// syntheticExamples makes n token examples with lengths uniform in
// [lo, hi], token values encoding (example, step) and label i%3.
func syntheticExamples(n, lo, hi int, seed uint64) Examples {
	rng := rand.New(rand.NewPCG(seed, 1))
	exs := make(Examples, n)
	for i := range exs {
		L := lo + rng.IntN(hi-lo+1)
		toks := make([]int32, L)
		for t := range toks {
			toks[t] = int32(i*1000 + t + 1)
		}
		exs[i] = Example{Input: Seq{Tokens: toks}, Label: i % 3}
	}
	return exs
}

// checkBatch verifies the time-major layout and padding of b against exs.
func checkBatch(t *testing.T, b *Batch, exs Examples) {
	t.Helper()
	mask := b.Mask()
	for r, i := range b.Indices {
		e := exs[i]
		if b.Lengths[r] != e.Input.Len() || b.Labels[r] != e.Label {
			t.Fatalf("row %d: length %d label %d, example %d has %d, %d", r, b.Lengths[r], b.Labels[r], i, e.Input.Len(), e.Label)
		}
		for step := 0; step < b.T; step++ {
			var want int32
			var wm float32
			if step < e.Input.Len() {
				want, wm = e.Input.Tokens[step], 1
			}
			if got := b.Tokens[step*b.B+r]; got != want || mask[step*b.B+r] != wm {
				t.Fatalf("row %d step %d: token %d mask %v, want %d, %v", r, step, got, mask[step*b.B+r], want, wm)
			}
		}
	}
}
