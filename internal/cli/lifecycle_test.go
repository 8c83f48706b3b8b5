package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// trainCmd is `recur train` of a small model of a test corpus (the same
// for every call in a test) in dir.
func trainCmd(t *testing.T, dir string, workers int, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	corpus := filepath.Join(dir, "..", filepath.Base(dir)+"-corpus.txt")
	if _, err := os.Stat(corpus); err != nil {
		if err := os.Rename(writeCorpus(t), corpus); err != nil {
			t.Fatal(err)
		}
	}
	a := []string{"train", "--text", corpus, "--workers", strconv.Itoa(workers), "--dir", dir, "--sample", "0",
		"--set", "model.hidden=32", "--set", "model.layers=1", "--set", "model.embed=8", "--set", "data.seq=16",
		"--set", "data.batch=8", "--set", "train.val_windows=2", "--set", "train.threads=1"}
	cmd := exec.Command(recurBin, append(a, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// exitCode runs cmd to its end (at most limit) and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		cmd.Process.Kill()
		t.Fatalf("%v did not end in %v\n%s", cmd.Args, limit, out)
	}
	return -1
}

func runCmd(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, limit time.Duration) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return exitCode(t, cmd, out, limit)
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A finished run rerun trains no further step (it used to train one more
// each time), and exits 0.
func TestTrainRerunOfFinishedRun(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		cmd, out := trainCmd(t, dir, 1, "--steps", "3")
		if code := runCmd(t, cmd, out, 2*time.Minute); code != ExitOK {
			t.Fatalf("run %d: exit %d\n%s", i, code, out)
		}
		if !strings.Contains(out.String(), "recur: dashboard http://127.0.0.1:") {
			t.Fatalf("run %d does not say where its dashboard is:\n%s", i, out)
		}
		if !strings.Contains(out.String(), "worker-1 http://127.0.0.1:") {
			t.Fatalf("run %d: local mode did not say where the worker's metrics are:\n%s", i, out)
		}
		ev, out := exec.Command(recurBin, "eval", "--run", dir), &bytes.Buffer{}
		ev.Stdout, ev.Stderr = out, out
		if code := runCmd(t, ev, out, time.Minute); code != 0 || !strings.Contains(out.String(), "step 3") {
			t.Fatalf("run %d: eval exit %d, want the checkpoint of step 3:\n%s", i, code, out)
		}
	}
}

// SIGINT stops the run with a final checkpoint of the step reached and
// exit code 130; the same command resumes from there.
func TestTrainInterruptedSavesAndSaysSo(t *testing.T) {
	dir := t.TempDir()
	cmd, out := trainCmd(t, dir, 2, "--steps", "1000000", "--set", "train.checkpoint_every=100000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "a checkpoint-free run to train 3 steps", func() bool {
		evs, _, _ := events.ReadEventsFile(filepath.Join(dir, events.MetricsFile))
		steps := 0
		for _, e := range evs {
			if e.Kind == events.EventStep {
				steps++
			}
		}
		return steps >= 3
	})
	time.Sleep(2 * time.Second)
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd, out, time.Minute); code != ExitInterrupted {
		t.Fatalf("exit %d after SIGINT, want %d\n%s", code, ExitInterrupted, out)
	}
	ev, eout := exec.Command(recurBin, "eval", "--run", dir), &bytes.Buffer{}
	ev.Stdout, ev.Stderr = eout, eout
	if code := runCmd(t, ev, eout, time.Minute); code != 0 || strings.Contains(eout.String(), "step 0 ") {
		t.Fatalf("eval after the interrupt: exit %d, want a final checkpoint past step 0:\n%s", code, eout)
	}
}

// kill -9 of recur train takes its coordinator and workers with it.
func TestTrainKilledTakesItsChildren(t *testing.T) {
	cmd, out := trainCmd(t, t.TempDir(), 2, "--steps", "1000000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var kids []int
	waitFor(t, time.Minute, "a coordinator and 2 workers", func() bool { kids = children(cmd.Process.Pid); return len(kids) == 3 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for _, k := range kids {
		waitFor(t, 30*time.Second, "child "+strconv.Itoa(k)+" to exit", func() bool { return !alive(k) })
	}
	_ = out
}

// When local mode's only worker dies, recur train says so and exits
// non-zero instead of waiting forever.
func TestTrainExitsWhenNoWorkerIsLeft(t *testing.T) {
	cmd, out := trainCmd(t, t.TempDir(), 1, "--steps", "1000000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var kids []int
	waitFor(t, time.Minute, "a coordinator and a worker", func() bool { kids = children(cmd.Process.Pid); return len(kids) == 2 })
	time.Sleep(time.Second)
	for _, k := range kids {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(k), "cmdline"))
		if bytes.Contains(b, []byte("worker\x00")) {
			syscall.Kill(k, syscall.SIGKILL)
		}
	}
	if code := exitCode(t, cmd, out, 2*time.Minute); code == ExitOK {
		t.Fatalf("recur train exited 0 with its only worker dead\n%s", out)
	}
	if !strings.Contains(out.String(), "every worker exited") {
		t.Fatalf("no word of the dead worker:\n%s", out)
	}
}

// A diverging run ends with exit code 3.
func TestTrainDivergedExitCode(t *testing.T) {
	cmd, out := trainCmd(t, t.TempDir(), 1, "--steps", "100000", "--set", "schedule.base_lr=1e38", "--set", "train.max_skipped_steps=3")
	if code := runCmd(t, cmd, out, 2*time.Minute); code != ExitDiverged {
		t.Fatalf("exit %d, want %d\n%s", code, ExitDiverged, out)
	}
}

// A worker that cannot reach its coordinator says what it waits for and
// gives up after --join-timeout with the retry code.
func TestWorkerJoinTimeout(t *testing.T) {
	cmd := exec.Command(recurBin, "worker", "--coordinator", "127.0.0.1:1", "--gossip", "", "--join-timeout", "3s")
	cmd.Env = append(os.Environ(), "RECUR_CLUSTER_KEY=join-timeout-test-key-0123456")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if code := runCmd(t, cmd, &out, time.Minute); code != ExitRetry {
		t.Fatalf("exit %d, want %d\n%s", code, ExitRetry, out.String())
	}
	if !strings.Contains(out.String(), "127.0.0.1:1") {
		t.Fatalf("the worker never named the coordinator it waits for:\n%s", out.String())
	}
}

// eval, sample and export work while the run trains (from the copies the
// coordinator keeps beside the locked store), with --checkpoint latest,
// best or a step, and on a read-only file system.
func TestCheckpointsReadableWhileTraining(t *testing.T) {
	dir := t.TempDir()
	cmd, out := trainCmd(t, dir, 1, "--steps", "1000000", "--set", "train.checkpoint_every=10", "--set", "train.validate_every=10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 2*time.Minute, "latest.ckpt and best.ckpt", func() bool {
		_, e1 := os.Stat(filepath.Join(dir, "latest.ckpt"))
		_, e2 := os.Stat(filepath.Join(dir, "best.ckpt"))
		return e1 == nil && e2 == nil
	})
	recur := func(args ...string) (int, string) {
		c := exec.Command(recurBin, args...)
		var o bytes.Buffer
		c.Stdout, c.Stderr = &o, &o
		return runCmd(t, c, &o, time.Minute), o.String()
	}
	for _, which := range []string{"latest", "best"} {
		if code, o := recur("eval", "--run", dir, "--checkpoint", which); code != 0 || !strings.Contains(o, "nats/char") {
			t.Fatalf("eval --checkpoint %s while training: exit %d\n%s", which, code, o)
		}
	}
	if code, o := recur("sample", "--run", dir, "--n", "20"); code != 0 {
		t.Fatalf("sample while training: exit %d\n%s", code, o)
	}
	if code, o := recur("eval", "--run", dir, "--checkpoint", "10"); code == 0 || !strings.Contains(o, "once it stops") {
		t.Fatalf("eval of a step while the store is held: exit %d, want a clear refusal\n%s", code, o)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd, out, time.Minute); code != ExitInterrupted {
		t.Fatalf("exit %d after SIGINT\n%s", code, out)
	}
	code, o := recur("status", "--run", dir)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, o)
	}
	var last string
	for _, l := range strings.Split(o, "\n") {
		// "final:       checkpoint of step N, validation loss X (--checkpoint latest)"
		if f := strings.Fields(l); len(f) >= 5 && f[0] == "final:" && f[3] == "step" {
			last = strings.TrimSuffix(f[4], ",")
		}
	}
	if last == "" {
		t.Fatalf("status names no checkpoint:\n%s", o)
	}
	// "step N: loss ...", or "step N (the newest checkpoint): loss ..."
	if code, o := recur("eval", "--run", dir, "--checkpoint", last); code != 0 || !strings.Contains(o, "step "+last+":") && !strings.Contains(o, "step "+last+" (") {
		t.Fatalf("eval --checkpoint %s after the run: exit %d\n%s", last, code, o)
	}

	ro := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(ro, 0o755)
	if err := exec.Command("mount", "--bind", dir, ro).Run(); err != nil {
		t.Skipf("no bind mount here (%v): the read-only file system case is not checked", err)
	}
	defer exec.Command("umount", ro).Run()
	if err := exec.Command("mount", "-o", "remount,bind,ro", ro).Run(); err != nil {
		t.Skipf("no read-only remount here: %v", err)
	}
	for _, args := range [][]string{{"eval", "--run", ro}, {"sample", "--run", ro, "--n", "20"}, {"eval", "--run", ro, "--checkpoint", last}} {
		if code, o := recur(args...); code != 0 {
			t.Fatalf("%v on a read-only file system: exit %d\n%s", args, code, o)
		}
	}
}

// A damaged store crashes no reader and no restarted run: truncated to 8
// KB, `recur eval` reads the newest checkpoint from the backup and says
// so, and the same `recur train` resumes (the store restored, the damaged
// file kept) and exits 0 at once, the run being finished.
func TestDamagedStoreUsesTheBackup(t *testing.T) {
	dir := t.TempDir()
	cmd, out := trainCmd(t, dir, 1, "--steps", "6", "--set", "train.checkpoint_every=2")
	if code := runCmd(t, cmd, out, 2*time.Minute); code != ExitOK {
		t.Fatalf("train: exit %d\n%s", code, out)
	}
	db := filepath.Join(dir, "checkpoints.db")
	if err := os.Truncate(db, 8<<10); err != nil {
		t.Fatal(err)
	}
	ev, eout := exec.Command(recurBin, "eval", "--run", dir), &bytes.Buffer{}
	ev.Stdout, ev.Stderr = eout, eout
	if code := runCmd(t, ev, eout, time.Minute); code != 0 || !strings.Contains(eout.String(), "step 6") || !strings.Contains(eout.String(), "backup") {
		t.Fatalf("eval of a damaged store: exit %d, want step 6 read from the backup:\n%s\ntrain:\n%s", code, eout, out)
	}
	cmd, out = trainCmd(t, dir, 1, "--steps", "6", "--set", "train.checkpoint_every=2")
	if code := runCmd(t, cmd, out, 2*time.Minute); code != ExitOK {
		t.Fatalf("rerun over a damaged store: exit %d\n%s", code, out)
	}
	if kept, _ := filepath.Glob(db + ".damaged-*"); len(kept) != 1 {
		t.Fatalf("the damaged file was not kept aside: %v", kept)
	}
}
