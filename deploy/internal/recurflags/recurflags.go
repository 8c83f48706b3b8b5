// Package recurflags reads the flags of the recur binary's commands from
// their --help output, so the deployment tests check manifests against the
// flags the binary really has (a renamed flag fails them).
package recurflags

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

var (
	once  sync.Once
	dir   string
	bin   string
	bErr  error
	flagR = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
)

// Binary builds ./cmd/recur (pure Go: the flags do not depend on cgo) once
// per test process and returns its path.
func Binary() (string, error) {
	once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			bErr = err
			return
		}
		if dir, err = os.MkdirTemp("", "recurflags"); err != nil {
			bErr = err
			return
		}
		bin = filepath.Join(dir, "recur")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/recur")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			bErr = fmt.Errorf("go build ./cmd/recur: %v\n%s", err, out)
		}
	})
	return bin, bErr
}

// Cleanup removes the binary; call it from TestMain after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Flags returns the flag names (without dashes) of `recur COMMAND`.
func Flags(command string) (map[string]bool, error) {
	b, err := Binary()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(b, command, "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("recur %s --help: %v\n%s", command, err, out.String())
	}
	flags := map[string]bool{}
	for _, m := range flagR.FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("recur %s --help lists no flags:\n%s", command, out.String())
	}
	return flags, nil
}

// Arg is one parsed command-line flag: --name=value or --name value.
type Arg struct{ Name, Value string }

// Parse splits args after the command into flags, like the flag package
// does (a flag without "=" takes the next argument unless it is boolean).
func Parse(args []string, boolean map[string]bool) ([]Arg, error) {
	var out []Arg
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("argument %q is not a flag", a)
		}
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok && !boolean[name] {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag --%s has no value", name)
			}
			i++
			value = args[i]
		}
		out = append(out, Arg{name, value})
	}
	return out, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the recur module")
	}
	return filepath.Dir(mod), nil
}
