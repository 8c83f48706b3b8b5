package cli

import (
	"fmt"
	"slices"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
	"github.com/recur-ml/recur/pkg/shard"
)

// initFlagHelp is the help of train's and coordinator's --init.
const initFlagHelp = "start a fresh run from these weights (a safetensors file with PyTorch state_dict names: " +
	"recur export's, or recur.save's in python/recur) instead of the seed's initialisation; ignored when the run resumes from a checkpoint"

// initState reads the weights of path for job jc's model and returns the
// state of step 0 a fresh run starts from: those weights, a fresh
// optimizer, zero carried states. Every tensor of the model must be in
// the file with its exact shape, and nothing else (errors name the tensor
// and both shapes). For a char LM, a vocabulary in the file's metadata
// (recur export and recur.save write one) must be the corpus's: the same
// ids must mean the same characters.
func initState(jc job.Config, path string) ([]byte, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--init: %w", err)
	}
	vocab, err := task.Check(jc)
	if err != nil {
		return nil, err
	}
	if err := checkInitVocab(path, f, vocab); err != nil {
		return nil, err
	}
	mc, err := task.Model(jc)
	if err != nil {
		return nil, err
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		return nil, err
	}
	if err := m.LoadStateDict(f, true); err != nil {
		return nil, fmt.Errorf("--init %s does not fit the job's model: %w", path, err)
	}
	params, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var carry int
	if jc.Task.Kind == "" || jc.Task.Kind == job.TaskCharLM {
		carry = m.Stack().StateSize(jc.Data.Batch)
		if jc.Model.Cell == "lstm" { // as the worker's engine counts it
			carry *= 2
		}
	}
	st := cluster.State{Step: 0, Params: params, Carry: make([]float32, carry)}
	return st.MarshalBinary()
}

// checkInitVocab compares the vocabulary in f's metadata, if any, with the
// job's (JSON; nil for tasks without one).
func checkInitVocab(path string, f *safetensors.File, jobVocab []byte) error {
	s, ok := f.Metadata["vocabulary"]
	if !ok || jobVocab == nil {
		return nil
	}
	var got, want shard.Vocab
	if err := got.UnmarshalJSON([]byte(s)); err != nil {
		return fmt.Errorf("--init %s: metadata vocabulary: %w", path, err)
	}
	if err := want.UnmarshalJSON(jobVocab); err != nil {
		return err
	}
	if got.Level() != want.Level() || !slices.Equal(got.Runes(), want.Runes()) {
		return fmt.Errorf("--init %s: its vocabulary (%s, %d ids) is not the one data.text gives (%s, %d ids): "+
			"the same ids would mean other characters (build it with recur.char_vocab(data.text) in Python)",
			path, got.Level(), got.Size(), want.Level(), want.Size())
	}
	return nil
}
