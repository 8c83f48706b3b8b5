package cli

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// Impossible flag values are usage errors (exit 2) that name the flag,
// before any run directory is read or process started: sample --n -5
// used to panic (makeslice: cap out of range), --minutes -1 and
// --temperature -1 were accepted.
func TestFlagRanges(t *testing.T) {
	dir := t.TempDir() // not a run directory: the flags must be refused first
	for _, tc := range []struct {
		args []string
		flag string
		run  func([]string) error
	}{
		{[]string{"--n", "-5"}, "--n", nil},
		{[]string{"--n", "100000000000"}, "--n", nil},
		{[]string{"--temperature", "-1"}, "--temperature", nil},
		{[]string{"--temperature", "NaN"}, "--temperature", nil},
		{[]string{"--minutes", "-1"}, "--minutes", localTrain},
		{[]string{"--minutes", "NaN"}, "--minutes", localTrain},
		{[]string{"--steps", "-3"}, "--steps", localTrain},
		{[]string{"--sample", "-1"}, "--sample", localTrain},
		{[]string{"--workers", "0"}, "--workers", localTrain},
	} {
		run := tc.run
		if run == nil {
			run = func(a []string) error { return Sample(append(a, "--run", dir), io.Discard, io.Discard) }
		}
		err := run(tc.args)
		if code := ExitCode(err); code != ExitUsage || !strings.Contains(fmtErr(err), tc.flag) {
			t.Errorf("%v: exit %d, error %v; want exit %d naming %s", tc.args, code, err, ExitUsage, tc.flag)
		}
	}
	// In range, sample goes on to the run directory (and fails there).
	if err := Sample([]string{"--n", "0", "--temperature", "0", "--run", dir}, io.Discard, io.Discard); ExitCode(err) != ExitError {
		t.Fatalf("valid flags: %v", err)
	}
}

func localTrain(args []string) error {
	return Train(context.Background(), append(args, "--dir", "/nonexistent/recur-test"), io.Discard, io.Discard)
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A missing char-LM corpus is refused by recur train before it starts a
// process (exit 1), with the ways to name another file: the example's
// default path used to fail in the coordinator's log with only "no such
// file or directory".
func TestTrainMissingTextSaysHow(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "tinyshakespeare.txt")
	err := localTrain([]string{"--text", missing, "--steps", "1"})
	if code := ExitCode(err); code != ExitError {
		t.Fatalf("exit %d (%v), want %d", code, err, ExitError)
	}
	for _, want := range []string{missing, "--text FILE", "--set data.text=FILE"} {
		if !strings.Contains(fmtErr(err), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
}
