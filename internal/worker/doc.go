// Package worker is a training process: it joins the coordinator, trains
// its share of every global batch in the ring generations the coordinator
// forms (its engine: the task, model, optimizer and carried state), and
// serves its state to joining peers and to the coordinator's checkpoints.
// Its collaborators (ring transport, listeners, dialer, membership) are
// passed in through WorkerConfig; each nil one is built from addresses.
package worker
