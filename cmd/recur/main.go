// Command recur is Recur's command-line interface.
//
//	recur train  --text FILE|DIR [--minutes N | --steps N] [model flags]
//	recur sample --model DIR [--prime TEXT] [--n N] [--temperature T]
//
// Run `recur COMMAND --help` for the flags of a command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `recur: distributed data-parallel training of recurrent networks

Usage:
  recur train  --text FILE|DIR [--minutes N | --steps N] [flags]   train a char-level language model
  recur sample --model DIR [--prime TEXT] [--n N] [--temperature T] generate text from a trained model

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
		err = cmdTrain(ctx, args[1:], stdout, stderr)
	case "sample":
		err = cmdSample(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "recur: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "recur:", err)
		return 1
	}
	return 0
}

// newLogger logs in console format on a terminal and JSON otherwise.
func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.AddSync(w), zap.InfoLevel))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
