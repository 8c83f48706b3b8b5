package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/recur-ml/recur/pkg/rnn"
)

// version and commit are set by the Makefile's build:
//
//	-ldflags "-X github.com/recur-ml/recur/internal/cli.version=v0.3.0-12-gabc1234
//	          -X github.com/recur-ml/recur/internal/cli.commit=abc1234..."
//
// Empty, they come from the build information the go command records in a
// git checkout (vcs.revision, vcs.modified).
var version, commit string

// buildInfo is what `recur version` reports.
type buildInfo struct {
	Version, Commit, GoVersion, BLAS, Kernels string
}

// currentBuild fills buildInfo from the link-time values, else from
// read (runtime/debug.ReadBuildInfo).
func currentBuild(read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), BLAS: rnn.BLASBackend, Kernels: rnn.BLASKernels()}
	bi, ok := read()
	if !ok {
		return b.orUnknown()
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if b.Commit == "" {
		b.Commit = rev
		if modified == "true" && rev != "" {
			b.Commit += " (modified)"
		}
	}
	if b.Version == "" {
		switch v := bi.Main.Version; {
		case v != "" && v != "(devel)":
			b.Version = v // go install module@version
		case rev != "":
			b.Version = "devel-" + rev[:min(len(rev), 12)]
			if modified == "true" {
				b.Version += "-dirty"
			}
		}
	}
	return b.orUnknown()
}

func (b buildInfo) orUnknown() buildInfo {
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// Version runs `recur version`.
func Version(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr, "",
		"Prints this binary's version, commit, Go version, and the BLAS backend and kernels\n"+
			"it multiplies with (openblas when built with `make build`, else gonum's pure Go).")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: version takes no arguments, got %q", errUsage, fs.Arg(0))
	}
	b := currentBuild(debug.ReadBuildInfo)
	_, err := fmt.Fprintf(stdout, "recur %s\ncommit:  %s\ngo:      %s %s/%s\nblas:    %s (%s)\n",
		b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH, b.BLAS, b.Kernels)
	return err
}
