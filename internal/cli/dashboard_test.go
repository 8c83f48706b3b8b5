package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/recur-ml/recur/internal/dashboard"
)

// chromiumPath finds a Chromium that runs headless. Without one the test
// skips, unless RECUR_REQUIRE_CHROMIUM is set: CI sets it, and `make
// setup` installs Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RECUR_REQUIRE_CHROMIUM") != "" {
		t.Fatal("RECUR_REQUIRE_CHROMIUM is set but no chromium binary is on PATH (make setup installs Debian's chromium)")
	}
	t.Skip("no chromium binary on PATH: the dashboard's browser test needs Debian's chromium (apt-get install chromium, or make setup)")
	return ""
}

// dashStatus reads the coordinator's dashboard status (typed JSON);
// ok is false while it does not answer.
func (pc *procCluster) dashStatus() (dashboard.Status, bool) {
	var s dashboard.Status
	resp, err := http.Get("http://" + pc.metrics + dashboard.StatusPath)
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil
}

// dumpDOM loads url in headless Chromium and returns the document after
// its scripts ran. Virtual time runs the page's timers at once but waits
// for its requests, so the first status it fetches is drawn.
func dumpDOM(t *testing.T, chromium, url string) (*html.Node, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --dump-dom %s: %v\n%s", chromium, url, err, lastLines(stderr.String(), 20))
	}
	doc, err := html.Parse(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("the dumped DOM does not parse: %v", err)
	}
	return doc, out.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// byID finds the element with id in the document.
func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode && attr(n, "id") == id {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := byID(c, id); f != nil {
			return f
		}
	}
	return nil
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// intAttr is n's attribute key as a number (-1 when n or it is missing).
func intAttr(n *html.Node, key string) int {
	if n == nil {
		return -1
	}
	v, err := strconv.Atoi(attr(n, key))
	if err != nil {
		return -1
	}
	return v
}

func textOf(n *html.Node) string {
	if n == nil {
		return ""
	}
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(textOf(c))
	}
	return b.String()
}

// elements lists the elements named tag under n.
func elements(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// The dashboard, opened in a real browser while a two-worker run trains,
// draws the run: curve points of training and validation loss, both
// members, the step reached.
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a browser")
	}
	chromium := chromiumPath(t)
	pc := newProcCluster(t, 1_000_000) // trains until the test ends
	pc.coord = pc.start("coordinator", "coordinator", "--listen", pc.control, "--gossip", pc.gossip, "--metrics", pc.metrics,
		"--dir", pc.dir, "--set", "data.text="+pc.corpus, "--set", "model.hidden=32", "--set", "model.layers=1",
		"--set", "model.embed=8", "--set", "data.seq=16", "--set", "data.batch=8", "--set", "train.steps=1000000",
		"--set", "train.checkpoint_every=10", "--set", "train.validate_every=5", "--set", "train.val_windows=2",
		"--set", "train.threads=1", "--set", "cluster.min_workers=2")
	pc.startWorker("w1")
	pc.startWorker("w2")

	var before dashboard.Status
	deadline := time.Now().Add(3 * time.Minute)
	for {
		s, ok := pc.dashStatus()
		if ok && s.Step >= 12 && len(s.Series.Val) >= 2 && len(s.Members) == 2 && s.CheckpointsTotal >= 1 {
			before = s
			break
		}
		if time.Now().After(deadline) {
			pc.dumpLogs()
			t.Fatalf("the run did not reach step 12 with 2 members, 2 validations and a checkpoint in 3 minutes: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}

	doc, dom := dumpDOM(t, chromium, "http://"+pc.metrics+"/")
	defer func() {
		if t.Failed() {
			t.Logf("the DOM Chromium rendered:\n%s", dom)
			pc.dumpLogs()
		}
	}()
	state := byID(doc, "state")
	if got := attr(state, "data-state"); got != "running" && got != "forming" {
		t.Errorf("state %q (%q), want running", got, textOf(state))
	}
	loss := byID(doc, "loss-chart")
	train, val := intAttr(loss, "data-train-points"), intAttr(loss, "data-val-points")
	// A curve only grows, until a long one is halved (never below MaxPoints/2).
	if train < min(len(before.Series.Train), dashboard.MaxPoints/2) || val < min(len(before.Series.Val), dashboard.MaxPoints/2) {
		t.Errorf("the loss chart has %d train and %d validation points; the run had %d and %d before the page opened",
			train, val, len(before.Series.Train), len(before.Series.Val))
	}
	var lines, dots int
	for _, pl := range elements(loss, "polyline") {
		if attr(pl, "data-series") == "train" && intAttr(pl, "data-points") == train {
			lines++
		}
	}
	for _, g := range elements(loss, "g") {
		if attr(g, "data-series") == "val" {
			dots += len(elements(g, "circle"))
		}
	}
	if lines != 1 || dots != val {
		t.Errorf("the loss chart draws %d train lines of %d points and %d validation dots of %d", lines, train, dots, val)
	}
	for _, id := range []string{"tps-chart", "lr-chart"} {
		if n := intAttr(byID(doc, id), "data-points"); n < 1 {
			t.Errorf("%s has %d points", id, n)
		}
	}
	members := byID(doc, "members")
	rows := elements(members, "tr")
	if n := intAttr(members, "data-count"); n != 2 || len(rows) != 2 {
		t.Errorf("the members table counts %d and has %d rows, want 2", n, len(rows))
	}
	names := ""
	for _, r := range rows {
		names += textOf(elements(r, "td")[0]) + " "
	}
	if !strings.Contains(names, "w1") || !strings.Contains(names, "w2") {
		t.Errorf("members %q, want w1 and w2", names)
	}
	step, err := strconv.ParseInt(strings.ReplaceAll(strings.Fields(textOf(byID(doc, "step")))[0], ",", ""), 10, 64)
	if err != nil || step < before.Step {
		t.Errorf("the page shows step %q (%v); the run was at %d before", textOf(byID(doc, "step")), err, before.Step)
	}
	if n := intAttr(byID(doc, "checkpoints"), "data-count"); n < 1 {
		t.Errorf("%d checkpoints listed", n)
	}
	if off := byID(doc, "offline"); off == nil || !hasAttr(off, "hidden") {
		t.Errorf("the page says the coordinator does not answer: %q", textOf(off))
	}
	t.Logf("Chromium drew %d train and %d validation points, %d members, step %d", train, val, len(rows), step)
}
