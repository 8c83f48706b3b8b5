//go:build !linux

package affinity

import (
	"errors"
	"runtime"
)

// Available lists the CPUs this process may run on (all, where the
// system cannot say).
func Available() ([]int, error) {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus, nil
}

// Pin is not supported here.
func Pin([]int) error { return errors.New("affinity: pinning is supported on Linux only") }
