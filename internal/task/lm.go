package task

import (
	"fmt"

	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// Evaluate returns the summed cross-entropy and the token count of a
// language model over tokens read as B streams of T-step windows with the
// state carried (as in training), for rank of world (0 of 1: all of it).
// B is halved until the tokens hold a window per stream; maxWindows > 0
// caps the windows read.
func Evaluate(m *rnn.Model[float32], tokens shard.Tokens, B, T, maxWindows, rank, world, threads int) (sum, count float64, err error) {
	sum, count, _, err = evaluate(m, tokens, B, T, maxWindows, rank, world, threads)
	return sum, count, err
}

// evaluate is Evaluate that also returns the windows it read.
func evaluate(m *rnn.Model[float32], tokens shard.Tokens, B, T, maxWindows, rank, world, threads int) (sum, count float64, windows int, err error) {
	for B > 1 && tokens.Len() < int64(B*(T+1)) {
		B /= 2
	}
	st, err := shard.NewStreams(tokens, shard.StreamConfig{Streams: B, Steps: T, Rank: rank, World: world})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	n := int(st.WindowsPerEpoch())
	if maxWindows > 0 {
		n = min(n, maxWindows)
	}
	ev, err := rnn.NewTrainer(m, nil, rnn.TrainerConfig{Threads: max(threads, 1)})
	if err != nil {
		return 0, 0, 0, err
	}
	defer m.Params.ZeroGrad()
	var carry rnn.State[float32]
	for i := 0; i < n; i++ {
		sb, err := st.Next()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("evaluate window %d: %w", i, err)
		}
		if sb.B == 0 {
			continue
		}
		res, err := ev.Compute(&rnn.Batch[float32]{T: sb.T, B: sb.B, Tokens: sb.Tokens, Targets: sb.Targets}, carry, false)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("evaluate window %d: %w", i, err)
		}
		carry = res.Final.Clone()
		sum += res.Loss
		count += float64(res.Count)
	}
	return sum, count, n, nil
}
