package events

import "fmt"

// Audit is what CheckHistory found in a run's status history.
type Audit struct {
	Starts int   // coordinator processes (start events)
	Steps  int   // step events
	Last   int64 // the last step recorded
	// StateChecks is the state checksums compared by the coordinator
	// processes that recorded their end (a killed one never does).
	StateChecks int64
}

// HistoryError is an event of a history that breaks an invariant.
type HistoryError struct {
	Index  int // into the history
	Event  Event
	Reason string
}

func (e *HistoryError) Error() string {
	return fmt.Sprintf("event %d (seq %d, %s): %s", e.Index, e.Event.Seq, e.Event.Kind, e.Reason)
}

// CheckHistory checks the invariants of a run's status history (every
// event of every coordinator process, as ReadEventsFile returns it) that
// must hold whatever failed during the run, and returns the first event
// that breaks one as a *HistoryError:
//   - step events strictly increase over the whole run, so no step ran
//     twice (and since a step's global batch is a function of the step,
//     every global batch was used once); within one coordinator process
//     they are consecutive: every step is recorded;
//   - every generation runs from at or after the last recorded step;
//   - no divergence event: the members of every generation held
//     identical weights after each step.
func CheckHistory(history []Event) (Audit, error) {
	var a Audit
	prev := int64(-1) // the previous step in this process (-1: none yet)
	for i, e := range history {
		fail := func(format string, args ...any) (Audit, error) {
			return a, &HistoryError{Index: i, Event: e, Reason: fmt.Sprintf(format, args...)}
		}
		switch e.Kind {
		case EventStart:
			a.Starts++
			prev = -1
		case EventStep:
			a.Steps++
			switch {
			case e.Step <= a.Last && a.Last > 0:
				return fail("coordinator process %d recorded step %d after step %d", a.Starts, e.Step, a.Last)
			case prev >= 0 && e.Step != prev+1:
				return fail("coordinator process %d recorded step %d after step %d", a.Starts, e.Step, prev)
			}
			a.Last, prev = e.Step, e.Step
		case EventRunning:
			if e.Step < a.Last {
				return fail("generation %d runs from step %d after step %d was recorded", e.Generation, e.Step, a.Last)
			}
		case EventDivergence:
			return fail("divergence: %s", e.Message)
		}
		if e.Kind.Ends() {
			a.StateChecks += e.StateChecks
		}
	}
	return a, nil
}
