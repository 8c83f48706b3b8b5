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

// summarize says where a run stands after events (in order).
func summarize(ev []events.Event) string {
	var (
		start, lastStep, lastVal, lastCkpt, end, lastGen events.Event
		steps                                            []events.Event
		workers                                          = map[string]bool{}
		processes                                        int
	)
	for _, e := range ev {
		switch e.Kind {
		case events.EventStart:
			start, processes = e, processes+1
			end = events.Event{}
		case events.EventStep:
			lastStep = e
			steps = append(steps, e)
			for len(steps) > 2 && e.Time.Sub(steps[1].Time) > rateWindow {
				steps = steps[1:]
			}
		case events.EventValidation:
			lastVal = e
		case events.EventCheckpoint:
			lastCkpt = e
		case events.EventGeneration:
			lastGen = e
		case events.EventJoined:
			workers[e.Worker] = true
		case events.EventLeft:
			delete(workers, e.Worker)
		}
		if e.Kind.Ends() {
			end = e
		}
	}
	var b strings.Builder
	state := "running"
	if end.Kind != "" {
		state = string(end.Kind)
	}
	fmt.Fprintf(&b, "run:         %s (job %s, %d coordinator process(es))\n", state, start.Job, processes)
	budget := "no step budget"
	if start.TotalSteps > 0 && start.TotalSteps < 1e9 {
		budget = fmt.Sprintf("of %d", start.TotalSteps)
	}
	fmt.Fprintf(&b, "step:        %d %s", lastStep.Step, budget)
	if start.Minutes > 0 {
		fmt.Fprintf(&b, ", time budget %g min", start.Minutes)
	}
	fmt.Fprintf(&b, "; trained %s\n", (time.Duration(lastStep.Elapsed) * time.Second).Round(time.Second))
	if lastStep.Kind != "" {
		fmt.Fprintf(&b, "train loss:  %.4f (step %d, lr %.3g)\n", lastStep.Loss, lastStep.Step, lastStep.LR)
	}
	if lastVal.Kind != "" {
		fmt.Fprintf(&b, "validation:  %.4f at step %d (best %.4f)\n", lastVal.ValLoss, lastVal.Step, lastVal.BestValLoss)
	}
	if state == "running" {
		fmt.Fprintf(&b, "workers:     %d in generation %d (%d known)\n", lastStep.Members, lastGen.Generation, len(workers))
		if tps, _, ok := throughput(steps); ok {
			fmt.Fprintf(&b, "throughput:  %.0f tokens/s (global tokens over wall time, last %v)\n", tps, rateWindow)
		}
	}
	if lastCkpt.Kind != "" {
		fmt.Fprintf(&b, "checkpoint:  step %d\n", lastCkpt.Step)
	}
	if end.Kind != "" {
		fmt.Fprintf(&b, "ended:       %s\n", end.Message)
	}
	return b.String()
}
