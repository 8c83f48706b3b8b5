package shard

import (
	"errors"
	"slices"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{},
		{Seed: 1, Fingerprint: 2, Epoch: 3, Batch: 4},
		{Seed: ^uint64(0), Epoch: 1 << 40, Offsets: []int64{0, 17, 1 << 50, -1}},
	} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Cursor
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if got.Seed != c.Seed || got.Fingerprint != c.Fingerprint || got.Epoch != c.Epoch || got.Batch != c.Batch || !slices.Equal(got.Offsets, c.Offsets) {
			t.Fatalf("round trip %+v -> %+v", c, got)
		}
	}
}

// Every single-bit flip and every truncation must be caught.
func TestCursorCorruption(t *testing.T) {
	b, _ := Cursor{Seed: 5, Epoch: 2, Batch: 9, Offsets: []int64{3, 4}}.MarshalBinary()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			bad := slices.Clone(b)
			bad[i] ^= 1 << bit
			var c Cursor
			if err := c.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip byte %d bit %d: err %v", i, bit, err)
			}
		}
	}
	for n := 0; n < len(b); n++ {
		var c Cursor
		if err := c.UnmarshalBinary(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err %v", n, err)
		}
	}
}

func FuzzCursorUnmarshal(f *testing.F) {
	good, _ := Cursor{Seed: 1, Epoch: 2, Batch: 3, Offsets: []int64{7}}.MarshalBinary()
	f.Add(good)
	f.Add([]byte("RCUR"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Cursor
		if err := c.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := c.MarshalBinary()
		if err != nil || !slices.Equal(again, b) {
			t.Fatalf("accepted cursor does not re-encode to its bytes")
		}
	})
}

// Iterate k batches with one world size, save the cursor, restore into
// loaders with another world size: the global batches continue exactly.
func TestLoaderResumeOtherWorld(t *testing.T) {
	exs := syntheticExamples(150, 3, 40, 5)
	cfg := func(rank, world int) LoaderConfig {
		return LoaderConfig{Sampler: SamplerConfig{BatchSize: 12, Seed: 77}, Buckets: &BucketConfig{Buckets: 3}, Rank: rank, World: world}
	}
	ref, err := NewLoader(exs, cfg(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	var want [][]int
	for i := 0; i < 30; i++ {
		b, _ := ref.Next()
		want = append(want, b.Indices)
	}
	for _, tc := range []struct{ before, after, k int }{{2, 4, 5}, {4, 1, 13}, {1, 3, 12}, {3, 2, 0}} {
		ls := loaders(t, exs, tc.before, cfg)
		for i := 0; i < tc.k; i++ {
			for _, l := range ls {
				if _, err := l.Next(); err != nil {
					t.Fatal(err)
				}
			}
		}
		saved, _ := ls[0].Cursor().MarshalBinary()
		var c Cursor
		if err := c.UnmarshalBinary(saved); err != nil {
			t.Fatal(err)
		}
		resumed := loaders(t, exs, tc.after, cfg)
		for _, l := range resumed {
			if err := l.Restore(c); err != nil {
				t.Fatal(err)
			}
		}
		for i := tc.k; i < len(want); i++ {
			var union []int
			for _, l := range resumed {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				union = append(union, b.Indices...)
			}
			if !slices.Equal(union, want[i]) {
				t.Fatalf("W %d->%d after %d: batch %d is %v, want %v", tc.before, tc.after, tc.k, i, union, want[i])
			}
		}
	}
}

func loaders(t *testing.T, ds Dataset, world int, cfg func(rank, world int) LoaderConfig) []*Loader {
	t.Helper()
	ls := make([]*Loader, world)
	for r := range ls {
		l, err := NewLoader(ds, cfg(r, world))
		if err != nil {
			t.Fatal(err)
		}
		ls[r] = l
	}
	return ls
}

func TestLoaderRestoreMismatch(t *testing.T) {
	exs := syntheticExamples(40, 1, 9, 2)
	l, _ := NewLoader(exs, LoaderConfig{Sampler: SamplerConfig{BatchSize: 4, Seed: 1}})
	other, _ := NewLoader(exs[:39], LoaderConfig{Sampler: SamplerConfig{BatchSize: 4, Seed: 1}})
	otherSeed, _ := NewLoader(exs, LoaderConfig{Sampler: SamplerConfig{BatchSize: 4, Seed: 2}})
	for name, c := range map[string]Cursor{
		"other data":  other.Cursor(),
		"other seed":  otherSeed.Cursor(),
		"past end":    {Seed: 1, Fingerprint: l.Sampler().Fingerprint(), Batch: 10},
		"has streams": {Seed: 1, Fingerprint: l.Sampler().Fingerprint(), Offsets: []int64{0}},
	} {
		if err := l.Restore(c); !errors.Is(err, ErrCursorMismatch) {
			t.Errorf("%s: err %v, want ErrCursorMismatch", name, err)
		}
	}
}
