package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/events"
	"go.uber.org/zap"
)

// Status runs `recur status`: where a run stands, from its coordinator's
// status stream (--coordinator) or its run directory's metrics.jsonl
// (--run); --follow prints every event until the run ends.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	coord := fs.String("coordinator", "", "the coordinator's control address (host:port); needs the cluster key")
	dir := fs.String("run", "", "a run directory (reads its metrics.jsonl; works while the run goes on and after it)")
	follow := fs.Bool("follow", false, "with --coordinator: print each event as it comes until the run ends")
	keyFile := fs.String("key-file", "", "file holding the cluster key (default: env RECUR_CLUSTER_KEY)")
	var sf securityFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur status --coordinator ADDR [--follow] | --run DIR\n\n"+
			"Says where a run stands: its step and budget, losses, workers, throughput (global tokens\n"+
			"over wall time), the newest checkpoint and how the run ended, from the typed status stream.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	switch {
	case (*coord == "") == (*dir == ""):
		return fmt.Errorf("%w: status needs one of --coordinator or --run", errUsage)
	case *dir != "":
		ev, bad, err := events.ReadEventsFile(filepath.Join(*dir, events.MetricsFile))
		if err != nil {
			fmt.Fprintf(stderr, "recur: %d unreadable lines skipped: %v\n", bad, err)
		}
		if len(ev) == 0 {
			return fmt.Errorf("%s has no status history (%s): not a run directory, or a run from before Recur kept one", *dir, events.MetricsFile)
		}
		fmt.Fprint(stdout, summarize(ev))
		return nil
	}
	key, err := clusterKey(*keyFile)
	if err != nil {
		return err
	}
	sec, err := sf.security(key, "recur status", zap.NewNop())
	if err != nil {
		return err
	}
	var ev []events.Event
	err = cluster.Watch(ctx, *coord, sec, 0, *follow, func(e events.Event) error {
		if *follow {
			fmt.Fprintf(stdout, "%s %s\n", e.Time.Format(time.TimeOnly), e)
		}
		ev = append(ev, e)
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if !*follow {
		fmt.Fprint(stdout, summarize(ev))
	}
	return nil
}

// runStatus is where a run stands, from its status events (typed: tests
// and the summary read it, nothing parses the summary's text).
type runStatus struct {
	start, lastStep, lastVal, lastCkpt, end, lastGen events.Event
	steps                                            []events.Event // within rateWindow of the last
	workers                                          map[string]bool
	processes                                        int
	// best is the run's best checkpoint by validation loss, newest the
	// newest saved; nil when there is none (or none has a validation loss).
	best, newest *ckInfo
}

// statusOf reads a run's status events (in order).
func statusOf(ev []events.Event) runStatus {
	s := runStatus{workers: map[string]bool{}}
	for _, e := range ev {
		switch e.Kind {
		case events.EventStart:
			s.start, s.processes = e, s.processes+1
			s.end = events.Event{}
			s.markBest(e)
		case events.EventStep:
			s.lastStep = e
			s.steps = append(s.steps, e)
			for len(s.steps) > 2 && e.Time.Sub(s.steps[1].Time) > rateWindow {
				s.steps = s.steps[1:]
			}
		case events.EventValidation:
			s.lastVal = e
		case events.EventCheckpoint:
			s.lastCkpt = e
			s.newest = &ckInfo{step: uint64(e.Step), val: e.ValLoss, hasVal: e.ValLoss != 0}
			s.markBest(e)
		case events.EventGeneration:
			s.lastGen = e
		case events.EventJoined:
			s.workers[e.Worker] = true
		case events.EventLeft:
			delete(s.workers, e.Worker)
		}
		if e.Kind.Ends() {
			s.end = e
		}
	}
	return s
}

// markBest takes the best checkpoint a start or checkpoint event names.
func (s *runStatus) markBest(e events.Event) {
	if e.BestStep > 0 {
		s.best = &ckInfo{step: uint64(e.BestStep), val: e.BestValLoss, hasVal: true}
	}
}

// state is "running" or how the run ended.
func (s runStatus) state() string {
	if s.end.Kind != "" {
		return string(s.end.Kind)
	}
	return "running"
}

// summarize says where a run stands after events (in order).
func summarize(ev []events.Event) string {
	s := statusOf(ev)
	var b strings.Builder
	state := s.state()
	fmt.Fprintf(&b, "run:         %s (job %s, %d coordinator process(es))\n", state, s.start.Job, s.processes)
	budget := "no step budget"
	if s.start.TotalSteps > 0 && s.start.TotalSteps < 1e9 {
		budget = fmt.Sprintf("of %d", s.start.TotalSteps)
	}
	fmt.Fprintf(&b, "step:        %d %s", s.lastStep.Step, budget)
	if s.start.Minutes > 0 {
		fmt.Fprintf(&b, ", time budget %g min", s.start.Minutes)
	}
	fmt.Fprintf(&b, "; trained %s\n", (time.Duration(s.lastStep.Elapsed) * time.Second).Round(time.Second))
	if s.lastStep.Kind != "" {
		fmt.Fprintf(&b, "train loss:  %.4f (step %d, lr %.3g)\n", s.lastStep.Loss, s.lastStep.Step, s.lastStep.LR)
	}
	if s.lastVal.Kind != "" {
		fmt.Fprintf(&b, "validation:  %.4f at step %d (the newest; the lowest so far %.4f)\n", s.lastVal.ValLoss, s.lastVal.Step, s.lastVal.BestValLoss)
	}
	if state == "running" {
		fmt.Fprintf(&b, "workers:     %d in generation %d (%d known)\n", s.lastStep.Members, s.lastGen.Generation, len(s.workers))
		if tps, _, ok := events.Throughput(s.steps); ok {
			fmt.Fprintf(&b, "throughput:  %.0f tokens/s (global tokens over wall time, last %v)\n", tps, rateWindow)
		}
	}
	final := "newest:     "
	if state != "running" {
		final = "final:      "
	}
	switch {
	case s.best != nil:
		fmt.Fprintf(&b, "best:        checkpoint of step %d, validation loss %.4f: the one %s use\n", s.best.step, s.best.val, allCommands)
	case s.newest != nil:
		fmt.Fprintf(&b, "best:        none recorded: no checkpoint has a validation loss, so %s use the newest\n", allCommands)
	}
	if s.newest != nil {
		fmt.Fprintf(&b, "%s checkpoint of step %d, %s (--checkpoint latest)\n", final, s.newest.step, valPhrase(s.newest))
	}
	if s.end.Kind != "" {
		fmt.Fprintf(&b, "ended:       %s\n", s.end.Message)
	}
	return b.String()
}
