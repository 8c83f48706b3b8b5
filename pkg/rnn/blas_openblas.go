//go:build openblas && cgo

package rnn

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
}

// BLASBackend names the BLAS implementation in use.
const BLASBackend = "openblas"

// SetBLASThreads sets the number of threads OpenBLAS uses for one call.
// Recur sets it deliberately: 1 when it runs its own goroutines over batch
// shards (no oversubscription), the core count when one goroutine calls.
func SetBLASThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.openblas_set_num_threads(C.int(n))
}

// BLASThreads returns the number of threads OpenBLAS uses for one call.
func BLASThreads() int { return int(C.openblas_get_num_threads()) }
