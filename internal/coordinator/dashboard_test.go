package coordinator

import (
	"testing"
	"time"
)

// The dashboard's status comes from the coordinator's own state: every
// step of the run, also of earlier coordinator processes of a resumed
// run, the worker with its step times while it trains, checkpoints, and
// the outcome.
func TestDashboardStatus(t *testing.T) {
	jc := testJob(testCorpus(t), 20)
	dir := t.TempDir()
	c, stop := oneWorker(t, jc, dir, nil)
	deadline := time.Now().Add(time.Minute)
	for s := c.DashboardStatus(); s.Step < 3 || len(s.Members) == 0 || s.Members[0].Steps == 0; s = c.DashboardStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("no step reported to the dashboard in a minute: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := c.DashboardStatus()
	if m := s.Members[0]; m.ID != "w0" || m.StepSeconds <= 0 || m.Step < 0 || s.Task != "charlm" {
		t.Fatalf("member %+v of task %q while training", m, s.Task)
	}
	waitDone(t, c, time.Minute)
	s = c.DashboardStatus()
	if s.State != "finished" || s.Step != 20 || len(s.Series.Train) != 20 || len(s.Series.Val) == 0 || s.CheckpointsTotal == 0 ||
		s.Generation == 0 || s.Processes != 1 {
		t.Fatalf("finished run: state %q step %d, %d train and %d val points, %d checkpoints, generation %d, %d processes",
			s.State, s.Step, len(s.Series.Train), len(s.Series.Val), s.CheckpointsTotal, s.Generation, s.Processes)
	}
	stop()
	c.Close()

	jc.Train.Steps = 30
	c, _ = oneWorker(t, jc, dir, nil)
	waitDone(t, c, time.Minute)
	s = c.DashboardStatus()
	if s.State != "finished" || s.Step != 30 || len(s.Series.Train) != 30 || s.Processes != 2 {
		t.Fatalf("resumed run: state %q step %d, %d train points, %d processes; want finished, 30, 30, 2",
			s.State, s.Step, len(s.Series.Train), s.Processes)
	}
}
