package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/recur-ml/recur/internal/cluster/controlpb"
	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/planner"
)

// Errors that say how a run ended other than finished; the command line
// maps each to its own exit code.
var (
	// ErrDiverged: the run stopped after too many non-finite steps.
	ErrDiverged = errors.New("training diverged")
	// ErrInterrupted: an operator stopped the run; it resumes from the
	// final checkpoint.
	ErrInterrupted = errors.New("training interrupted")
)

// OutcomeEvent is the event kind that ends a run with outcome o.
func OutcomeEvent(o planner.Outcome) events.EventKind {
	switch o {
	case planner.Diverged:
		return events.EventDiverged
	case planner.Interrupted:
		return events.EventInterrupted
	}
	return events.EventFinished
}

// EventToProto is e on the wire.
func EventToProto(e events.Event) *controlpb.Event {
	return &controlpb.Event{Seq: e.Seq, UnixNanos: e.Time.UnixNano(), Kind: string(e.Kind), Step: e.Step, Generation: e.Generation,
		Members: int32(e.Members), Worker: e.Worker, Loss: e.Loss, Lr: e.LR, Tokens: e.Tokens, TotalTokens: e.TotalTokens,
		StepSeconds: e.StepSeconds, AllreduceSeconds: e.AllreduceSeconds, StateCrc: e.StateCRC, Skipped: e.Skipped,
		ElapsedSeconds: e.Elapsed, ValLoss: e.ValLoss, BestValLoss: e.BestValLoss, TotalSteps: e.TotalSteps, Minutes: e.Minutes,
		Job: e.Job, Message: e.Message, StateChecks: e.StateChecks, Divergences: e.Divergences, BestStep: e.BestStep}
}

// EventFromProto is the inverse of EventToProto.
func EventFromProto(p *controlpb.Event) events.Event {
	return events.Event{Seq: p.Seq, Time: time.Unix(0, p.UnixNanos), Kind: events.EventKind(p.Kind), Step: p.Step, Generation: p.Generation,
		Members: int(p.Members), Worker: p.Worker, Loss: p.Loss, LR: p.Lr, Tokens: p.Tokens, TotalTokens: p.TotalTokens,
		StepSeconds: p.StepSeconds, AllreduceSeconds: p.AllreduceSeconds, StateCRC: p.StateCrc, Skipped: p.Skipped,
		Elapsed: p.ElapsedSeconds, ValLoss: p.ValLoss, BestValLoss: p.BestValLoss, TotalSteps: p.TotalSteps, Minutes: p.Minutes,
		Job: p.Job, Message: p.Message, StateChecks: p.StateChecks, Divergences: p.Divergences, BestStep: p.BestStep}
}

// Watch follows the status stream of the coordinator at addr from after
// seq on, calling fn for every event, until the run ends (it returns nil
// after the event that says how), fn fails, or ctx ends; with follow
// false it returns after the events the coordinator holds now. A
// coordinator that cannot be reached or hangs up is an error: the caller
// decides whether to watch again (from the last Seq it saw).
func Watch(ctx context.Context, addr string, sec *Security, after int64, follow bool, fn func(events.Event) error) error {
	conn, err := NewClient(addr, sec, nil)
	if err != nil {
		return fmt.Errorf("status of %s: %w", addr, err)
	}
	defer conn.Close()
	stream, err := controlpb.NewControlClient(conn).Watch(ctx, &controlpb.WatchRequest{AfterSeq: after, NoFollow: !follow})
	if err != nil {
		return fmt.Errorf("status of %s: %w", addr, err)
	}
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("status of %s: %w", addr, err)
		}
		e := EventFromProto(p)
		if err := fn(e); err != nil {
			return err
		}
		if e.Kind.Ends() {
			return nil
		}
	}
}
