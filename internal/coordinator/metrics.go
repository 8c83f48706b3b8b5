package coordinator

import (
	"net/http"

	"github.com/recur-ml/recur/internal/cluster"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the coordinator's Prometheus metrics.
type Metrics struct {
	reg              *prometheus.Registry
	step             prometheus.Gauge
	loss             prometheus.Gauge
	valLoss          prometheus.Gauge
	lr               prometheus.Gauge
	tokensPerSec     prometheus.Gauge
	stepSeconds      prometheus.Gauge
	allreduceSeconds prometheus.Gauge
	busbw            prometheus.Gauge
	generation       prometheus.Gauge
	members          prometheus.Gauge
	checkpoints      prometheus.Counter
	failedSaves      prometheus.Counter
	storeRecoveries  prometheus.Counter
	stateChecks      prometheus.Counter
	divergences      prometheus.Counter
	resumeStep       prometheus.Gauge
	startTime        prometheus.Gauge
}

// NewMetrics registers the metrics in a fresh registry.
func NewMetrics() *Metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "recur", Name: name, Help: help})
	}
	m := &Metrics{
		reg:              prometheus.NewRegistry(),
		step:             g("step", "Completed training steps."),
		loss:             g("train_loss", "Mean training loss of the last step (nats per target)."),
		valLoss:          g("val_loss", "Last validation loss (nats per target)."),
		lr:               g("learning_rate", "Learning rate of the last step."),
		tokensPerSec:     g("tokens_per_second", "Cluster throughput of the last step."),
		stepSeconds:      g("step_seconds", "Wall time of the last step on the reporting worker."),
		allreduceSeconds: g("allreduce_seconds", "Allreduce time of the last step."),
		busbw:            g("allreduce_busbw_bytes_per_second", "Allreduce bus bandwidth of the last step."),
		generation:       g("generation", "Current ring generation."),
		members:          g("members", "Workers in the current ring."),
		checkpoints:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "recur", Name: "checkpoints_total", Help: "Checkpoints saved."}),
		failedSaves:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "recur", Name: "checkpoint_failures_total", Help: "Checkpoint saves that failed."}),
		storeRecoveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "recur", Name: "checkpoint_store_recoveries_total",
			Help: "Times the checkpoint store file was found damaged, deleted or replaced and restored from its backup."}),
		stateChecks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "recur", Name: "state_checks_total",
			Help: "Worker states compared (by checksum) with another member's state of the same step and generation."}),
		divergences: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "recur", Name: "state_divergences_total",
			Help: "Members of one generation found holding different weights for the same step."}),
		resumeStep: g("resume_step", "The checkpoint step this coordinator process resumed from (-1: none)."),
		startTime:  g("coordinator_start_time_seconds", "When this coordinator process started, in Unix seconds."),
	}
	m.reg.MustRegister(m.step, m.loss, m.valLoss, m.lr, m.tokensPerSec, m.stepSeconds, m.allreduceSeconds, m.busbw, m.generation, m.members,
		m.checkpoints, m.failedSaves, m.storeRecoveries, m.stateChecks, m.divergences, m.resumeStep, m.startTime)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// registerRejected exposes the count of refused unauthenticated RPCs.
func (m *Metrics) registerRejected(a *cluster.Authenticator) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "recur", Name: "rejected_peers_total",
		Help: "RPCs refused for a missing or wrong cluster key."}, func() float64 { return float64(a.Rejected()) }))
}

// registerSecurity exposes the connections the transport security refused,
// by reason.
func (m *Metrics) registerSecurity(sec *cluster.Security) {
	m.reg.MustRegister(refusals{sec: sec, desc: prometheus.NewDesc("recur_tls_refusals_total",
		"Connections refused by the transport security, by reason (unknown_authority, expired_or_not_yet, no_certificate, not_tls, handshake_failed).",
		[]string{"reason"}, nil)})
}

type refusals struct {
	sec  *cluster.Security
	desc *prometheus.Desc
}

func (r refusals) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r refusals) Collect(ch chan<- prometheus.Metric) {
	for reason, n := range r.sec.Refusals() {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(n), reason)
	}
}
