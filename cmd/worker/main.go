// Command worker runs a Recur worker; it is the same as `recur worker`, as a
// separate binary for deployments that want one process kind per image.
// Its exit codes are those of recur (see cli.ExitCode).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/recur-ml/recur/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Worker(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := cli.ExitCode(err)
	if err != nil && code != cli.ExitOK {
		fmt.Fprintln(os.Stderr, "worker:", err)
	}
	os.Exit(code)
}
