package cli

import (
	"fmt"
	"math"
	"os"

	"github.com/recur-ml/recur/internal/job"
)

// maxSampleChars bounds sample --n: ten million characters, far more
// than anyone reads, and no allocation that can fail.
const maxSampleChars = 10_000_000

// checkSampleFlags refuses a negative or huge --n and a negative or
// non-finite --temperature as usage errors naming the flag.
func checkSampleFlags(n int, temperature float64) error {
	if n < 0 || n > maxSampleChars {
		return fmt.Errorf("%w: sample --n must be in [0, %d], got %d", errUsage, maxSampleChars, n)
	}
	if temperature < 0 || math.IsNaN(temperature) || math.IsInf(temperature, 0) {
		return fmt.Errorf("%w: sample --temperature must be a finite number >= 0 (0 always takes the most likely character), got %v", errUsage, temperature)
	}
	return nil
}

// checkTrainFlags refuses the local mode's impossible flag values as
// usage errors naming the flag (0 keeps the job's value for --steps and
// --minutes, and samples nothing for --sample).
func checkTrainFlags(workers int, steps int64, minutes float64, sample int) error {
	switch {
	case workers < 1:
		return fmt.Errorf("%w: train --workers must be at least 1, got %d", errUsage, workers)
	case steps < 0:
		return fmt.Errorf("%w: train --steps must not be negative, got %d", errUsage, steps)
	case minutes < 0 || math.IsNaN(minutes) || math.IsInf(minutes, 0):
		return fmt.Errorf("%w: train --minutes must be a finite number >= 0, got %v", errUsage, minutes)
	case sample < 0 || sample > maxSampleChars:
		return fmt.Errorf("%w: train --sample must be in [0, %d], got %d", errUsage, maxSampleChars, sample)
	}
	return nil
}

// checkLocalMemory refuses a local run whose workers, all on this
// machine, need more memory together than it has. An explicit
// cluster.memory_limit is per worker and Validate has checked it.
func checkLocalMemory(jc job.Config, workers int) error {
	if jc.Cluster.MemoryLimit != "" {
		return nil
	}
	return jc.CheckMemory(jc.Sizes(), workers, workers, job.DetectMemoryLimit(os.DirFS("/")))
}
