// Command recur is Recur's command-line interface.
//
//	recur train       local mode: a coordinator and N workers on this machine
//	recur coordinator run a coordinator (cluster mode)
//	recur worker      run a worker that joins a coordinator
//	recur status      where a run stands, from its status stream
//	recur sample      generate text from a charlm run's checkpoint
//	recur eval        loss and metrics of a run's checkpoint
//	recur predict     apply a run's model to new data (JSONL or CSV)
//	recur export      a run's checkpoint as safetensors (PyTorch names)
//	recur gendata     make a synthetic data set (JSONL or CSV)
//	recur keygen      print a new cluster key
//	recur version     version, commit, Go version, BLAS backend
//	recur completion  print a bash completion script
//	recur help        a command's usage
//
// Run `recur help COMMAND` or `recur COMMAND --help` for a command's flags.
package main

import (
	"os"

	"github.com/recur-ml/recur/internal/cli"
)

func main() {
	os.Exit(cli.Recur(os.Args[1:], os.Stdout, os.Stderr))
}
