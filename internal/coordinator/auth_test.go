package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/worker"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/internal/cluster/controlpb"
	"github.com/recur-ml/recur/internal/job"
)

// TestWrongKeyIsRefused: a process without the cluster key can neither
// join nor read the state, and every refusal is counted.
func TestWrongKeyIsRefused(t *testing.T) {
	jc := testJob(testCorpus(t), 5)
	tc := startCluster(t, jc, t.TempDir(), false)
	w, err := worker.NewWorker(worker.WorkerConfig{ID: "intruder", Coordinator: tc.coord.Addr(), Secret: []byte("not-the-cluster-key-123456")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "cluster key") {
		t.Fatalf("worker with the wrong key: %v, want a refusal naming the cluster key", err)
	}
	poll(t, "the intruder's handshake to be counted", func() bool { return len(tc.coord.sec.Refusals()) > 0 })
	families, err := tc.coord.Metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := 0.0
	for _, f := range families {
		if f.GetName() == "recur_tls_refusals_total" {
			for _, m := range f.GetMetric() {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if counted < 1 {
		t.Fatalf("recur_tls_refusals_total is %g, want the intruder counted", counted)
	}

	// A certificate of the organisation's CA without the cluster key gets
	// through TLS but not past the token check.
	orgCA, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: tc.secret})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, caFile := writePKI(t, orgCA, dir, "outsider")
	outsider, err := cluster.NewSecurity(cluster.SecurityConfig{CertFile: certFile, KeyFile: keyFile, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(tc.coord.Addr(), cluster.DialOptions(outsider, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := controlpb.NewPeerClient(conn).State(ctx, &controlpb.StateRequest{Step: 0})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("state without a key: %v, want Unauthenticated", err)
	}
	if n := tc.coord.auth.Rejected(); n < 1 {
		t.Fatalf("%d token refusals counted, want at least 1", n)
	}
}

func TestWorkerOfAnotherVersionIsRefused(t *testing.T) {
	jc := testJob(testCorpus(t), 5)
	tc := startCluster(t, jc, t.TempDir(), false)
	conn, err := grpc.NewClient(tc.coord.Addr(), cluster.DialOptions(tc.coord.sec, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = controlpb.NewControlClient(conn).Join(context.Background(), &controlpb.JoinRequest{WorkerId: "old", Version: "recur/0"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "recur/0") {
		t.Fatalf("old worker: %v, want InvalidArgument naming its version", err)
	}
}

func TestJobValidationNamesTheField(t *testing.T) {
	cases := map[string]func(*job.Config){
		"model.hidden":           func(j *job.Config) { j.Model.Hidden = 0 },
		"model.cell":             func(j *job.Config) { j.Model.Cell = "transformer" },
		"data.text":              func(j *job.Config) { j.Data.Text = "" },
		"optimizer":              func(j *job.Config) { j.Optimizer.Adam.Beta1 = 2 },
		"schedule":               func(j *job.Config) { j.Schedule.BaseLR = -1 },
		"cluster.max_workers":    func(j *job.Config) { j.Cluster.MinWorkers, j.Cluster.MaxWorkers = 3, 2 },
		"cluster.ring_transport": func(j *job.Config) { j.Cluster.RingTransport = "udp" },
	}
	for field, edit := range cases {
		j := job.Default()
		j.Data.Text, j.Train.Steps = "x.txt", 10
		edit(&j)
		err := j.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
}

func TestCoordinatorRejectsDataThatDoesNotFit(t *testing.T) {
	jc := testJob(testCorpus(t), 5)
	jc.Data.Batch, jc.Data.Seq = 4096, 100
	_, err := NewCoordinator(CoordinatorConfig{Job: jc, Listen: "127.0.0.1:0", Gossip: "off", Dir: t.TempDir(), Secret: []byte("0123456789abcdef")})
	if err == nil || !strings.Contains(err.Error(), "training characters") {
		t.Fatalf("corpus too small for the batch: %v", err)
	}
}

// writePKI writes a certificate for name, its key and the CA of ca into
// dir.
func writePKI(t *testing.T, ca *cluster.Security, dir, name string) (cert, key, caFile string) {
	t.Helper()
	cert, key, caFile, err := ca.WritePEM(dir, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, caFile
}
