package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/recur-ml/recur/internal/job"
)

// taskHelp is what the train usage says about one task kind: what it
// learns, the data it reads, the keys only it reads, and the commands
// that use a finished run.
type taskHelp struct {
	kind, learns, reads string
	keys                []string
	after               []string
}

// taskHelps covers every task kind. The keys are checked against the
// job's config struct tags (job.Keys) by a test, and every data.* key
// must belong to some task: a new key fails the test until it is here.
var taskHelps = []taskHelp{
	{
		kind: job.TaskCharLM, learns: "the next character of a text corpus (the default task)",
		reads: "data.text: a UTF-8 text file; its last (1 - data.train_fraction) is the validation split",
		keys:  []string{"data.text", "data.seq", "data.batch", "data.train_fraction"},
		after: []string{"sample", "eval", "export"},
	},
	{
		kind: job.TaskClassify, learns: "a class per sequence",
		reads: `data.train, data.val: JSONL {"input": [...], "target": N} (tokens, or vectors per step),` + "\n" +
			`or IDX "IMAGES,LABELS" (image rows as steps; data.val required)`,
		keys:  []string{"data.train", "data.val", "data.classes", "data.vocab", "data.batch", "data.train_fraction", "data.max_len", "data.buckets", "model.bidirectional"},
		after: []string{"predict", "eval", "export"},
	},
	{
		kind: job.TaskForecast, learns: "the next data.horizon rows of a series from the data.seq rows before",
		reads: "data.train: CSV (header optional; the columns read must be numeric), split in time:\n" +
			"training, validation (the last data.val_fraction before the test part), test (the rows\n" +
			"after the first data.train_fraction, read only by recur eval); normalised by the training\n" +
			"rows; data.residual last|ar: learn the error of persistence or of the validated AR",
		keys: []string{"data.train", "data.inputs", "data.targets", "data.seq", "data.horizon", "data.season", "data.batch",
			"data.train_fraction", "data.val_fraction", "data.residual", "model.bidirectional"},
		after: []string{"predict", "eval", "export"},
	},
	{
		kind: job.TaskSeq2Seq, learns: "output tokens from input tokens (encoder-decoder, stops at task.eos)",
		reads: `data.train, data.val: JSONL {"input": [...], "output": [...]} of token ids below data.vocab`,
		keys:  []string{"data.train", "data.val", "data.vocab", "data.batch", "data.train_fraction", "data.max_len", "data.buckets", "task.bos", "task.eos", "model.bidirectional"},
		after: []string{"predict", "eval", "export"},
	},
}

// helpFor returns the help of task kind ("" is charlm).
func helpFor(kind string) (taskHelp, bool) {
	if kind == "" {
		kind = job.TaskCharLM
	}
	i := slices.IndexFunc(taskHelps, func(t taskHelp) bool { return t.kind == kind })
	if i < 0 {
		return taskHelp{}, false
	}
	return taskHelps[i], true
}

// printTaskHelp writes the tasks section of the train usage.
func printTaskHelp(w io.Writer) {
	fmt.Fprint(w, "Tasks (task.kind), what each reads, and its keys:\n")
	for _, t := range taskHelps {
		fmt.Fprintf(w, "  %-9s %s\n", t.kind, t.learns)
		for _, l := range strings.Split(t.reads, "\n") {
			fmt.Fprintf(w, "            %s\n", l)
		}
		fmt.Fprintf(w, "            keys: %s\n", strings.Join(groupKeys(t.keys), " "))
		fmt.Fprintf(w, "            then: recur %s --run DIR\n", strings.Join(t.after, "|"))
	}
	fmt.Fprint(w, "Keys of every task (see examples/*.yaml):\n")
	for _, section := range []string{"model", "optimizer", "schedule", "train", "cluster"} {
		var keys []string
		for _, k := range job.Keys() {
			if strings.HasPrefix(k, section+".") {
				keys = append(keys, k)
			}
		}
		fmt.Fprintf(w, "  %s\n", strings.Join(groupKeys(keys), " "))
	}
}

// groupKeys writes dotted keys compactly, a group per first part, and
// deeper parts as a wildcard: model.{cell,hidden} optimizer.{kind,adam.*}.
func groupKeys(keys []string) []string {
	var order []string
	groups := map[string][]string{}
	for _, k := range keys {
		head, rest, _ := strings.Cut(k, ".")
		if sub, _, deeper := strings.Cut(rest, "."); deeper {
			rest = sub + ".*"
		}
		if _, ok := groups[head]; !ok {
			order = append(order, head)
		}
		if !slices.Contains(groups[head], rest) {
			groups[head] = append(groups[head], rest)
		}
	}
	out := make([]string, len(order))
	for i, h := range order {
		if g := groups[h]; len(g) == 1 {
			out[i] = h + "." + g[0]
		} else {
			out[i] = h + ".{" + strings.Join(g, ",") + "}"
		}
	}
	return out
}
