package shard_test

import (
	"fmt"
	"strings"

	"github.com/recur-ml/recur/pkg/shard"
)

// Rank r of W takes a contiguous slice of every global batch; the first
// n%W ranks get one row more.
func ExampleSpan() {
	for r := 0; r < 3; r++ {
		lo, hi := shard.Span(10, r, 3)
		fmt.Printf("rank %d: [%d, %d)\n", r, lo, hi)
	}
	fmt.Println(shard.RankSizes(10, 3))
	// Output:
	// rank 0: [0, 4)
	// rank 1: [4, 7)
	// rank 2: [7, 10)
	// [4 3 3]
}

// The global batches of an epoch depend on the seed and epoch only; two
// workers split each one between them.
func ExampleLoader() {
	exs := shard.Examples{}
	for i := 0; i < 6; i++ {
		exs = append(exs, shard.Example{Input: shard.Seq{Tokens: make([]int32, i+1)}, Label: shard.NoLabel})
	}
	var ranks [2]*shard.Loader
	for r := range ranks {
		ranks[r], _ = shard.NewLoader(exs, shard.LoaderConfig{
			Sampler: shard.SamplerConfig{BatchSize: 4, Seed: 7, NoShuffle: true},
			Rank:    r, World: 2,
		})
	}
	for step := 0; step < 2; step++ {
		for r, l := range ranks {
			b, _ := l.Next()
			fmt.Printf("step %d rank %d: examples %v, T=%d lengths %v of %d\n", step, r, b.Indices, b.T, b.Lengths, b.GlobalB)
		}
	}
	// Output:
	// step 0 rank 0: examples [0 1], T=2 lengths [1 2] of 4
	// step 0 rank 1: examples [2 3], T=4 lengths [3 4] of 4
	// step 1 rank 0: examples [4], T=5 lengths [5] of 2
	// step 1 rank 1: examples [5], T=6 lengths [6] of 2
}

// A char vocabulary: id 0 is <unk>, then the runes in ascending order.
func ExampleVocab() {
	v := shard.NewCharVocab([]rune("banana"))
	fmt.Println(v.Size(), v.Encode("nab!"), v.Decode(v.Encode("nab!")))
	// Output:
	// 4 [3 1 2 0] nab�
}

// TBPTT streams over a token sequence: each row names its stream, targets are
// the inputs shifted by one, and Reset marks the first window of an epoch.
func ExampleStreams() {
	toks := make(shard.TokenSlice, 21)
	for i := range toks {
		toks[i] = int32(i)
	}
	s, _ := shard.NewStreams(toks, shard.StreamConfig{Streams: 2, Steps: 5})
	for i := 0; i < 3; i++ {
		b, _ := s.Next()
		// Row 1 of a time-major [T][B] batch: Tokens[t*B+1].
		var in, out []int32
		for t := 0; t < b.T; t++ {
			in, out = append(in, b.Tokens[t*b.B+1]), append(out, b.Targets[t*b.B+1])
		}
		fmt.Printf("epoch %d window %d: stream %d reads %v -> %v reset=%v\n", b.Epoch, b.Step, b.StreamIDs[1], in, out, b.Reset[1])
	}
	// Output:
	// epoch 0 window 0: stream 1 reads [10 11 12 13 14] -> [11 12 13 14 15] reset=true
	// epoch 0 window 1: stream 1 reads [15 16 17 18 19] -> [16 17 18 19 20] reset=false
	// epoch 1 window 0: stream 1 reads [10 11 12 13 14] -> [11 12 13 14 15] reset=true
}

// Saving and restoring a position: the cursor is bytes for a checkpoint.
func ExampleCursor() {
	toks := make(shard.TokenSlice, 101)
	cfg := shard.StreamConfig{Streams: 4, Steps: 5, Seed: 1}
	s, _ := shard.NewStreams(toks, cfg)
	s.Next()
	s.Next()
	saved, _ := s.Cursor().MarshalBinary()

	var c shard.Cursor
	if err := c.UnmarshalBinary(saved); err != nil {
		fmt.Println(err)
	}
	cfg.Rank, cfg.World = 1, 2 // resume on another worker count
	r, _ := shard.NewStreams(toks, cfg)
	fmt.Println(r.Restore(c), c.Epoch, c.Batch, c.Offsets)

	saved[30] ^= 1
	fmt.Println(c.UnmarshalBinary(saved) != nil)
	// Output:
	// <nil> 0 2 [10 35 60 85]
	// true
}

// Reading a JSONL classification set and reporting a bad line.
func ExampleReadJSONL() {
	data := `{"input": [4, 2, 7], "target": 1}
{"input": [1], "target": "3"}`
	_, _, err := shard.ReadJSONL(strings.NewReader(data), "data.jsonl", shard.JSONLConfig{Classes: 2})
	fmt.Println(err)
	// Output:
	// data.jsonl:2: "target": expected integer, got string
}
