package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
	"github.com/recur-ml/recur/pkg/shard"
)

// ExportFormatVersion is the version of the metadata `recur export`
// writes into the safetensors header (__metadata__). Readers (the Python
// package in python/recur) refuse a version they do not know. Version 1:
//
//	format          "recur"
//	format_version  "1"
//	task            charlm, classify, forecast or seq2seq
//	step            the checkpoint's step
//	checkpoint      how it was chosen: best, latest or the step asked for (--checkpoint)
//	best            "true" or "false": whether it is the run's best checkpoint by
//	                validation loss (absent when that is not known)
//	val_loss        the validation loss of its state (absent when its step was not validated)
//	model           JSON: the model (exportModel)
//	job             JSON: the whole job config (job.json)
//	vocabulary      JSON, charlm only: the vocabulary and its id convention (exportVocab)
//	scaling         JSON, forecast only: the series' normalisation (task.Scaling)
//
// beside the keys pkg/rnn writes (shape, cell, hidden, layers, vocab: the
// vocabulary's size, input, embed, outputs, bidirectional).
const ExportFormatVersion = "1"

// exportModel is the model as the metadata describes it: what a reader
// needs to build the same network (pkg/rnn's Config with defaults applied).
type exportModel struct {
	Shape         string `json:"shape"` // seq2seq, seq2vec, vec2seq, encdec
	Cell          string `json:"cell"`  // lstm, gru, rnn_tanh, rnn_relu
	Vocab         int    `json:"vocab"` // token ids in [0, vocab); 0: dense inputs
	Embed         int    `json:"embed"`
	Input         int    `json:"input"` // dense input features (vocab 0)
	Hidden        int    `json:"hidden"`
	Layers        int    `json:"layers"`
	Outputs       int    `json:"outputs"`
	Loss          string `json:"loss"` // cross_entropy or mse
	Bidirectional bool   `json:"bidirectional"`
	EOS           int    `json:"eos"`
	BOS           int    `json:"bos"`
}

// exportVocab is a char LM's vocabulary with its id convention spelt out.
type exportVocab struct {
	Level string `json:"level"`           // char or byte
	Runes []rune `json:"runes,omitempty"` // char: code points, ascending
	Unk   *int   `json:"unk,omitempty"`   // char: the id of a character not in runes
	IDs   string `json:"ids"`             // the convention, in words
}

func modelMetadata(c rnn.Config) exportModel {
	loss := "cross_entropy"
	if c.Loss == rnn.MSE {
		loss = "mse"
	}
	return exportModel{Shape: c.Shape.String(), Cell: c.Cell.String(), Vocab: c.Vocab, Embed: c.Embed, Input: c.Input,
		Hidden: c.Hidden, Layers: c.Layers, Outputs: c.Outputs, Loss: loss, Bidirectional: c.Bidirectional, EOS: c.EOS, BOS: c.BOS}
}

func vocabMetadata(v *shard.Vocab) exportVocab {
	if v.Level() == shard.ByteLevel {
		return exportVocab{Level: "byte", IDs: "id = the byte's value (0-255): text is encoded as UTF-8 bytes"}
	}
	unk := int(shard.Unk)
	return exportVocab{Level: "char", Runes: v.Runes(), Unk: &unk,
		IDs: "id 0 is <unk> (any character not in runes); id i+1 is runes[i]; runes are Unicode code points in ascending order, those of the training text"}
}

// exportFile is the run's model as a safetensors file with the metadata of
// ExportFormatVersion.
func (r *run) exportFile() (*safetensors.File, error) {
	f := r.model.StateDict()
	kind := r.job.Task.Kind
	if kind == "" {
		kind = job.TaskCharLM
	}
	md := map[string]any{"model": modelMetadata(r.model.Config()), "job": r.job}
	if r.vocab != nil {
		md["vocabulary"] = vocabMetadata(r.vocab)
	}
	if kind == job.TaskForecast {
		s, err := task.ForecastScaling(r.job)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		md["scaling"] = s
	}
	for k, v := range md {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("export: metadata %s: %w", k, err)
		}
		f.Metadata[k] = string(b)
	}
	maps.Copy(f.Metadata, map[string]string{"format": "recur", "format_version": ExportFormatVersion, "task": kind, "step": fmt.Sprint(r.step)})
	if c := r.chosen; c != nil {
		f.Metadata["checkpoint"] = c.asked
		if c.best != nil || c.fallback != "" {
			f.Metadata["best"] = strconv.FormatBool(c.isBest())
		}
		if v, ok := c.ck.Metrics[valLossMetric]; ok {
			f.Metadata["val_loss"] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return f, nil
}

// tensorNames lists a model's tensors in parameter order.
func tensorNames(m *rnn.Model[float32]) string {
	var names []string
	for _, s := range m.Params.Specs() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}
