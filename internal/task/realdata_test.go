package task

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
)

// statsmodelsEnv names the directory of the datasets Debian's
// python3-statsmodels ships (make setup installs it; .ci/run sets the
// variable): the real series of the README's forecast table.
const statsmodelsEnv = "RECUR_STATSMODELS_DATA"

// The example configs of the README's real series open on them, say which
// columns they use and how the rows are split, and the baselines give the
// figures the README reports (a change of their definitions shows here).
func TestRealSeries(t *testing.T) {
	dir := os.Getenv("RECUR_STATSMODELS_DATA") // statsmodelsEnv, literal for TestKnownEnvComplete
	if dir == "" {
		t.Skipf("%s is not set: the directory of statsmodels' datasets (apt-get install python3-statsmodels; "+
			"/usr/lib/python3/dist-packages/statsmodels/datasets)", statsmodelsEnv)
	}
	for _, tc := range []struct {
		config, csv, columns string
		// RMSE at step 1 and at the last step: persistence, seasonal
		// naive, linear AR, to one decimal as in the README.
		step1, stepH [3]float64
	}{
		{"sunspots.yaml", "sunspots/sunspots.csv",
			"inputs SUNACTIVITY; targets SUNACTIVITY; not read: YEAR; rows: training 0-222, validation 223-246, test 247-308",
			[3]float64{33.8, 38.4, 20.9}, [3]float64{78.8, 37.2, 34.3}},
		{"elec_equip.yaml", "elec_equip/elec_equip.csv",
			"inputs STS.M.I7.W.TOVT.NS0016.4.000; targets STS.M.I7.W.TOVT.NS0016.4.000; not read: DATE; rows: training 0-184, validation 185-204, test 205-256",
			[3]float64{11.6, 3.5, 1.6}, [3]float64{8.1, 3.4, 2.3}},
	} {
		t.Run(tc.config, func(t *testing.T) {
			jc, err := job.Load(filepath.Join("..", "..", "examples", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			jc.Data.Train, jc.Cluster.MemoryLimit = filepath.Join(dir, tc.csv), "8GB"
			if _, err := os.Stat(jc.Data.Train); err != nil {
				t.Fatalf("%s holds no %s: %v", statsmodelsEnv, tc.csv, err)
			}
			d, err := DescribeForecast(jc)
			if err != nil {
				t.Fatal(err)
			}
			if d.String() != tc.columns {
				t.Errorf("columns: %s, want %s", d, tc.columns)
			}
			rep, err := EvaluateReport(jc, newModel(t, jc))
			if err != nil {
				t.Fatal(err)
			}
			fe := rep.Forecast
			for i, m := range []string{MethodPersistence, MethodSeasonal, MethodLinearAR} {
				mi := slices.Index(fe.Methods, m)
				if mi < 0 {
					t.Fatalf("no %s in %v (notes %v)", m, fe.Methods, fe.Notes)
				}
				got := [2]float64{fe.RMSE[mi][0][0], fe.RMSE[mi][0][fe.Horizon-1]}
				want := [2]float64{tc.step1[i], tc.stepH[i]}
				for k := range got {
					if math.Round(got[k]*10)/10 != want[k] {
						t.Errorf("%s RMSE at step %d: %.3f, the README says %.1f", m, []int{1, fe.Horizon}[k], got[k], want[k])
					}
				}
			}
		})
	}
	jc, err := job.Load(filepath.Join("..", "..", "examples", "elec_equip.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	jc.Data.Train, jc.Data.Inputs, jc.Cluster.MemoryLimit = filepath.Join(dir, "elec_equip", "elec_equip.csv"), "", "8GB"
	want := `config data.train: elec_equip.csv:2: column "DATE": expected a finite number, got "Jan-1-1995"`
	if _, err := Open(jc); err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "set data.inputs") {
		t.Errorf("every column read: %v", err)
	}
}
