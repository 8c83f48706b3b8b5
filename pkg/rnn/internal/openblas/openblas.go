//go:build cgo

// Package openblas installs OpenBLAS (through gonum.org/v1/netlib) as the
// implementation of gonum's blas32 and blas64, and controls its threads.
// It is a separate package because a package that uses cgo cannot also hold
// Go assembly, which package rnn does.
//
// It also corrects OpenBLAS's choice of kernels: a DYNAMIC_ARCH build picks
// its kernels from the CPU model, and a build older than the CPU (Debian
// 12's 0.3.21 on Intel Emerald Rapids, for example) falls back to its SSE3
// "Prescott" kernels, about 5x slower than the AVX-512 ones the CPU runs.
// When OpenBLAS chose pre-AVX2 kernels on a CPU with AVX2 or AVX-512 and
// the user did not set OPENBLAS_CORETYPE, the package selects the kernels
// for the CPU's features instead (Cooperlake, SkylakeX or Haswell).
package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <stdlib.h>
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char *gotoblas_corename(void);
void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);

static void recur_select_core(const char *name) {
	setenv("OPENBLAS_CORETYPE", name, 1);
	gotoblas_dynamic_quit();
	gotoblas_dynamic_init();
}
*/
import "C"

import (
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

// detected is the core OpenBLAS chose itself, when the package replaced it.
var detected string

func init() {
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); !set {
		if want := BestCore(cpuFeatures()); want != "" && coreLevel(Core()) < 2 {
			detected = Core()
			name := C.CString(want)
			C.recur_select_core(name)
			C.free(unsafe.Pointer(name))
		}
	}
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
}

// Core returns the name of the kernels OpenBLAS uses ("Haswell",
// "SkylakeX", ...).
func Core() string { return strings.TrimSpace(C.GoString(C.gotoblas_corename())) }

// Reselected returns the kernels OpenBLAS had chosen itself when this
// package replaced them (see the package comment), else "".
func Reselected() string { return detected }

// Features are the CPU features that decide the kernels.
type Features struct {
	AVX2, FMA, AVX512, AVX512BF16 bool
}

func cpuFeatures() Features {
	x := cpu.X86
	return Features{AVX2: x.HasAVX2, FMA: x.HasFMA,
		AVX512: x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ, AVX512BF16: x.HasAVX512BF16}
}

// BestCore returns the OpenBLAS kernels for a CPU with features f, or ""
// when it has no AVX2 (OpenBLAS's own choice is then as good).
func BestCore(f Features) string {
	switch {
	case f.AVX512 && f.AVX512BF16:
		return "Cooperlake"
	case f.AVX512:
		return "SkylakeX"
	case f.AVX2 && f.FMA:
		return "Haswell"
	}
	return ""
}

// coreLevel ranks OpenBLAS kernels: 0 SSE, 1 AVX, 2 AVX2, 3 AVX-512.
func coreLevel(name string) int {
	switch strings.ToLower(name) {
	case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator":
		return 1
	case "haswell", "zen":
		return 2
	case "skylakex", "cooperlake", "sapphirerapids":
		return 3
	}
	return 0
}

// SetThreads sets the number of threads of one OpenBLAS call (at least 1).
func SetThreads(n int) { C.openblas_set_num_threads(C.int(max(n, 1))) }

// Threads returns the number of threads of one OpenBLAS call.
func Threads() int { return int(C.openblas_get_num_threads()) }
