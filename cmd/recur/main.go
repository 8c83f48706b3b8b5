// Command recur is Recur's command-line interface.
//
//	recur train       local mode: a coordinator and N workers on this machine
//	recur coordinator run a coordinator (cluster mode)
//	recur worker      run a worker that joins a coordinator
//	recur sample      generate text from a run's newest checkpoint
//	recur eval        loss of a run's newest checkpoint
//	recur predict     apply a run's model to new data (JSONL or CSV)
//	recur export      a run's newest checkpoint as safetensors (PyTorch names)
//	recur status      where a run stands, from its status stream
//	recur gendata     make a synthetic data set (JSONL or CSV)
//	recur keygen      print a new cluster key
//
// Run `recur COMMAND --help` for the flags of a command.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/recur-ml/recur/internal/cli"
)

const usage = `recur: data-parallel training of recurrent networks on CPU clusters

Usage:
  recur train [--config FILE] [--workers N] [--text FILE] [--steps N | --minutes M]
                                    local mode: a coordinator and N worker processes here
  recur coordinator --config FILE   run a coordinator (cluster mode)
  recur worker --coordinator ADDR --gossip ADDR
                                    run a worker that joins a coordinator
  recur sample --run DIR            generate text from a run's newest checkpoint
  recur eval   --run DIR            loss of a run's newest checkpoint
  recur predict --run DIR --input F apply a classify/seq2seq/forecast model to new data
  recur export --run DIR            write the checkpoint as safetensors (PyTorch names)
  recur status --coordinator ADDR | --run DIR
                                    where a run stands (step, losses, workers, throughput, outcome)
  recur gendata reverse|sort|add|seasonal
                                    make a synthetic data set for the example tasks
  recur keygen                      print a new cluster key (for RECUR_CLUSTER_KEY)

Run "recur COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "train":
		err = cli.Train(ctx, args[1:], stdout, stderr)
	case "coordinator":
		err = cli.Coordinator(ctx, args[1:], stdout, stderr)
	case "worker":
		err = cli.Worker(ctx, args[1:], stdout, stderr)
	case "sample":
		err = cli.Sample(args[1:], stdout, stderr)
	case "eval":
		err = cli.Eval(args[1:], stdout, stderr)
	case "predict":
		err = cli.PredictCmd(args[1:], stdout, stderr)
	case "status":
		err = cli.Status(ctx, args[1:], stdout, stderr)
	case "export":
		err = cli.Export(args[1:], stdout, stderr)
	case "gendata":
		err = cli.GenData(args[1:], stdout, stderr)
	case "keygen":
		b := make([]byte, 32)
		rand.Read(b)
		fmt.Fprintln(stdout, hex.EncodeToString(b))
	default:
		fmt.Fprintf(stderr, "recur: unknown command %q\n\n%s", args[0], usage)
		return cli.ExitUsage
	}
	code := cli.ExitCode(err)
	if err != nil && code != cli.ExitOK {
		fmt.Fprintln(stderr, "recur:", err)
	}
	return code
}
