//go:build openblas && cgo

package rnn

import "github.com/recur-ml/recur/pkg/rnn/internal/openblas"

// BLASBackend names the BLAS implementation in use.
const BLASBackend = "openblas"

// SetBLASThreads sets the number of threads OpenBLAS uses for one call.
// Recur sets it deliberately: 1 when it runs its own goroutines over batch
// shards (no oversubscription), the core count when one goroutine calls.
func SetBLASThreads(n int) { openblas.SetThreads(n) }

// BLASThreads returns the number of threads OpenBLAS uses for one call.
func BLASThreads() int { return openblas.Threads() }

// BLASKernels describes the OpenBLAS kernels in use, and the ones OpenBLAS
// had chosen itself when Recur replaced a pre-AVX2 choice on a newer CPU.
func BLASKernels() string {
	if d := openblas.Reselected(); d != "" {
		return openblas.Core() + " (OpenBLAS detected " + d + ")"
	}
	return openblas.Core()
}
