//go:build !openblas || !cgo

package rnn

// BLASBackend names the BLAS implementation in use.
const BLASBackend = "gonum"

// SetBLASThreads is a no-op for the pure-Go BLAS, which runs on the calling
// goroutine (gonum parallelises large products itself).
func SetBLASThreads(n int) {}

// BLASThreads returns 1 for the pure-Go BLAS.
func BLASThreads() int { return 1 }

// BLASKernels describes the BLAS kernels in use: gonum's pure-Go ones.
func BLASKernels() string { return "gonum pure Go" }
