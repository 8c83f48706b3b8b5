// Package coordinator is the process that owns a training run: it admits
// workers, drives the pure planner (internal/planner) with their reports
// and the membership's departures, sends each worker its plan, saves
// checkpoints, validates, publishes the status stream (internal/events)
// and ends the run once. Its collaborators (listener, dialer, checkpoint
// store, membership, clock) are passed in through CoordinatorConfig; each
// nil one is built from addresses and the run directory.
package coordinator
