package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recur-ml/recur/internal/coordinator"
	"github.com/recur-ml/recur/pkg/checkpoint"
)

// Which checkpoint eval, sample, export and predict use: the best by
// validation loss unless --checkpoint says otherwise, and what they tell
// the user about it.
const (
	whichBest   = "best"
	whichLatest = "latest"
	// valLossMetric is the checkpoint metric the store's best is chosen
	// by: the validation loss of the checkpoint's own state.
	valLossMetric = "val_loss"
)

// checkpointFlag registers --checkpoint.
func checkpointFlag(fs *flag.FlagSet) *string {
	return fs.String("checkpoint", whichBest, `which checkpoint: "best" (lowest validation loss; the newest when no checkpoint has one), "latest" (the newest) or a step number`)
}

// ckInfo is a checkpoint's step and its own validation loss.
type ckInfo struct {
	step   uint64
	val    float64
	hasVal bool
}

func infoOf(ck *checkpoint.Checkpoint) *ckInfo {
	v, ok := ck.Metrics[valLossMetric]
	return &ckInfo{step: ck.Step, val: v, hasVal: ok}
}

// chosen is the checkpoint a command uses and how it was chosen.
type chosen struct {
	ck    *checkpoint.Checkpoint
	asked string // --checkpoint: best, latest or a step number
	// best is the run's best checkpoint by validation loss, newest the
	// newest good one; nil when the run has none or it is not known.
	best, newest *ckInfo
	// fallback says why "best" gave the newest checkpoint ("": it did not).
	fallback string
}

func (c *chosen) isBest() bool   { return c.best != nil && c.best.step == c.ck.Step }
func (c *chosen) isNewest() bool { return c.newest != nil && c.newest.step == c.ck.Step }

// label names the checkpoint for a result line: "the best checkpoint",
// "the newest checkpoint", both, or "" (a step asked for by number that
// is neither).
func (c *chosen) label() string {
	switch {
	case c.isBest() && c.isNewest():
		return "the best checkpoint, also the newest"
	case c.isBest():
		return "the best checkpoint"
	case c.isNewest():
		return "the newest checkpoint"
	}
	return ""
}

// stepLabel is "step N" with the label in parentheses, for result lines.
func (c *chosen) stepLabel() string {
	if l := c.label(); l != "" {
		return fmt.Sprintf("step %d (%s)", c.ck.Step, l)
	}
	return fmt.Sprintf("step %d", c.ck.Step)
}

// valPhrase is "validation loss X" or "not validated".
func valPhrase(i *ckInfo) string {
	if i.hasVal {
		return fmt.Sprintf("validation loss %.4f", i.val)
	}
	return "not validated"
}

// valText is valPhrase in parentheses, after a space.
func valText(i *ckInfo) string { return " (" + valPhrase(i) + ")" }

// allCommands are the commands that read a run's checkpoint; usedBy
// names those that fit a task kind.
const allCommands = "eval, sample, export and predict"

// usedBy lists the commands that read a run of task kind's checkpoint,
// for the summary line: "sample, eval and export".
func usedBy(kind string) string {
	h, ok := helpFor(kind)
	if !ok || len(h.after) == 0 {
		return allCommands
	}
	if len(h.after) == 1 {
		return h.after[0]
	}
	return strings.Join(h.after[:len(h.after)-1], ", ") + " and " + h.after[len(h.after)-1]
}

// note says, for people, which checkpoint a command uses and why, with
// the alternative: one line for standard error.
func (c *chosen) note() string {
	self := infoOf(c.ck)
	var s string
	switch {
	case c.fallback != "":
		s = fmt.Sprintf("using the newest checkpoint, step %d: %s, so there is no best to choose", c.ck.Step, c.fallback)
	case c.asked == whichBest && c.isNewest():
		s = fmt.Sprintf("using the best checkpoint by validation loss, step %d%s, which is also the newest", c.ck.Step, valText(self))
	case c.asked == whichBest:
		s = fmt.Sprintf("using the best checkpoint by validation loss, step %d%s", c.ck.Step, valText(self))
		if c.newest != nil {
			s += fmt.Sprintf("; the newest is step %d%s: --checkpoint latest", c.newest.step, valText(c.newest))
		}
	case c.asked == whichLatest && c.isBest():
		s = fmt.Sprintf("using the newest checkpoint, step %d%s, which is also the best", c.ck.Step, valText(self))
	case c.asked == whichLatest:
		s = fmt.Sprintf("using the newest checkpoint, step %d%s", c.ck.Step, valText(self))
		if c.best != nil {
			s += fmt.Sprintf("; the best by validation loss is step %d%s: --checkpoint best (the default)", c.best.step, valText(c.best))
		}
	default:
		s = fmt.Sprintf("using the checkpoint of step %d%s", c.ck.Step, valText(self))
		switch {
		case c.isBest() && c.isNewest():
			s += ", the best by validation loss and the newest"
		case c.isBest():
			s += ", the best by validation loss"
		case c.isNewest():
			s += ", the newest"
		}
	}
	return "recur: " + s
}

// bestAndFinal is the line that ends a run's summary: the best
// checkpoint's validation loss and the final (newest) one's, labelled.
// validateEvery is the job's train.validate_every; final names the
// newest checkpoint "final" (a run that ended) rather than "newest";
// commands are the commands that use the best (usedBy).
func bestAndFinal(best, newest *ckInfo, validateEvery int64, final bool, commands string) string {
	what := "newest"
	if final {
		what = "final"
	}
	switch {
	case newest == nil:
		return "no checkpoint yet"
	case best == nil && validateEvery == 0:
		return fmt.Sprintf("no validation loss (train.validate_every is 0): %s use the %s checkpoint, step %d", commands, what, newest.step)
	case best == nil:
		return fmt.Sprintf("no checkpoint has a validation loss yet: %s use the %s checkpoint, step %d", commands, what, newest.step)
	case best.step == newest.step:
		return fmt.Sprintf("best validation loss %.4f at step %d, the %s checkpoint (the one %s use)", best.val, best.step, what, commands)
	}
	s := fmt.Sprintf("best validation loss %.4f at step %d (the checkpoint %s use); ", best.val, best.step, commands)
	if newest.hasVal {
		return s + fmt.Sprintf("%s validation loss %.4f at step %d (--checkpoint latest)", what, newest.val, newest.step)
	}
	return s + fmt.Sprintf("%s checkpoint step %d, not validated (--checkpoint latest)", what, newest.step)
}

// noBestReason says why a run has no best checkpoint.
func noBestReason(validateEvery int64) string {
	if validateEvery == 0 {
		return "the run has no validation (train.validate_every is 0)"
	}
	return "no checkpoint of this run has a validation loss yet"
}

// loadCheckpoint reads checkpoint which of the run in dir (see openRun);
// validateEvery words the note when there is no best.
func loadCheckpoint(dir, which string, validateEvery int64, stderr io.Writer) (*chosen, error) {
	var step uint64
	if which != whichLatest && which != whichBest {
		n, err := strconv.ParseUint(which, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: --checkpoint %q: want best, latest or a step number", errUsage, which)
		}
		step = n
	}
	st, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if err == nil {
		defer st.Close()
		if rec := st.Recovery(); rec != nil {
			fmt.Fprintf(stderr, "recur: %s\n", rec)
		}
		ch, err := fromStore(context.Background(), st, which, step, validateEvery, stderr)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		return ch, nil
	}
	if errors.Is(err, checkpoint.ErrLocked) {
		if which != whichLatest && which != whichBest {
			return nil, fmt.Errorf("run %s: its coordinator is running and holds the checkpoint store: step %d can be read once it stops; "+
				"--checkpoint latest or best can be read now", dir, step)
		}
		ch, ferr := fromFiles(dir, which, validateEvery)
		if ferr != nil {
			return nil, fmt.Errorf("run %s: its coordinator holds the checkpoint store, and %w", dir, ferr)
		}
		return ch, nil
	}
	if which == whichLatest || which == whichBest {
		// A store that does not open (damaged, or missing) leaves the
		// copies the coordinator made of its checkpoints.
		if ch, ferr := fromFiles(dir, which, validateEvery); ferr == nil {
			fmt.Fprintf(stderr, "recur: the checkpoint store does not open (%v); using the copy of step %d beside it\n", err, ch.ck.Step)
			return ch, nil
		}
	}
	return nil, fmt.Errorf("run %s: %w", dir, err)
}

// fromStore reads checkpoint which (or step) from an open store, with the
// run's best and newest for context.
func fromStore(ctx context.Context, st *checkpoint.Store, which string, step uint64, validateEvery int64, stderr io.Writer) (*chosen, error) {
	ch := &chosen{asked: which}
	var (
		rep checkpoint.Report
		err error
	)
	switch which {
	case whichLatest:
		ch.ck, rep, err = st.Latest(ctx)
	case whichBest:
		ch.ck, rep, err = st.Best(ctx)
		switch {
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
			ch.fallback = noBestReason(validateEvery)
			ch.ck, rep, err = st.Latest(ctx)
		case errors.Is(err, checkpoint.ErrDamaged):
			fmt.Fprintf(stderr, "recur: %v\n", err)
			ch.fallback = "every checkpoint with a validation loss is damaged"
			ch.ck, rep, err = st.Latest(ctx)
		}
	default:
		ch.ck, err = st.At(ctx, step)
	}
	if len(rep.Skipped) > 0 || rep.Recovery != nil {
		fmt.Fprintf(stderr, "recur: damaged checkpoints skipped: %s\n", rep)
	}
	if err != nil {
		return nil, err
	}
	if infos, err := st.List(ctx); err == nil {
		for _, in := range infos {
			if !in.OK {
				continue
			}
			v, has := in.Metrics[valLossMetric]
			i := &ckInfo{step: in.Step, val: v, hasVal: has}
			ch.newest = i
			if in.Best {
				ch.best = i
			}
		}
	}
	// What was read is what was asked for, whatever the listing says (it
	// may come from the store's file while the checkpoint came from its
	// backup).
	switch {
	case which == whichBest && ch.fallback == "":
		ch.best = infoOf(ch.ck)
	case which == whichLatest || ch.fallback != "":
		ch.newest = infoOf(ch.ck)
	}
	return ch, nil
}

// fromFiles reads checkpoint which from the copies the coordinator keeps
// beside the store (latest.ckpt, best.ckpt).
func fromFiles(dir, which string, validateEvery int64) (*chosen, error) {
	ch := &chosen{asked: which}
	latest, lerr := checkpoint.ReadFile(filepath.Join(dir, coordinator.LatestCheckpointFile))
	if lerr == nil {
		ch.newest = infoOf(latest)
	}
	best, berr := checkpoint.ReadFile(filepath.Join(dir, coordinator.BestCheckpointFile))
	if berr == nil {
		ch.best = infoOf(best)
	}
	switch {
	case which == whichBest && berr == nil:
		ch.ck = best
	case lerr != nil:
		return nil, lerr
	case which == whichBest && errors.Is(berr, checkpoint.ErrNoCheckpoint):
		ch.ck, ch.fallback = latest, noBestReason(validateEvery)
	case which == whichBest:
		ch.ck, ch.fallback = latest, fmt.Sprintf("%s does not read (%v)", coordinator.BestCheckpointFile, berr)
	default:
		ch.ck = latest
	}
	return ch, nil
}
