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
	conn, err := grpc.NewClient(tc.coord.Addr(), cluster.DialOptions(nil, nil)...)
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
	if n := tc.coord.auth.Rejected(); n < 2 {
		t.Fatalf("%d refusals counted, want at least 2", n)
	}
}

func TestWorkerOfAnotherVersionIsRefused(t *testing.T) {
	jc := testJob(testCorpus(t), 5)
	tc := startCluster(t, jc, t.TempDir(), false)
	conn, err := grpc.NewClient(tc.coord.Addr(), cluster.DialOptions(tc.secret, nil)...)
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
