package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
)

func TestOverrides(t *testing.T) {
	t.Setenv("RECUR_MODEL_HIDDEN", "77")
	t.Setenv("RECUR_TRAIN_STEPS", "5")
	jc := job.Default()
	if err := applyOverrides(&jc, []string{"train.steps=9", "optimizer.adam.beta1=0.8", "model.cell=gru"}); err != nil {
		t.Fatal(err)
	}
	if jc.Model.Hidden != 77 || jc.Train.Steps != 9 || jc.Optimizer.Adam.Beta1 != 0.8 || jc.Model.Cell != "gru" {
		t.Fatalf("overrides not applied: %+v", jc)
	}
	for _, bad := range []string{"model.hiden=3", "model.hidden", "model.hidden=x"} {
		if err := applyOverrides(&jc, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "model.hid") {
			t.Errorf("%q: error %q does not name the key", bad, err)
		}
	}
}

// --set of a NaN or Inf names the key (it used to pass Validate and fail
// later as "json: unsupported value: NaN").
func TestOverridesNaN(t *testing.T) {
	for _, v := range []string{"NaN", "Inf", "-inf"} {
		jc := job.Default()
		err := applyOverrides(&jc, []string{"data.train_fraction=" + v})
		if err == nil || !strings.Contains(err.Error(), "data.train_fraction") || !strings.Contains(err.Error(), "NaN and Inf are not allowed") {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// A misspelt RECUR_ variable is an error naming it and the closest key;
// the variables recur reads that are not keys pass.
func TestOverridesUnknownEnv(t *testing.T) {
	t.Setenv("RECUR_MODEL_HIDEN", "128")
	jc := job.Default()
	err := applyOverrides(&jc, nil)
	if err == nil || !strings.Contains(err.Error(), "RECUR_MODEL_HIDEN") || !strings.Contains(err.Error(), "RECUR_MODEL_HIDDEN") ||
		!strings.Contains(err.Error(), "model.hidden") {
		t.Fatalf("misspelt variable: %v", err)
	}
	os.Unsetenv("RECUR_MODEL_HIDEN")
	for name := range knownEnv {
		t.Setenv(name, "x")
	}
	t.Setenv("RECUR_TRAIN_MINUTES", "3")
	if err := applyOverrides(&jc, nil); err != nil || jc.Train.Minutes != 3 {
		t.Fatalf("known variables: %v (minutes %v)", err, jc.Train.Minutes)
	}
	if err := checkEnv([]string{"RECUR_ZZZZZZZZZZZZZZZ=1"}); err == nil || !strings.Contains(err.Error(), "RECUR_SECTION_KEY") {
		t.Fatalf("a far-off name: %v", err)
	}
	if err := checkEnv([]string{"RECURSIVE=1", "HOME=/", "RECUR_CLUSTER_KEY"}); err != nil {
		t.Fatalf("other variables: %v", err)
	}
}

// Every RECUR_ variable the repository's code reads is a key or known:
// a new os.Getenv("RECUR_...") must be added to knownEnv.
func TestKnownEnvComplete(t *testing.T) {
	re := regexp.MustCompile(`Getenv\("(RECUR_[A-Z0-9_]+)"\)|LookupEnv\("(RECUR_[A-Z0-9_]+)"\)`)
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2]
			if checkEnv([]string{name + "=1"}) != nil {
				t.Errorf("%s reads %s, which checkEnv refuses: add it to knownEnv", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The placeholder of the example key files is refused, with a pointer to
// recur keygen; the test reads the placeholders from the files.
func TestPlaceholderKeyRefused(t *testing.T) {
	for _, f := range []string{"../../deploy/compose/cluster.env.example", "../../deploy/k8s/secret.example.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*RECUR_CLUSTER_KEY[=:]\s*(\S+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no RECUR_CLUSTER_KEY", f)
		}
		t.Setenv("RECUR_CLUSTER_KEY", string(m[1]))
		if _, err := clusterKey(""); err == nil || !strings.Contains(err.Error(), "recur keygen") || !strings.Contains(err.Error(), "placeholder") {
			t.Errorf("%s's placeholder %q: %v", f, m[1], err)
		}
		kf := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(kf, append(m[1], '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := clusterKey(kf); err == nil || !strings.Contains(err.Error(), "placeholder") {
			t.Errorf("%s's placeholder in a key file: %v", f, err)
		}
	}
	t.Setenv("RECUR_CLUSTER_KEY", "0123456789abcdef0123")
	if _, err := clusterKey(""); err != nil {
		t.Fatalf("a real key: %v", err)
	}
}
