package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/worker"
)

// Exit codes of every recur command. A supervisor (a shell script,
// Kubernetes, systemd) tells from the code alone whether to rerun.
const (
	// ExitOK: the command did its work; for training, the run finished
	// (its step or time budget, or early stopping; also when it had
	// already finished before).
	ExitOK = 0
	// ExitError: a permanent error (bad config or data, a checkpoint of
	// another job, a worker that crashed): rerunning the same command
	// fails the same way.
	ExitError = 1
	// ExitUsage: unknown command or bad flags.
	ExitUsage = 2
	// ExitDiverged: training stopped after too many non-finite steps; the
	// newest checkpoint is the last good state. Lower the learning rate.
	ExitDiverged = 3
	// ExitRetry: a transient failure (the coordinator unreachable within
	// the join timeout; a worker stopped while the run is not over, as
	// when the coordinator was interrupted); rerunning later may succeed
	// (EX_TEMPFAIL).
	ExitRetry = 75
	// ExitInterrupted: stopped by SIGINT or SIGTERM after saving a final
	// checkpoint; the same command resumes (128 + SIGINT, as shells do).
	ExitInterrupted = 130
)

// exitCodesHelp lists the exit codes for --help texts.
const exitCodesHelp = "0 finished, 1 permanent error, 2 usage, 3 diverged, 75 retry later, 130 interrupted"

// errUsage marks a command-line mistake (ExitUsage).
var errUsage = errors.New("usage")

// ExitCode maps a command's error to its exit code.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, errUsage):
		return ExitUsage
	case errors.Is(err, cluster.ErrDiverged):
		return ExitDiverged
	case errors.Is(err, cluster.ErrInterrupted):
		return ExitInterrupted
	case errors.Is(err, worker.ErrCoordinatorUnreachable), errors.Is(err, worker.ErrRunNotOver):
		return ExitRetry
	}
	return ExitError
}

// usageError marks a flag-parsing error as a usage error (the flag
// package has printed the usage); --help stays flag.ErrHelp.
func usageError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}

// Main runs one command (cmd/coordinator, cmd/worker) the way recur runs
// it: SIGINT and SIGTERM cancel its context, an error is printed with the
// command's name, and the exit code says how it ended (ExitCode).
func Main(name string, cmd func(ctx context.Context, args []string, stdout, stderr io.Writer) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := ExitCode(err)
	if err != nil && code != ExitOK {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	return code
}
