//go:build linux

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/worker"
)

// The ports every process uses inside its own node.
const (
	controlPort       = 7070
	ringPort          = 7071
	peerPort          = 7072
	gossipPort        = 7946
	coordMetricsPort  = 9090
	workerMetricsPort = 9100
)

// harness is a Recur cluster in a Net: the coordinator in node c, worker
// wI in node wI, and an unshaped node mon from which the test scrapes
// /metrics. Everything it reads is typed: the run's metrics.jsonl and the
// processes' /metrics.
type harness struct {
	t      *testing.T
	ctx    context.Context
	net    *Net
	coord  *Node
	mon    *Node
	nodes  map[string]*Node // worker id -> node
	ids    []string
	bin    string
	dir    string // the run directory
	logs   string
	args   []string // the coordinator's job flags
	client *http.Client

	mu      sync.Mutex
	procs   map[string]*proc // "coordinator" or a worker id
	last    map[string]worker.MetricsSummary
	samples []stateSample

	hist   *history
	faults []fault
	checks float64 // state checksums compared by coordinators killed since
}

// proc is a running recur process and its log (for people: dumped when a
// test fails, never parsed).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it has exited
	err  error         // how, once done is closed
	// killed: the harness killed it (an exit it expects).
	killed bool
}

// stateSample is the state a worker's /metrics showed.
type stateSample struct {
	worker string
	step   int64
	crc    uint32
}

func newHarness(t *testing.T, ctx context.Context, n *Net, bin string, workers int, jobArgs []string) *harness {
	t.Helper()
	h := &harness{t: t, ctx: ctx, net: n, bin: bin, dir: t.TempDir(), logs: t.TempDir(), args: jobArgs,
		nodes: map[string]*Node{}, procs: map[string]*proc{}, last: map[string]worker.MetricsSummary{}}
	var err error
	if h.coord, err = n.Add(ctx, "c", true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= workers; i++ {
		id := fmt.Sprintf("w%d", i)
		if h.nodes[id], err = n.Add(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		h.ids = append(h.ids, id)
	}
	if h.mon, err = n.Add(ctx, "mon", false); err != nil {
		t.Fatal(err)
	}
	h.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.mon.DialContext, DisableKeepAlives: true}}
	h.hist = &history{path: filepath.Join(h.dir, events.MetricsFile)}
	t.Cleanup(h.stopAll)
	return h
}

// start runs recur with args in node nd under name.
func (h *harness) start(name string, nd *Node, args ...string) {
	h.t.Helper()
	log := filepath.Join(h.logs, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(log)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := nd.Command(h.ctx, h.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(childEnv(), "RECUR_CLUSTER_KEY=netns-cluster-test-key-0123456789")
	if err := cmd.Start(); err != nil {
		f.Close()
		h.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	h.mu.Lock()
	h.procs[name] = p
	h.mu.Unlock()
}

// startCoordinator starts the coordinator, bound to every interface of its
// node without --advertise: it must advertise its node's address by itself.
func (h *harness) startCoordinator() {
	args := append([]string{"coordinator", "--listen", fmt.Sprintf("0.0.0.0:%d", controlPort),
		"--gossip", fmt.Sprintf("0.0.0.0:%d", gossipPort), "--metrics", fmt.Sprintf("0.0.0.0:%d", coordMetricsPort),
		"--dir", h.dir, "--start-workers", strconv.Itoa(len(h.ids))}, h.args...)
	h.start("coordinator", h.coord, args...)
}

// startWorker starts worker id, its listeners bound to every interface of
// its node without --advertise, as on a host of its own.
func (h *harness) startWorker(id string) {
	h.start(id, h.nodes[id], "worker", "--id", id, "--coordinator", h.coord.Addr(controlPort), "--gossip", h.coord.Addr(gossipPort),
		"--ring-listen", fmt.Sprintf("0.0.0.0:%d", ringPort), "--peer-listen", fmt.Sprintf("0.0.0.0:%d", peerPort),
		"--gossip-listen", fmt.Sprintf("0.0.0.0:%d", gossipPort), "--metrics", fmt.Sprintf("0.0.0.0:%d", workerMetricsPort),
		"--join-timeout", "5m")
}

// childEnv is this process's environment without its RECUR_ variables
// (the test's switches), which recur would refuse as unknown keys.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RECUR_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill sends SIGKILL to process name and waits for it.
func (h *harness) kill(name string) {
	h.mu.Lock()
	p := h.procs[name]
	p.killed = true
	h.mu.Unlock()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// died returns a process that exited without the harness killing it,
// while the run is on (nil: none).
func (h *harness) died() *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.procs {
		select {
		case <-p.done:
			if !p.killed {
				return p
			}
		default:
		}
	}
	return nil
}

// proc returns process name.
func (h *harness) proc(name string) *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.procs[name]
}

// stopAll kills every process still running (the Net's Close then
// removes the namespaces).
func (h *harness) stopAll() {
	h.mu.Lock()
	procs := make([]*proc, 0, len(h.procs))
	for _, p := range h.procs {
		procs = append(procs, p)
	}
	h.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.done
	}
}

// dumpLogs shows the last lines of every process's log.
func (h *harness) dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(h.logs, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		h.t.Logf("---- %s (last lines)\n%s", filepath.Base(f), strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
}

// get fetches url from the monitor node.
func (h *harness) get(url string) ([]byte, error) {
	resp, err := h.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}

// coordMetric reads one series of the coordinator's /metrics (false when
// unreachable).
func (h *harness) coordMetric(name string) (float64, bool) {
	b, err := h.get("http://" + h.coord.Addr(coordMetricsPort) + "/metrics")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// scrape reads every worker's /metrics once, keeping the last summary of
// each and the state it showed.
func (h *harness) scrape() {
	var wg sync.WaitGroup
	for _, id := range h.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.scrapeOne(id); err != nil && !errors.Is(err, errUnreachable) {
				h.t.Errorf("%s's /metrics: %v", id, err)
			}
		}()
	}
	wg.Wait()
}

// errUnreachable: a worker down, cut off or restarting.
var errUnreachable = errors.New("unreachable")

// scrapeOne reads worker id's /metrics, and keeps it as in scrape.
func (h *harness) scrapeOne(id string) (worker.MetricsSummary, error) {
	b, err := h.get("http://" + h.nodes[id].Addr(workerMetricsPort) + "/metrics")
	if err != nil {
		return worker.MetricsSummary{}, fmt.Errorf("%w: %v", errUnreachable, err)
	}
	s, err := worker.ReadMetrics(bytes.NewReader(b))
	if err != nil {
		return s, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[id] = s
	if s.StateCRC != 0 {
		h.samples = append(h.samples, stateSample{id, s.StateStep, s.StateCRC})
	}
	return s, nil
}

// scrapeEvery scrapes until ctx ends.
func (h *harness) scrapeEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.scrape()
		}
	}
}

// waitFor polls the run's history until ok holds, saying every 10 s what
// it waits for; it fails the test after limit.
func (h *harness) waitFor(what string, limit time.Duration, ok func(ev []events.Event) bool) {
	h.t.Helper()
	start := time.Now()
	said := start
	for {
		ev := h.hist.read(h.t)
		if ok(ev) {
			return
		}
		if p := h.died(); p != nil && (len(ev) == 0 || !ev[len(ev)-1].Kind.Ends()) {
			h.dumpLogs()
			h.t.Fatalf("waiting for %s: %s exited: %v", what, p.name, p.err)
		}
		if time.Since(start) > limit || h.ctx.Err() != nil {
			h.dumpLogs()
			h.t.Fatalf("waited %v for %s", time.Since(start).Round(time.Second), what)
		}
		if time.Since(said) >= 10*time.Second {
			said = time.Now()
			h.t.Logf("waiting %v for %s (last step %d)", time.Since(start).Round(time.Second), what, lastStep(h.hist.read(h.t)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSteps waits until n steps with every worker in the ring have been
// recorded after since.
func (h *harness) waitSteps(n int, since time.Time, limit time.Duration) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d steps with all %d workers", n, len(h.ids)), limit, func(ev []events.Event) bool {
		c := 0
		for _, e := range ev {
			if e.Kind == events.EventStep && e.Members == len(h.ids) && e.Time.After(since) {
				c++
			}
		}
		return c >= n
	})
}

// waitStepAfter waits for a step recorded after since (by any ring) and
// returns it.
func (h *harness) waitStepAfter(since time.Time, limit time.Duration, what string) events.Event {
	h.t.Helper()
	var got events.Event
	h.waitFor(what, limit, func(ev []events.Event) bool {
		for _, e := range ev {
			if e.Kind == events.EventStep && e.Time.After(since) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// lastStep is the last step recorded in ev (0: none).
func lastStep(ev []events.Event) int64 {
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].Kind == events.EventStep {
			return ev[i].Step
		}
	}
	return 0
}

// history reads a run's metrics.jsonl as it grows: only whole lines, and
// each line once.
type history struct {
	path string
	off  int64
	ev   []events.Event
	bad  int
}

func (hs *history) read(t *testing.T) []events.Event {
	f, err := os.Open(hs.path)
	if err != nil {
		return hs.ev // not written yet
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, hs.off, 1<<40))
	if err != nil {
		t.Logf("reading %s: %v", hs.path, err)
		return hs.ev
	}
	whole := bytes.LastIndexByte(b, '\n') + 1
	if whole == 0 {
		return hs.ev
	}
	ev, bad, _ := events.ReadEvents(bytes.NewReader(b[:whole]))
	hs.ev, hs.bad, hs.off = append(hs.ev, ev...), hs.bad+bad, hs.off+int64(whole)
	return hs.ev
}
