//go:build cgo

package openblas

import (
	"os"
	"testing"
)

func TestBestCore(t *testing.T) {
	for _, c := range []struct {
		f    Features
		want string
	}{
		{Features{}, ""},
		{Features{AVX2: true}, ""}, // no FMA: leave OpenBLAS's choice
		{Features{AVX2: true, FMA: true}, "Haswell"},
		{Features{AVX2: true, FMA: true, AVX512: true}, "SkylakeX"},
		{Features{AVX2: true, FMA: true, AVX512: true, AVX512BF16: true}, "Cooperlake"},
	} {
		if got := BestCore(c.f); got != c.want {
			t.Errorf("BestCore(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	for name, level := range map[string]int{"Prescott": 0, "Core2": 0, "Nehalem": 0, "Sandybridge": 1, "Haswell": 2, "Zen": 2, "SkylakeX": 3, "Cooperlake": 3} {
		if got := coreLevel(name); got != level {
			t.Errorf("coreLevel(%q) = %d, want %d", name, got, level)
		}
	}
}

// TestCoreMatchesCPU: on a CPU with AVX2 and FMA, the kernels in use are at
// least AVX2 ones, whatever OpenBLAS detected by itself (unless the user
// forced a core type).
func TestCoreMatchesCPU(t *testing.T) {
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); set {
		t.Skip("OPENBLAS_CORETYPE is set")
	}
	core := Core()
	t.Logf("OpenBLAS core %s (OpenBLAS chose %q itself; features %+v)", core, Reselected(), cpuFeatures())
	if BestCore(cpuFeatures()) != "" && coreLevel(core) < 2 {
		t.Fatalf("OpenBLAS uses %s kernels on a CPU with AVX2/FMA", core)
	}
}
