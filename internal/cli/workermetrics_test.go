package cli

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/worker"
)

// recur worker --metrics serves the worker's Prometheus metrics and its
// readiness from the start, before it has joined anyone; local mode gives
// every worker such an address and prints it.
func TestWorkerMetricsFlag(t *testing.T) {
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + ports[0]
	cmd := exec.Command(recurBin, "worker", "--id", "w-metrics", "--coordinator", "127.0.0.1:1", "--gossip", "", "--join-timeout", "1m",
		"--metrics", addr)
	cmd.Env = append(os.Environ(), "RECUR_CLUSTER_KEY=metrics-flag-test-key-0123456")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	get := func(path string) (int, []byte, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b, err
	}
	var body []byte
	waitFor(t, time.Minute, "the worker's /metrics", func() bool {
		code, b, err := get("/metrics")
		body = b
		return err == nil && code == http.StatusOK
	})
	s, err := worker.ReadMetrics(bytes.NewReader(body))
	if err != nil || s.Worker != "w-metrics" || s.StepsOK != 0 || s.Step.Count != 0 {
		t.Fatalf("metrics of a worker that has not joined: %+v, %v\n%s", s, err, body)
	}
	if code, _, err := get("/healthz"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz of a worker in no generation: %d, %v", code, err)
	}
}
