// Command coordinator runs a Recur coordinator; it is the same as `recur coordinator`, as a
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
	err := cli.Coordinator(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := cli.ExitCode(err)
	if err != nil && code != cli.ExitOK {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
	}
	os.Exit(code)
}
