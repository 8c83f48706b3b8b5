package dashboard

import "time"

// FormatVersion is the version of the Status JSON that /api/status
// serves; it changes when a field changes meaning or goes away.
const FormatVersion = 1

// Status is what the dashboard shows: where a run stands, the curves of
// the whole run (downsampled), its members, generations, checkpoints and
// recent events. It is built from the run's typed status stream and the
// coordinator's own state, never from log lines, and its size is bounded
// whatever the run's length (see the max* constants).
type Status struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"` // when the snapshot was taken
	// State is the run's state: starting, waiting, forming (a generation
	// forms), running, or how it ended: finished, diverged, interrupted.
	State string `json:"state"`
	// Message says why, in words: the outcome's reason, what the run
	// waits for, or the start.
	Message string `json:"message,omitempty"`
	// Waiting is what the coordinator waits for now ("" when nothing).
	Waiting string `json:"waiting,omitempty"`
	Job     string `json:"job,omitempty"`  // the job's hash
	Task    string `json:"task,omitempty"` // the task kind (charlm, classify, ...)
	// Processes counts the coordinator processes of the run (restarts
	// add one each).
	Processes  int     `json:"coordinator_processes"`
	Step       int64   `json:"step"`                  // steps completed
	TotalSteps int64   `json:"total_steps,omitempty"` // the step budget (0: none)
	Minutes    float64 `json:"minutes,omitempty"`     // the time budget (0: none)
	// Elapsed is the run's training time over every coordinator process.
	Elapsed float64 `json:"elapsed_seconds"`
	// ETA is the wall time left by the step budget at the recent rate or
	// by the time budget, whichever ends first; absent when unknown.
	ETA *float64 `json:"eta_seconds,omitempty"`
	// TokensPerSecond and StepsPerSecond are global tokens (steps) over
	// wall time across the last rateWindow, waits included.
	TokensPerSecond float64 `json:"tokens_per_second"`
	StepsPerSecond  float64 `json:"steps_per_second"`
	TotalTokens     float64 `json:"total_tokens"`
	LR              float64 `json:"lr"`
	Loss            float64 `json:"train_loss"`
	// ValLoss is the newest validation loss (of the sample validated
	// every train.validate_every steps) at ValStep; absent before one.
	ValLoss     *float64 `json:"val_loss,omitempty"`
	ValStep     int64    `json:"val_step,omitempty"`
	BestValLoss *float64 `json:"best_val_loss,omitempty"`
	Generation  uint64   `json:"generation"`
	World       int      `json:"world"`   // workers in the ring at the newest step or generation
	Workers     int      `json:"workers"` // workers known (joined and not left)
	// Members are the workers the coordinator knows, ring members first
	// in rank order, with what each reported of its recent steps.
	Members []Member `json:"members"`
	Series  Series   `json:"series"`
	// Generations are the newest generations formed, oldest first;
	// GenerationsTotal counts all of them in the history.
	Generations      []Generation `json:"generations"`
	GenerationsTotal int          `json:"generations_total"`
	// Checkpoints are the newest checkpoints saved, oldest first.
	Checkpoints        []Checkpoint `json:"checkpoints"`
	CheckpointsTotal   int          `json:"checkpoints_total"`
	CheckpointFailures int          `json:"checkpoint_failures"`
	// Events are the newest events of the run's life other than steps,
	// validations and checkpoints (joins, departures, failures, waits,
	// the outcome), oldest first.
	Events []Line `json:"events"`
}

// Series are the run's curves by step.
type Series struct {
	Train           []Point `json:"train"`             // training loss
	Val             []Point `json:"val"`               // validation loss
	LR              []Point `json:"lr"`                // learning rate
	TokensPerSecond []Point `json:"tokens_per_second"` // global tokens over wall time
}

// Member is one worker as the dashboard shows it.
type Member struct {
	ID   string `json:"id"`
	Rank int    `json:"rank"` // in the current ring; -1: not in it
	// Step is the steps completed after its newest step report (counted
	// as Status.Step is; -1: none yet); Steps counts its step reports to
	// this coordinator process.
	Step  int64 `json:"step"`
	Steps int64 `json:"steps"`
	// StepSeconds is its wall time per step (compute and allreduce),
	// AllreduceSeconds the part spent in the ring (waiting for the
	// slowest rank included) and WaitSeconds the time blocked on the
	// coordinator between steps: moving averages of its recent reports.
	StepSeconds      float64 `json:"step_seconds"`
	AllreduceSeconds float64 `json:"allreduce_seconds"`
	WaitSeconds      float64 `json:"wait_seconds"`
	// ReportAge is how long ago its newest step report came (-1: none).
	ReportAge float64 `json:"report_age_seconds"`
}

// Generation is a ring generation formed.
type Generation struct {
	Generation uint64    `json:"generation"`
	Step       int64     `json:"step"` // the state it starts from
	Members    int       `json:"members"`
	Time       time.Time `json:"time"`
}

// Checkpoint is a checkpoint saved.
type Checkpoint struct {
	Step int64     `json:"step"`
	Time time.Time `json:"time"`
}

// Line is one event of the run's life in words.
type Line struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	Step int64     `json:"step"`
	Text string    `json:"text"`
}
