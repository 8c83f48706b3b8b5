package shard

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// uniformJSONL writes n token sequences with lengths uniform over [lo, hi].
func uniformJSONL(n, lo, hi int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 2))
	var sb strings.Builder
	for i := 0; i < n; i++ {
		L := lo + rng.IntN(hi-lo+1)
		sb.WriteString(`{"input":[`)
		for t := 0; t < L; t++ {
			if t > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprint(&sb, rng.IntN(100))
		}
		fmt.Fprintf(&sb, "],\"target\":%d}\n", i%2)
	}
	return sb.String()
}

// paddingFractions returns the padded fraction of one epoch without and
// with bucketing.
func paddingFractions(tb testing.TB, lengths []int, batch int, bc BucketConfig) (plain, bucketed float64) {
	tb.Helper()
	cfg := SamplerConfig{BatchSize: batch, Seed: 1}
	s, err := NewSampler(len(lengths), nil, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	plain = PaddingFraction(lengths, s.Epoch(0))
	bo, _, err := bc.Assign(lengths)
	if err != nil {
		tb.Fatal(err)
	}
	if s, err = NewSampler(len(lengths), bo, cfg); err != nil {
		tb.Fatal(err)
	}
	return plain, PaddingFraction(lengths, s.Epoch(0))
}

// On lengths uniform over 5..500, batches of 32: unbucketed padding is about
// 48%, 16 quantile buckets bring it to about 5.5%.
func TestBucketingCutsPadding(t *testing.T) {
	exs, _, err := ReadJSONL(strings.NewReader(uniformJSONL(4000, 5, 500, 1)), "uniform.jsonl", JSONLConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lengths := Lengths(exs)
	plain, bucketed := paddingFractions(t, lengths, 32, BucketConfig{})
	t.Logf("padded fraction: unbucketed %.3f, 16 quantile buckets %.3f", plain, bucketed)
	if plain < 0.40 || bucketed > 0.15*plain {
		t.Fatalf("padding unbucketed %.3f, bucketed %.3f: want bucketed < 15%% of unbucketed", plain, bucketed)
	}
	// The batches a Loader hands out pad exactly as PaddingFraction says.
	l, err := NewLoader(exs, LoaderConfig{Sampler: SamplerConfig{BatchSize: 32, Seed: 1}, Buckets: &BucketConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	var pad, total int
	for i := 0; i < l.Sampler().NumBatches(); i++ {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		p, n := b.Padding()
		pad, total = pad+p, total+n
	}
	if got := float64(pad) / float64(total); math.Abs(got-bucketed) > 1e-12 {
		t.Fatalf("loader padding %.4f, sampler says %.4f", got, bucketed)
	}
}

func TestBucketAssign(t *testing.T) {
	lengths := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	orig := slices.Clone(lengths)
	bo, bounds, err := BucketConfig{Boundaries: []int{3, 7}}.Assign(lengths)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bo, []int{0, 0, 0, 1, 1, 1, 1, 2, 2, 2}) || !slices.Equal(bounds, []int{3, 7}) {
		t.Fatalf("buckets %v bounds %v", bo, bounds)
	}
	if !slices.Equal(lengths, orig) {
		t.Fatal("Assign modified lengths")
	}
	if q := QuantileBoundaries(lengths, 2); !slices.Equal(q, []int{6}) {
		t.Fatalf("median boundary %v", q)
	}
	if q := QuantileBoundaries([]int{5, 5, 5, 5}, 4); !slices.Equal(q, []int{5}) {
		t.Fatalf("constant lengths boundaries %v", q)
	}
	if _, _, err := (BucketConfig{Boundaries: []int{4, 4}}).Assign(lengths); !errors.Is(err, ErrConfig) {
		t.Fatalf("non-ascending boundaries: err %v", err)
	}
}

func BenchmarkPadding(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := make([]int, 20000)
	for i := range lengths {
		lengths[i] = 5 + rng.IntN(496)
	}
	var plain, bucketed float64
	for b.Loop() {
		plain, bucketed = paddingFractions(b, lengths, 32, BucketConfig{})
	}
	b.ReportMetric(plain, "padfrac-unbucketed")
	b.ReportMetric(bucketed, "padfrac-bucketed")
}

func BenchmarkLoaderBucketed(b *testing.B) {
	exs := syntheticExamples(20000, 5, 500, 3)
	l, err := NewLoader(exs, LoaderConfig{Sampler: SamplerConfig{BatchSize: 32, Seed: 1}, Buckets: &BucketConfig{}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := l.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}
