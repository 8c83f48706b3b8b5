package shard

import (
	"errors"
	"slices"
	"testing"
)

// iota tokens: token i is i, so offsets can be read off the batch.
func iotaTokens(n int) TokenSlice {
	s := make(TokenSlice, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}

func TestStreamsLayout(t *testing.T) {
	src := iotaTokens(103) // usable 102, 4 streams -> segments of 25, 3 windows of 8
	s, err := NewStreams(src, StreamConfig{Streams: 4, Steps: 8})
	if err != nil {
		t.Fatal(err)
	}
	if s.WindowsPerEpoch() != 3 {
		t.Fatalf("windows per epoch %d, want 3", s.WindowsPerEpoch())
	}
	for k := 0; k < 7; k++ {
		b, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		w := k % 3
		if b.Epoch != uint64(k/3) || b.Step != uint64(w) {
			t.Fatalf("batch %d: epoch %d step %d", k, b.Epoch, b.Step)
		}
		for r := 0; r < 4; r++ {
			if b.StreamIDs[r] != r || b.Reset[r] != (w == 0) {
				t.Fatalf("batch %d row %d: stream %d reset %v", k, r, b.StreamIDs[r], b.Reset[r])
			}
			for step := 0; step < 8; step++ {
				want := int32(r*25 + w*8 + step)
				if b.Tokens[step*4+r] != want || b.Targets[step*4+r] != want+1 {
					t.Fatalf("batch %d row %d step %d: %d->%d, want %d->%d", k, r, step, b.Tokens[step*4+r], b.Targets[step*4+r], want, want+1)
				}
			}
		}
	}
}

// Streams with W workers: union of rows is the global batch, row ids name the
// streams, for any W; resuming with another W continues the same windows.
func TestStreamsWorldAndResume(t *testing.T) {
	src := iotaTokens(5000)
	cfg := func(rank, world int) StreamConfig {
		return StreamConfig{Streams: 6, Steps: 10, Seed: 3, RandomOffset: true, Rank: rank, World: world}
	}
	run := func(ss []*Streams, n int) [][]int32 {
		var out [][]int32
		for i := 0; i < n; i++ {
			rows := make([]int32, 6*10)
			for _, s := range ss {
				b, err := s.Next()
				if err != nil {
					t.Fatal(err)
				}
				for r, id := range b.StreamIDs {
					for step := 0; step < b.T; step++ {
						rows[id*10+step] = b.Tokens[step*b.B+r]
					}
				}
			}
			out = append(out, rows)
		}
		return out
	}
	mk := func(world int) []*Streams {
		ss := make([]*Streams, world)
		for r := range ss {
			s, err := NewStreams(src, cfg(r, world))
			if err != nil {
				t.Fatal(err)
			}
			ss[r] = s
		}
		return ss
	}
	want := run(mk(1), 200) // 83 windows/epoch: crosses two epoch boundaries
	if slices.Equal(want[0], want[83]) {
		t.Fatal("random offset did not change between epochs")
	}
	for _, tc := range []struct{ before, after, k int }{{2, 4, 50}, {4, 3, 82}, {1, 2, 83}} {
		ss := mk(tc.before)
		got := run(ss, tc.k)
		c := ss[len(ss)-1].Cursor()
		b, _ := c.MarshalBinary()
		var back Cursor
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		rs := mk(tc.after)
		for _, s := range rs {
			if err := s.Restore(back); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, run(rs, len(want)-tc.k)...)
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("W %d->%d after %d: batch %d differs", tc.before, tc.after, tc.k, i)
			}
		}
	}
}

func TestStreamsErrors(t *testing.T) {
	if _, err := NewStreams(iotaTokens(10), StreamConfig{Streams: 4, Steps: 3}); !errors.Is(err, ErrConfig) {
		t.Errorf("short corpus: err %v", err)
	}
	if _, err := NewStreams(iotaTokens(100), StreamConfig{Streams: 2}); !errors.Is(err, ErrConfig) {
		t.Errorf("zero steps: err %v", err)
	}
	if _, err := NewStreams(iotaTokens(100), StreamConfig{Streams: 2, Steps: 2, Rank: 2, World: 2}); !errors.Is(err, ErrConfig) {
		t.Errorf("bad rank: err %v", err)
	}
	s, _ := NewStreams(iotaTokens(100), StreamConfig{Streams: 2, Steps: 5})
	c := s.Cursor()
	c.Offsets[1]++
	if err := s.Restore(c); !errors.Is(err, ErrCursorMismatch) {
		t.Errorf("tampered offset: err %v", err)
	}
	c = s.Cursor()
	c.Offsets = c.Offsets[:1]
	if err := s.Restore(c); !errors.Is(err, ErrCursorMismatch) {
		t.Errorf("stream count: err %v", err)
	}
	other, _ := NewStreams(iotaTokens(100), StreamConfig{Streams: 2, Steps: 4})
	if err := s.Restore(other.Cursor()); !errors.Is(err, ErrCursorMismatch) {
		t.Errorf("other steps: err %v", err)
	}
}

// With more workers than streams some ranks get no rows, and still work.
func TestStreamsEmptyRank(t *testing.T) {
	s, err := NewStreams(iotaTokens(100), StreamConfig{Streams: 2, Steps: 5, Rank: 2, World: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Next()
	if err != nil || b.B != 0 || len(b.Tokens) != 0 || !slices.Equal(b.RankSizes, []int{1, 1, 0}) {
		t.Fatalf("batch %+v, err %v", b, err)
	}
}

func TestStreamsSeekMatchesIteration(t *testing.T) {
	toks := make(TokenSlice, 1000)
	for i := range toks {
		toks[i] = int32(i % 50)
	}
	for _, ro := range []bool{false, true} {
		cfg := StreamConfig{Streams: 4, Steps: 7, Seed: 3, RandomOffset: ro}
		it, err := NewStreams(toks, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for n := uint64(0); n < 100; n++ {
			want, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			sk, _ := NewStreams(toks, StreamConfig{Streams: 4, Steps: 7, Seed: 3, RandomOffset: ro, Rank: 1, World: 2})
			if err := sk.Seek(n); err != nil {
				t.Fatal(err)
			}
			got, err := sk.Next()
			if err != nil {
				t.Fatal(err)
			}
			if got.Epoch != want.Epoch || got.Step != want.Step {
				t.Fatalf("seek %d: epoch/step %d/%d, iteration %d/%d", n, got.Epoch, got.Step, want.Epoch, want.Step)
			}
			// rank 1 of 2 holds streams 2 and 3: compare their first tokens.
			if got.Tokens[0] != want.Tokens[2] || got.Tokens[1] != want.Tokens[3] {
				t.Fatalf("seek %d: tokens differ", n)
			}
		}
	}
}
