package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// hexKey is what keygen prints.
var hexKey = regexp.MustCompile(`(?m)^[0-9a-f]{64}$`)

// TestHelpEveryCommand runs the built binary's help of every command, in
// its three spellings, from an empty directory with a fresh HOME and
// TMPDIR: each exits 0, prints a usage naming the command, and leaves no
// file behind (keygen prints no key, gendata writes no data).
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			cwd, home, tmp := t.TempDir(), t.TempDir(), t.TempDir()
			cmd := exec.Command(recurBin, args...)
			cmd.Dir = cwd
			cmd.Env = append(os.Environ(), "HOME="+home, "TMPDIR="+tmp, "XDG_CONFIG_HOME=", "XDG_CACHE_HOME=")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			name := strings.Join(args, " ")
			if err != nil {
				t.Fatalf("recur %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			// export keeps the flag package's "Usage of recur export:".
			if !regexp.MustCompile(`Usage(: | of )recur ` + c.name + `\b`).MatchString(out) {
				t.Errorf("recur %s: the usage on standard output does not name the command:\n%s", name, out)
			}
			if !strings.Contains(out, "\n") || len(strings.TrimSpace(out)) < 40 {
				t.Errorf("recur %s: usage too short: %q", name, out)
			}
			if hexKey.MatchString(out) {
				t.Errorf("recur %s printed a key:\n%s", name, out)
			}
			if stderr.Len() > 0 {
				t.Errorf("recur %s wrote to standard error: %s", name, stderr.String())
			}
			for _, d := range []string{cwd, home, tmp} {
				if ents, _ := os.ReadDir(d); len(ents) > 0 {
					t.Errorf("recur %s left %s in %s", name, ents[0].Name(), d)
				}
			}
		}
	}
}

// TestHelpAfterFlags: a help flag after other flags is still help (the
// flag package's usage, on standard error), exit 0.
func TestHelpAfterFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Recur([]string{"gendata", "add", "-n", "3", "-h"}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if stdout.Len() > 0 || !strings.Contains(stderr.String(), "Usage: recur gendata") {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

func TestUsageListsCommands(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}, {"-h"}} {
		var stdout, stderr bytes.Buffer
		if code := Recur(args, &stdout, &stderr); code != ExitOK {
			t.Fatalf("recur %v: exit %d", args, code)
		}
		for _, c := range commands() {
			if !strings.Contains(stdout.String(), c.name+" ") || !strings.Contains(stdout.String(), c.summary) {
				t.Errorf("recur %v: %s and its summary are not listed:\n%s", args, c.name, stdout.String())
			}
		}
	}
	for _, args := range [][]string{{"nope"}, {"help", "nope"}, {"help", "train", "sample"}} {
		var stdout, stderr bytes.Buffer
		if code := Recur(args, &stdout, &stderr); code != ExitUsage {
			t.Errorf("recur %v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

func TestGenDataArguments(t *testing.T) {
	var out bytes.Buffer
	if err := GenData([]string{"-n", "2", "seasonal"}, &out, &out); err != nil {
		t.Fatalf("flags before the data set: %v", err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 3 {
		t.Fatalf("%d lines, want a header and 2 rows:\n%s", lines, out.String())
	}
	for _, args := range [][]string{nil, {"-n", "2"}, {"add", "sort"}, {"bogus"}} {
		dir := t.TempDir()
		err := GenData(append(args, "--out", filepath.Join(dir, "x")), &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, errUsage) {
			t.Errorf("gendata %v: %v, want a usage error", args, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("gendata %v wrote %s", args, ents[0].Name())
		}
	}
}

func TestKeygen(t *testing.T) {
	var out bytes.Buffer
	if err := Keygen(nil, &out, &out); err != nil || !hexKey.MatchString(strings.TrimSpace(out.String())) {
		t.Fatalf("keygen: %v, %q", err, out.String())
	}
	if err := Keygen([]string{"extra"}, &out, &out); !errors.Is(err, errUsage) {
		t.Fatalf("keygen extra: %v", err)
	}
}
