package coordinator

import (
	"github.com/recur-ml/recur/internal/cluster/controlpb"
	"github.com/recur-ml/recur/internal/dashboard"
	"github.com/recur-ml/recur/internal/events"
)

// The dashboard's recorder is fed every status event the coordinator
// publishes (after the run's history, at start) and every step report;
// it has its own lock, taken after c.mu when both are held, so that
// publishing never waits for a page being served.

// record passes a published event to the dashboard.
func (c *Coordinator) record(e events.Event) {
	c.dashMu.Lock()
	defer c.dashMu.Unlock()
	c.dash.Observe(e)
}

// recordReport passes a worker's step report to the dashboard, with the
// steps completed after it (as step events count them).
func (c *Coordinator) recordReport(rep *controlpb.StepReport) {
	c.dashMu.Lock()
	defer c.dashMu.Unlock()
	c.dash.Report(rep.WorkerId, rep.Step+1, rep.StepSeconds, rep.AllreduceSeconds, rep.WaitSeconds, c.now())
}

// DashboardStatus is the run as the dashboard shows it now: the curves
// of the whole run, its members and their step times, generations,
// checkpoints and state (dashboard.Source).
func (c *Coordinator) DashboardStatus() dashboard.Status {
	c.mu.Lock()
	live := dashboard.Live{Now: c.now(), Ring: c.p.Ring(), Workers: c.p.Workers(), Waiting: c.p.WaitReason(), Task: c.cfg.Job.Task.Kind}
	c.mu.Unlock()
	c.dashMu.Lock()
	defer c.dashMu.Unlock()
	return c.dash.Status(live)
}
