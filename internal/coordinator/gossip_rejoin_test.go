package coordinator

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/worker"
)

// crashedMember is a membership whose process dies without a word: it
// never leaves, and stays in the others' view until a successor of the
// same name replaces it.
type crashedMember struct{ cluster.Membership }

func (crashedMember) Leave() {}
func (crashedMember) Stop()  {}

// countedJoins counts a member's gossip joins.
type countedJoins struct {
	cluster.Membership
	n *atomic.Int32
}

func (c countedJoins) Join(addrs ...string) error {
	c.n.Add(1)
	return c.Membership.Join(addrs...)
}

// A worker that joins a restarted coordinator joins its gossip as well,
// although its own view never lost the coordinator (the new process took
// the old one's name and address before anyone noticed): otherwise the
// new coordinator would learn of the worker only from a periodic exchange
// of member lists, and miss its death meanwhile (in the network-namespace
// cluster test, a worker killed just after a coordinator restart held the
// ring up for the 10 s ready timeout).
func TestWorkerJoinsGossipOfRestartedCoordinator(t *testing.T) {
	jc := testJob(testCorpus(t), 1000)
	dir := t.TempDir()
	n := newMemNet(t)
	crash := func(cfg *CoordinatorConfig) {
		cfg.Membership = func(mc cluster.MembershipConfig) (cluster.Membership, error) {
			m, err := n.members.Start(mc)
			return crashedMember{m}, err
		}
	}
	c1 := n.coordinator(t, jc, dir, crash)
	var joins atomic.Int32
	w, err := worker.NewWorker(worker.WorkerConfig{ID: "w0", Coordinator: "coordinator:7070", Secret: []byte(memSecret), Dialer: n.dial,
		PeerListener: n.listen("w0:7072"), RingTransport: memRing{n.ring.Node("w0:7071")}, Gossip: "coordinator",
		Membership: func(mc cluster.MembershipConfig) (cluster.Membership, error) {
			m, err := n.members.Start(mc)
			return countedJoins{m, &joins}, err
		},
		Retry: 50 * time.Millisecond, Log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer w.Close(); w.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	waitHistory := func(c *Coordinator, steps int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for len(c.History()) < steps {
			if time.Now().After(deadline) {
				t.Fatalf("waited a minute for %d steps", steps)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitHistory(c1, 3)
	before := joins.Load()
	c1.Close()
	c2 := n.coordinator(t, jc, dir, nil)
	waitHistory(c2, 1) // the worker joined c2 and trained a step with it
	if joins.Load() == before {
		t.Fatal("the worker joined the restarted coordinator without joining its gossip")
	}
}
