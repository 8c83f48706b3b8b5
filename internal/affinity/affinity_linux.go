package affinity

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Available lists the CPUs this process may run on.
func Available() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("affinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Pin restricts every thread of this process, and so every thread it
// creates later, to cpus.
func Pin(cpus []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("affinity: no CPUs to pin to")
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c >= len(set)*64 {
			return fmt.Errorf("affinity: CPU %d out of range", c)
		}
		set.Set(c)
	}
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ { // threads may start while we go
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("affinity: %w", err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("affinity: pin thread %d to CPUs %s: %w", tid, Format(cpus), err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}
