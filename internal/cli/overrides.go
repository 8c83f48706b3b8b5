// Package cli implements Recur's commands: the coordinator and worker
// processes, the local mode of `recur train`, and the tools that work on a
// finished run (sample, eval, export).
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/recur-ml/recur/internal/job"
)

// setFlag collects repeated --set section.field=value overrides.
type setFlag []string

func (s *setFlag) String() string     { return strings.Join(*s, ",") }
func (s *setFlag) Set(v string) error { *s = append(*s, v); return nil }

// applyOverrides sets job fields from the environment (RECUR_SECTION_FIELD,
// e.g. RECUR_MODEL_HIDDEN=128) and then from --set section.field=value,
// which wins. Keys are the config file's YAML keys. A RECUR_ variable
// that is neither a key nor one of knownEnv is an error that suggests the
// closest name: a misspelt override must not be silently ignored.
func applyOverrides(jc *job.Config, sets []string) error {
	if err := checkEnv(os.Environ()); err != nil {
		return err
	}
	for _, key := range job.Keys() {
		env := job.EnvName(key)
		if s, ok := os.LookupEnv(env); ok {
			if err := jc.Set(key, s); err != nil {
				return fmt.Errorf("environment %s: %w", env, err)
			}
		}
	}
	for _, kv := range sets {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: want section.field=value", kv)
		}
		if err := jc.Set(k, val); err != nil {
			return fmt.Errorf("--set %s: %w", kv, err)
		}
	}
	return nil
}

// knownEnv are the RECUR_ variables that are not config keys: read by a
// command, a test, a script or the compose file. Add a variable here when
// something starts reading it.
var knownEnv = map[string]string{
	"RECUR_CLUSTER_KEY":            "the cluster key (recur keygen)",
	"RECUR_WORKER_CPUS":            "recur worker --cpus",
	"RECUR_RING_SECRET":            "ringbench --secret",
	"RECUR_DATA":                   "tests and benchmarks: the data directory",
	"RECUR_STATSMODELS_DATA":       "internal/task tests: the datasets of Debian's python3-statsmodels",
	"RECUR_SOAK":                   "the soak test",
	"RECUR_BENCH":                  "benchmark scripts",
	"RECUR_THREADS":                "pkg/rnn benchmarks",
	"RECUR_BLAS_THREADS":           "pkg/rnn benchmarks",
	"RECUR_CHECKPOINT_LOCK_HELPER": "pkg/checkpoint tests",
	"RECUR_TEXT":                   "deploy/compose: the corpus on the host",
	"RECUR_ENV_FILE":               "deploy/compose: the env file",
	"RECUR_IMAGE":                  "deploy/compose: the image",
	"RECUR_METRICS_PORT":           "deploy/compose: the metrics port",
	"RECUR_BIN":                    "internal/netns: the recur binary the cluster runs",
	"RECUR_NETNS":                  "internal/netns: run the network-namespace cluster (make test-netns)",
	"RECUR_NETNS_WORKERS":          "internal/netns: workers",
	"RECUR_NETNS_RATE":             "internal/netns: link rate",
	"RECUR_NETNS_STEPS":            "internal/netns: steps",
	"RECUR_NETNS_ROUNDS":           "internal/netns: fault rounds",
	"RECUR_BENCH_BATCH":            "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_BUCKET_BYTES":     "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_COMPRESSION":      "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_HIDDEN":           "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_LAYERS":           "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_MODES":            "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_PEERS":            "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_RANK":             "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_RANKS":            "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_RATE":             "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_SEQ":              "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_THREADS":          "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_TIMEOUT_MS":       "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_TLS":              "internal/worker BenchmarkOverlapStep",
	"RECUR_BENCH_TRANSPORT":        "internal/worker BenchmarkOverlapStep",
	"RECUR_REQUIRE_CHROMIUM":       "CI: the dashboard's browser test must run, not skip",
}

// checkEnv refuses a RECUR_ variable in env (KEY=VALUE lines) that is
// neither a config key's variable nor in knownEnv.
func checkEnv(env []string) error {
	var names []string
	keyed := map[string]string{}
	for _, k := range job.Keys() {
		keyed[job.EnvName(k)] = k
		names = append(names, job.EnvName(k))
	}
	for n := range knownEnv {
		names = append(names, n)
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "RECUR_") {
			continue
		}
		if _, ok := keyed[name]; ok {
			continue
		}
		if _, ok := knownEnv[name]; ok {
			continue
		}
		hint := " (config keys are RECUR_SECTION_KEY, e.g. RECUR_MODEL_HIDDEN for model.hidden)"
		if c, ok := job.Closest(name, names); ok {
			hint = fmt.Sprintf(" (did you mean %s?)", c)
			if k, ok := keyed[c]; ok {
				hint = fmt.Sprintf(" (did you mean %s, the config key %s?)", c, k)
			}
		}
		return fmt.Errorf("environment %s is not a config key or a variable recur reads%s", name, hint)
	}
	return nil
}

// placeholderKeys are the texts the example files put where a key goes
// (deploy/compose/cluster.env.example, deploy/k8s/secret.example.yaml).
// Long enough to pass the length check, and public: a cluster keyed with
// one is open to anyone who read the repository.
var placeholderKeys = []string{"replace-with-the-output-of-recur-keygen"}

// clusterKey reads the cluster key from RECUR_CLUSTER_KEY or a file.
func clusterKey(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		k := []byte(strings.TrimSpace(string(b)))
		if err := checkKey(k, "the cluster key in "+file); err != nil {
			return nil, err
		}
		return k, nil
	}
	if k := os.Getenv("RECUR_CLUSTER_KEY"); k != "" {
		if err := checkKey([]byte(k), "RECUR_CLUSTER_KEY"); err != nil {
			return nil, err
		}
		return []byte(k), nil
	}
	return nil, errors.New("no cluster key: set RECUR_CLUSTER_KEY (make one with `recur keygen`) or pass --key-file")
}

// checkKey refuses a key that is too short or an example's placeholder.
func checkKey(k []byte, what string) error {
	if len(k) < 16 {
		return fmt.Errorf("%s is %d bytes; use at least 16 (recur keygen)", what, len(k))
	}
	for _, p := range placeholderKeys {
		if strings.EqualFold(strings.TrimSpace(string(k)), p) {
			return fmt.Errorf("%s is the placeholder of the example files (%q), not a key: make one with `recur keygen` and put it there", what, p)
		}
	}
	return nil
}
