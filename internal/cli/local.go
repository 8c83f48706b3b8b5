package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/recur-ml/recur/internal/affinity"
	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/task"
	"go.uber.org/zap"
)

// Train runs `recur train`, the local mode: a coordinator and N worker
// processes on loopback, so a single machine runs a real distributed job.
func Train(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var jf jobFlags
	jf.register(fs)
	workers := fs.Int("workers", 2, "worker processes to start")
	dir := fs.String("dir", "runs/recur", "run directory: checkpoints, job.json, vocab.json, loss.png")
	text := fs.String("text", "", "shortcut for --set data.text=FILE")
	steps := fs.Int64("steps", 0, "shortcut for --set train.steps=N")
	minutes := fs.Float64("minutes", 0, "shortcut for --set train.minutes=M (stop at the first step after M minutes)")
	fresh := fs.Bool("fresh", false, "start over even if --dir holds checkpoints of this job")
	initFile := fs.String("init", "", initFlagHelp)
	pin := fs.Bool("pin", true, "give each worker its own CPUs (train.threads each) when there are enough for all workers")
	sample := fs.Int("sample", 300, "charlm: characters to sample from the final model (0: none)")
	insecure := fs.Bool("insecure", false, "plaintext between the local processes, no TLS (by default they use mutual TLS from a fresh cluster key)")
	logLevel := fs.String("log-level", "warn", "log level of the coordinator and workers, whose lines are shown as they come (the progress comes from the status stream)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: recur train [--config FILE] [--set KEY=VALUE]... [flags]

Local mode: starts a coordinator and --workers worker processes on loopback and
trains the job to its end (train.steps, train.minutes or train.early_stop). The
run resumes from --dir's newest checkpoint when there is one. The job is a YAML
file (--config); --set KEY=VALUE and RECUR_* variables (RECUR_MODEL_HIDDEN=128)
override its keys.
Exit codes: %s.

`, exitCodesHelp)
		printTaskHelp(fs.Output())
		fmt.Fprint(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if err := checkTrainFlags(*workers, *steps, *minutes, *sample); err != nil {
		return err
	}
	if *text != "" {
		jf.sets = append(jf.sets, "data.text="+*text)
	}
	if *steps > 0 {
		jf.sets = append(jf.sets, fmt.Sprintf("train.steps=%d", *steps))
	}
	if *minutes > 0 {
		jf.sets = append(jf.sets, fmt.Sprintf("train.minutes=%g", *minutes))
		if *steps == 0 {
			jf.sets = append(jf.sets, "train.steps=1000000000")
		}
	}
	if !hasSet(jf.sets, "train.threads") && os.Getenv("RECUR_TRAIN_THREADS") == "" {
		jf.sets = append(jf.sets, fmt.Sprintf("train.threads=%d", max(1, runtime.NumCPU() / *workers)))
	}
	job, err := jf.load()
	if err != nil {
		return err
	}
	if err := checkLocalMemory(job, *workers); err != nil {
		return err
	}
	if err := task.CheckText(job); err != nil { // refused here, not in the coordinator's log
		return err
	}
	if err := printForecastData(stdout, job); err != nil { // refused here, not in the coordinator's log
		return err
	}
	if *initFile != "" {
		if _, err := initState(job, *initFile); err != nil { // refused here, not in the coordinator's log
			return err
		}
		if *initFile, err = filepath.Abs(*initFile); err != nil {
			return err
		}
	}
	jobFile, err := os.CreateTemp("", "recur-job-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(jobFile.Name())
	if err := json.NewEncoder(jobFile).Encode(job); err != nil {
		return err
	}
	jobFile.Close()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ports, err := freePorts(3 + *workers) // control, gossip, metrics, then each worker's metrics
	if err != nil {
		return err
	}
	control, gossip, metrics := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1], "127.0.0.1:"+ports[2]
	workerMetrics := make([]string, *workers)
	for i := range workerMetrics {
		workerMetrics[i] = "127.0.0.1:" + ports[3+i]
	}
	key := randomKey()
	env := append(os.Environ(), "RECUR_CLUSTER_KEY="+key)
	cargs := []string{"coordinator", "--config", jobFile.Name(), "--listen", control, "--gossip", gossip, "--dir", *dir, "--metrics", metrics,
		"--start-workers", strconv.Itoa(*workers), "--log-format", "console", "--log-level", *logLevel}
	if *fresh {
		cargs = append(cargs, "--fresh")
	}
	if *initFile != "" {
		cargs = append(cargs, "--init", *initFile)
	}
	sf := securityFlags{insecure: *insecure}
	cargs = append(cargs, sf.args()...)
	sec, err := sf.security([]byte(key), "recur train", zap.NewNop())
	if err != nil {
		return err
	}
	ui := newProgress(stdout, job.Train.Steps, job.Train.Minutes)
	coord := exec.Command(exe, cargs...)
	coord.Env = env
	coordLogged, err := startLogged(coord, "coordinator", ui)
	if err != nil {
		return err
	}
	coordDone := make(chan error, 1)
	go func() { <-coordLogged; coordDone <- coord.Wait() }()
	fmt.Fprintf(stdout, "recur: local cluster: coordinator %s, %d workers, run directory %s\n", control, *workers, *dir)
	fmt.Fprintf(stdout, "recur: dashboard http://%s/ (metrics at /metrics)\n", metrics)
	fmt.Fprintf(stdout, "recur: worker metrics (step, compute and allreduce times, waits on each ring neighbour):")
	for i, a := range workerMetrics {
		fmt.Fprintf(stdout, " worker-%d http://%s/metrics", i+1, a)
	}
	fmt.Fprintln(stdout)
	var ws []*exec.Cmd
	var wlogged []<-chan struct{}
	exited, err := awaitListening(ctx, control, coordDone)
	if err != nil {
		coord.Process.Kill()
		return err
	}
	pins := workerCPUs(*workers, job.Train.Threads, *pin)
	for i := 0; i < *workers && !exited; i++ {
		w := exec.Command(exe, "worker", "--id", fmt.Sprintf("worker-%d", i+1), "--coordinator", control, "--gossip", gossip,
			"--metrics", workerMetrics[i], "--metrics-optional", "--log-format", "console", "--log-level", *logLevel)
		w.Args = append(w.Args, sf.args()...)
		if pins != nil {
			w.Args = append(w.Args, "--cpus", affinity.Format(pins[i]))
		}
		w.Env = env
		logged, err := startLogged(w, fmt.Sprintf("worker-%d", i+1), ui)
		if err != nil {
			coord.Process.Kill()
			return err
		}
		ws = append(ws, w)
		wlogged = append(wlogged, logged)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); followStatus(watchCtx, control, sec, ui) }()
	cerr, lost := superviseLocal(ctx, coord, coordDone, ws, wlogged)
	select { // the stream's last event (how the run ended) may still be on its way
	case <-watched:
	case <-time.After(2 * time.Second):
	}
	stopWatch()
	<-watched
	ui.finish()
	if lost != nil {
		return fmt.Errorf("train: %w; the newest checkpoint is in %s (their logs are above)", lost, *dir)
	}
	switch code := exitCodeOf(cerr); {
	case code == ExitInterrupted:
		fmt.Fprintf(stdout, "recur: interrupted; run the same command to resume from %s\n", *dir)
		return fmt.Errorf("%w: by a signal", cluster.ErrInterrupted)
	case code == ExitDiverged:
		return fmt.Errorf("%w: see the coordinator's log above; lower schedule.base_lr%s", cluster.ErrDiverged, keptBest(*dir, job.Train.ValidateEvery))
	case cerr != nil:
		return fmt.Errorf("train: coordinator: %v (its log is above)", cerr)
	}
	ui.summary(*dir, job.Task.Kind)
	// What eval, sample, export and predict will use: the best checkpoint.
	r, err := openRun(*dir, whichBest, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recur: %s\n", bestAndFinal(r.chosen.best, r.chosen.newest, job.Train.ValidateEvery, true, usedBy(job.Task.Kind)))
	if err := r.evalValidation(stdout); err != nil {
		return err
	}
	if *sample > 0 && r.charLM() {
		s, err := r.sampleText("The ", *sample, 0.8, 1)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nsample from %s, temperature 0.8:\n%s\n", r.stepLabel(), s)
	}
	return nil
}

// keptBest says, after a run diverged, which checkpoint the commands use:
// the best, from before the diverged steps ("" when there is none).
func keptBest(dir string, validateEvery int64) string {
	ch, err := loadCheckpoint(dir, whichBest, validateEvery, io.Discard)
	if err != nil || ch.fallback != "" {
		return ""
	}
	return fmt.Sprintf("; the best checkpoint, step %d%s, is kept: recur eval --run %s uses it", ch.ck.Step, valText(infoOf(ch.ck)), dir)
}

// followStatus feeds the coordinator's status stream to the display until
// the run ends or ctx does, watching again (from the last event seen)
// when the stream breaks.
func followStatus(ctx context.Context, addr string, sec *cluster.Security, ui *progress) {
	var after int64
	for {
		err := cluster.Watch(ctx, addr, sec, after, true, func(e events.Event) error {
			after = e.Seq
			ui.event(e)
			return nil
		})
		if err == nil || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// superviseLocal waits for the coordinator to end: a signal to recur train
// is passed on to it as SIGTERM (it stops at the next step boundary with
// a final checkpoint), and when every worker has exited before it, it is
// stopped the same way and lost names the workers' fates. Then the workers
// still running are told to stop, and killed after 5 s. A worker that
// exits 0 was told the run is over: the coordinator exits next.
func superviseLocal(ctx context.Context, coord *exec.Cmd, done <-chan error, ws []*exec.Cmd, logged []<-chan struct{}) (cerr, lost error) {
	type exit struct {
		i   int
		err error
	}
	exited := make(chan exit, len(ws))
	for i, w := range ws {
		go func() { <-logged[i]; exited <- exit{i, w.Wait()} }() // Wait after the last log line
	}
	var fates []string
	toldToStop := false
	again := make(chan os.Signal, 1)
	defer signal.Stop(again)
	signalled := ctx.Done()
wait:
	for {
		select {
		case cerr = <-done:
			break wait
		case <-signalled:
			coord.Process.Signal(syscall.SIGTERM)
			signalled = nil // passed on once; a second signal too
			signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		case <-again:
			coord.Process.Signal(syscall.SIGTERM) // "signal again to quit at once"

		case e := <-exited:
			fates = append(fates, fmt.Sprintf("worker-%d: %s", e.i+1, orExit0(e.err)))
			if e.err == nil {
				toldToStop = true // the run is over: the coordinator exits next
			}
			if len(fates) == len(ws) && !toldToStop && signalled != nil { // not after an interrupt we passed on
				lost = fmt.Errorf("every worker exited before the run ended (%s)", strings.Join(fates, "; "))
				coord.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	for _, w := range ws {
		w.Process.Signal(syscall.SIGTERM) // an error for those already gone
	}
	deadline := time.After(5 * time.Second)
	for n := len(fates); n < len(ws); n++ {
		select {
		case <-exited:
		case <-deadline:
			for _, w := range ws {
				w.Process.Kill()
			}
			return cerr, lost
		}
	}
	return cerr, lost
}

// awaitListening waits until the coordinator accepts connections, so the
// workers' first join succeeds. A coordinator that exits first either had
// nothing to do (the run had finished: exit 0; its result stays in done
// for the caller; exited is true) or failed at start (its log says why).
func awaitListening(ctx context.Context, addr string, done chan error) (exited bool, err error) {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false, nil
		}
		select {
		case err := <-done:
			done <- err // for superviseLocal
			if err != nil {
				return true, fmt.Errorf("train: the coordinator exited at start: %v (its log is above)", err)
			}
			return true, nil
		case <-ctx.Done():
			return false, fmt.Errorf("%w: by a signal before training started", cluster.ErrInterrupted)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("train: the coordinator did not listen on %s within a minute", addr)
		}
	}
}

func orExit0(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// exitCodeOf is the exit code of a child process's Wait error.
func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return ExitError
	}
	return ExitOK
}

// childAttr puts a child in its own process group, so a Ctrl-C at the
// terminal reaches only recur train (which stops the run cleanly), and
// has the kernel send it SIGTERM if recur train dies, even by SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func hasSet(sets []string, key string) bool {
	for _, s := range sets {
		if strings.HasPrefix(s, key+"=") {
			return true
		}
	}
	return false
}

func randomKey() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePorts returns n TCP ports free on loopback now.
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

// startLogged starts cmd and passes its log lines, which are for people,
// to the display as they are, marked with name.
func startLogged(cmd *exec.Cmd, name string, ui *progress) (<-chan struct{}, error) {
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{}) // closed after the last line: then Wait
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ui.print(fmt.Sprintf("[%s] %s", name, sc.Bytes()))
		}
		io.Copy(io.Discard, pipe) // a line past the buffer: drain to EOF
	}()
	return done, nil
}

// workerCPUs gives each of n local workers its own train.threads CPUs when
// there are enough for all and n >= 2: two workers whose runtime threads
// wander onto each other's cores slow each other down, and every step
// waits for the slower one. A single worker is left unpinned, free to use
// the spare cores for its runtime.
func workerCPUs(n, threads int, pin bool) [][]int {
	if !pin || n < 2 {
		return nil
	}
	avail, err := affinity.Available()
	if err != nil {
		return nil
	}
	return affinity.Split(avail, n, max(threads, 1))
}
