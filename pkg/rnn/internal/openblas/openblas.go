//go:build cgo

// Package openblas installs OpenBLAS (through gonum.org/v1/netlib) as the
// implementation of gonum's blas32 and blas64, and controls its threads.
// It is a separate package because a package that uses cgo cannot also hold
// Go assembly, which package rnn does.
package openblas

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

// SetThreads sets the number of threads of one OpenBLAS call (at least 1).
func SetThreads(n int) { C.openblas_set_num_threads(C.int(max(n, 1))) }

// Threads returns the number of threads of one OpenBLAS call.
func Threads() int { return int(C.openblas_get_num_threads()) }
