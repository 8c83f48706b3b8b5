package cli

import (
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger logs at Info level in console format on a terminal and as
// JSON otherwise.
func NewLogger(w io.Writer) *zap.Logger { return newLogger(w, zap.InfoLevel, "auto") }

// logFlags are --log-level and --log-format.
type logFlags struct {
	level  zapcore.Level
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	l.level = zap.InfoLevel
	fs.Var(&l.level, "log-level", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "auto", "log format: console, json, or auto (console on a terminal, else json)")
}

func (l *logFlags) validate() error {
	switch l.format {
	case "auto", "console", "json":
		return nil
	}
	return fmt.Errorf("%w: --log-format %q: want console, json or auto", errUsage, l.format)
}

func (l *logFlags) logger(w io.Writer) *zap.Logger { return newLogger(w, l.level, l.format) }

func newLogger(w io.Writer, level zapcore.Level, format string) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	f, ok := w.(*os.File)
	tty := ok && IsTerminal(f)
	var encoder zapcore.Encoder
	if format == "console" || format == "auto" && tty {
		if tty {
			enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
		} else {
			enc.EncodeLevel = zapcore.CapitalLevelEncoder
		}
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.AddSync(w), level))
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func defaultID() string {
	h, err := os.Hostname()
	if err != nil {
		h = "worker"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
