//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// netnsDir is where ip netns keeps the namespaces it names.
const netnsDir = "/run/netns"

// Sweep removes the namespaces of runs whose process is gone (a run killed
// before its Close), killing what still runs in them, and returns their
// names. Namespaces of live runs are left alone.
func Sweep(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	stale := map[string]bool{} // run prefixes
	for _, e := range ents {
		if p, pid, ok := runOf(e.Name()); ok && !alive(pid) {
			stale[p] = true
		}
	}
	var removed []string
	var errs []error
	for p := range stale {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				removed = append(removed, e.Name())
			}
		}
		errs = append(errs, removeNamespaces(ctx, p))
	}
	return removed, errors.Join(errs...)
}

// runOf splits a namespace name made by this package into its run's
// prefix and process id.
func runOf(name string) (prefix string, pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, prefixRoot)
	if !ok {
		return "", 0, false
	}
	f := strings.SplitN(rest, "-", 3) // pid, random, node
	if len(f) != 3 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return prefixRoot + f[0] + "-" + f[1] + "-", pid, true
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// removeNamespaces kills the processes inside every namespace whose name
// starts with prefix, then deletes the namespaces.
func removeNamespaces(ctx context.Context, prefix string) error {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	for _, ns := range names {
		killInside(ctx, ns)
	}
	var errs []error
	for _, ns := range names {
		errs = append(errs, ip(ctx, "netns", "del", ns))
	}
	return errors.Join(errs...)
}

// killInside kills every process in namespace ns (ip netns pids) and
// waits up to 5 s for them to go.
func killInside(ctx context.Context, ns string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := commandOutput(ctx, "ip", "netns", "pids", ns)
		if err != nil || len(strings.Fields(out)) == 0 || time.Now().After(deadline) {
			return
		}
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
