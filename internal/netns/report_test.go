//go:build linux

package netns

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/worker"
)

// fault is one failure the harness caused.
type fault struct {
	name     string
	at       time.Time // when it struck
	step     int64     // the last step recorded before it
	gen      uint64    // the generation of that step
	restored time.Time // the link came back or the process was started again (zero: neither)
	// blocking: no step can be recorded until restored (the coordinator
	// is down or cut off), so a step recorded in between was in flight.
	blocking bool
}

// recovery is what the run's history says about a fault.
type recovery struct {
	fault
	next events.Event  // the first step of the ring that recovered
	ok   bool          // there was one
	full time.Duration // from the fault to the first step after the restore with every worker in the ring (0: none)
}

// after is how long after the fault the next step was recorded.
func (r recovery) after() time.Duration { return r.next.Time.Sub(r.at) }

// recoveries finds, for each fault, the first step recorded by the ring
// that recovered from it: a later generation than the one it struck (a
// step in flight may still be recorded by the old ring after the fault),
// or for a blocking fault any step after it was restored; and the first
// such step after the restore with all workers in the ring.
func recoveries(faults []fault, ev []events.Event, workers int) []recovery {
	out := make([]recovery, len(faults))
	for i, f := range faults {
		r := recovery{fault: f}
		back := f.at
		if f.restored.After(back) {
			back = f.restored
		}
		for _, e := range ev {
			if e.Kind != events.EventStep || !e.Time.After(f.at) {
				continue
			}
			if f.blocking && !e.Time.After(f.restored) || !f.blocking && e.Generation <= f.gen {
				continue
			}
			if !r.ok {
				r.next, r.ok = e, true
			}
			if r.full == 0 && e.Time.After(back) && e.Members == workers {
				r.full = e.Time.Sub(f.at)
			}
		}
		out[i] = r
	}
	return out
}

// recoveryTable is a markdown table of recoveries.
func recoveryTable(rs []recovery, workers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | at step | down for | recovered after | its ring | all %d back after |\n|---|---|---|---|---|---|\n", workers)
	for _, r := range rs {
		down := "-"
		if !r.restored.IsZero() {
			down = r.restored.Sub(r.at).Round(10 * time.Millisecond).String()
		}
		next, ring, full := "none", "-", "never"
		if r.ok {
			next = r.after().Round(10*time.Millisecond).String() + fmt.Sprintf(" (step %d)", r.next.Step)
			ring = fmt.Sprintf("%d workers", r.next.Members)
		}
		if r.full > 0 {
			full = r.full.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", r.name, r.step, down, next, ring, full)
	}
	return b.String()
}

// workerTable is a markdown table of each worker's last /metrics: step
// times and the wait on each neighbour it had.
func workerTable(last map[string]worker.MetricsSummary, ids []string) string {
	var b strings.Builder
	b.WriteString("| worker | steps ok/failed | step ms | compute ms | allreduce ms | waited for data from (left) | blocked sending to (right) | MB sent | MB received |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }
	for _, id := range ids {
		s, ok := last[id]
		if !ok {
			fmt.Fprintf(&b, "| %s | never scraped | | | | | | | |\n", id)
			continue
		}
		fmt.Fprintf(&b, "| %s | %.0f/%.0f | %s | %s | %s | %s | %s | %.1f | %.1f |\n", id, s.StepsOK, s.Failed, ms(s.Step.Mean()),
			ms(s.Compute.Mean()), ms(s.Allreduce.Mean()), waits(s, "left"), waits(s, "right"), s.BytesSent/1e6, s.BytesReceived/1e6)
	}
	return b.String()
}

// waits lists a worker's waits on one side, longest first, at most three.
func waits(s worker.MetricsSummary, side string) string {
	var ws []worker.NeighborWait
	for _, w := range s.Waits {
		if w.Side == side {
			ws = append(ws, w)
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Wait > ws[j].Wait })
	var parts []string
	for _, w := range ws[:min(3, len(ws))] {
		parts = append(parts, fmt.Sprintf("%s %.2fs", w.Peer, w.Wait.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// deltas is what each worker's counters gained between two scrapes.
func deltas(before, after map[string]worker.MetricsSummary) map[string]worker.MetricsSummary {
	out := map[string]worker.MetricsSummary{}
	for id, a := range after {
		b := before[id]
		d := worker.MetricsSummary{Worker: id, StepsOK: a.StepsOK - b.StepsOK, Failed: a.Failed - b.Failed,
			Step:      worker.Timing{Count: a.Step.Count - b.Step.Count, Sum: a.Step.Sum - b.Step.Sum},
			Compute:   worker.Timing{Count: a.Compute.Count - b.Compute.Count, Sum: a.Compute.Sum - b.Compute.Sum},
			Allreduce: worker.Timing{Count: a.Allreduce.Count - b.Allreduce.Count, Sum: a.Allreduce.Sum - b.Allreduce.Sum},
			BytesSent: a.BytesSent - b.BytesSent, BytesReceived: a.BytesReceived - b.BytesReceived}
		for _, w := range a.Waits {
			d.Waits = append(d.Waits, worker.NeighborWait{Side: w.Side, Peer: w.Peer, Wait: w.Wait - b.Wait(w.Side, w.Peer)})
		}
		out[id] = d
	}
	return out
}

// checkStates compares the states the workers' /metrics showed: workers
// holding the same step hold the same weights (CRC-32C), and the weights
// the coordinator recorded for that step. It returns the number of
// samples compared with another worker's or the record.
func checkStates(samples []stateSample, ev []events.Event) (int, error) {
	recorded := map[int64]uint32{}
	for _, e := range ev {
		if e.Kind == events.EventStep && e.StateCRC != 0 {
			recorded[e.Step] = e.StateCRC
		}
	}
	type seen struct {
		crc    uint32
		worker string
	}
	first := map[int64]seen{}
	compared := 0
	for _, s := range samples {
		if s.step <= 0 {
			continue // a fresh process's initial weights
		}
		if rec, ok := recorded[s.step]; ok {
			compared++
			if rec != s.crc {
				return compared, fmt.Errorf("%s held crc %08x at step %d, the coordinator recorded %08x", s.worker, s.crc, s.step, rec)
			}
		}
		f, ok := first[s.step]
		if !ok {
			first[s.step] = seen{s.crc, s.worker}
			continue
		}
		if f.worker != s.worker {
			compared++
		}
		if f.crc != s.crc {
			return compared, fmt.Errorf("at step %d %s held crc %08x and %s %08x", s.step, f.worker, f.crc, s.worker, s.crc)
		}
	}
	return compared, nil
}

// The report's arithmetic, without namespaces: a step the old ring had in
// flight does not count as recovery; a blocking fault counts from its
// end; full membership after the restore.
func TestRecoveries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	step := func(s float64, n int64, gen uint64, members int) events.Event {
		return events.Event{Kind: events.EventStep, Time: at(s), Step: n, Generation: gen, Members: members}
	}
	ev := []events.Event{step(1, 1, 1, 4), step(2, 2, 1, 4), step(2.6, 3, 1, 4), {Kind: events.EventGeneration, Time: at(5), Generation: 2},
		step(6, 4, 2, 3), step(7.5, 5, 2, 3), step(9, 6, 3, 4), step(20.5, 7, 1003, 4), step(23, 8, 1003, 4)}
	rs := recoveries([]fault{
		{name: "kill w4", at: at(2.5), step: 2, gen: 1, restored: at(7)},
		{name: "cut coordinator", at: at(10), step: 6, gen: 3, restored: at(20), blocking: true},
		{name: "late", at: at(30), step: 8, gen: 1003},
	}, ev, 4)
	if !rs[0].ok || rs[0].after() != 3500*time.Millisecond || rs[0].next.Step != 4 || rs[0].next.Members != 3 || rs[0].full != 6500*time.Millisecond {
		t.Errorf("kill: %+v", rs[0])
	}
	if !rs[1].ok || rs[1].after() != 10500*time.Millisecond || rs[1].full != 10500*time.Millisecond {
		t.Errorf("cut: %+v", rs[1])
	}
	if rs[2].ok || rs[2].full != 0 {
		t.Errorf("a fault with no step after it recovered: %+v", rs[2])
	}
	table := recoveryTable(rs, 4)
	for _, want := range []string{"| kill w4 | 2 | 4.5s | 3.5s (step 4) | 3 workers | 6.5s |", "| late | 8 | - | none | - | never |"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// Workers that agree with each other and with the record pass; any
// disagreement is named.
func TestCheckStates(t *testing.T) {
	ev := []events.Event{{Kind: events.EventStep, Step: 5, StateCRC: 0xa}, {Kind: events.EventStep, Step: 6, StateCRC: 0xb}}
	good := []stateSample{{"w1", 0, 0x1}, {"w2", 0, 0x2}, {"w1", 5, 0xa}, {"w2", 5, 0xa}, {"w3", 7, 0xc}, {"w1", 7, 0xc}}
	if n, err := checkStates(good, ev); err != nil || n != 4 {
		t.Fatalf("agreeing states: %d compared, %v", n, err)
	}
	for name, bad := range map[string][]stateSample{
		"against the record": {{"w1", 6, 0xbb}},
		"against each other": {{"w1", 7, 0xc}, {"w2", 7, 0xd}},
	} {
		if _, err := checkStates(bad, ev); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
