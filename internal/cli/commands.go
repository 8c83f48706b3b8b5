package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one `recur` subcommand. Every command parses its arguments
// with a flag.FlagSet of its own, so `-h`/`--help` prints its usage and
// returns flag.ErrHelp (exit 0) before it does anything.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// noContext adapts a command that cannot be interrupted.
func noContext(f func(args []string, stdout, stderr io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error { return f(args, stdout, stderr) }
}

// commands lists recur's subcommands in the order `recur help` shows them.
func commands() []command {
	return []command{
		{"train", "local mode: a coordinator and N worker processes on this machine", Train},
		{"coordinator", "run a coordinator (cluster mode)", Coordinator},
		{"worker", "run a worker that joins a coordinator", Worker},
		{"status", "where a run stands: step, losses, workers, throughput, outcome", Status},
		{"sample", "generate text from a charlm run's checkpoint", noContext(Sample)},
		{"eval", "loss and metrics of a run's checkpoint on its validation set", noContext(Eval)},
		{"predict", "apply a classify, seq2seq or forecast run's model to new data", noContext(PredictCmd)},
		{"export", "write a run's checkpoint as safetensors (PyTorch names)", noContext(Export)},
		{"gendata", "make a synthetic data set for the example tasks", noContext(GenData)},
		{"keygen", "print a new cluster key (for RECUR_CLUSTER_KEY)", noContext(Keygen)},
		{"version", "version, commit, Go version and BLAS backend of this binary", noContext(Version)},
		{"completion", "print a shell completion script (bash)", noContext(Completion)},
		{"help", "a command's usage: recur help COMMAND", noContext(helpCmd)},
	}
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Recur runs the recur command line (os.Args[1:]) and returns the exit
// code: SIGINT and SIGTERM cancel the command's context, and an error is
// printed once, prefixed "recur:".
func Recur(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelpFlag(args[0]) {
		printUsage(stdout)
		return ExitOK
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "recur: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return ExitUsage
	}
	rest := args[1:]
	if len(rest) > 0 && isHelpFlag(rest[0]) {
		// Asked for: the usage goes to standard output, to page or grep.
		stderr, rest = stdout, []string{"-h"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, rest, stdout, stderr)
	code := ExitCode(err)
	if err != nil && code != ExitOK {
		fmt.Fprintln(stderr, "recur:", err)
	}
	return code
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// printUsage lists the commands with one line each.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "recur: data-parallel training of recurrent networks on CPU clusters\n\nUsage: recur COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"recur help COMMAND\" or \"recur COMMAND --help\" for a command's flags.\n"+
		"Start with \"recur help train\": it says what each task reads.\n")
}

// helpCmd runs `recur help [COMMAND]`: the command's own usage (its
// --help), on standard output.
func helpCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("help", stderr, "[COMMAND]", "Prints a command's usage and flags; without COMMAND, the list of commands.")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	switch fs.NArg() {
	case 0:
		printUsage(stdout)
		return nil
	case 1:
	default:
		return fmt.Errorf("%w: help takes one command, got %q", errUsage, strings.Join(fs.Args(), " "))
	}
	c, ok := lookup(fs.Arg(0))
	if !ok {
		return fmt.Errorf("%w: unknown command %q (recur help lists them)", errUsage, fs.Arg(0))
	}
	err := c.run(context.Background(), []string{"-h"}, stdout, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlagSet is the flag set of a small command whose usage is one line
// of arguments and a description.
func newFlagSet(name string, stderr io.Writer, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("recur "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n", strings.TrimSpace("recur "+name+" "+synopsis), about)
		if hasFlags(fs) {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
