// Package affinity pins a process to a set of CPUs, so that workers
// sharing a machine each keep their own cores (and caches) instead of
// having their runtime threads scheduled onto each other's cores.
package affinity

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a CPU list such as "0", "0,2" or "0-3,8".
func Parse(s string) ([]int, error) {
	var cpus []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("affinity: CPU list %q: bad CPU %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 4096 {
				return nil, fmt.Errorf("affinity: CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if !seen[c] {
				seen[c] = true
				cpus = append(cpus, c)
			}
		}
	}
	return cpus, nil
}

// Format writes cpus as a list Parse reads.
func Format(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// Split gives each of n processes its own `per` CPUs out of avail, in
// order, or nil when there are not enough for all of them (then nobody is
// pinned: sharing cores is the scheduler's business).
func Split(avail []int, n, per int) [][]int {
	if n < 1 || per < 1 || n*per > len(avail) {
		return nil
	}
	sets := make([][]int, n)
	for i := range sets {
		sets[i] = avail[i*per : (i+1)*per : (i+1)*per]
	}
	return sets
}
