// Command coordinator runs a Recur coordinator; it is the same as `recur coordinator`, as a
// separate binary for deployments that want one process kind per image.
// Its exit codes are those of recur (see cli.ExitCode).
package main

import (
	"os"

	"github.com/recur-ml/recur/internal/cli"
)

func main() { os.Exit(cli.Main("coordinator", cli.Coordinator)) }
