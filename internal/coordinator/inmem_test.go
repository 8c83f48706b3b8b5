package coordinator

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/worker"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/test/bufconn"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// memNet is an in-memory network for a whole cluster: gRPC listeners by
// name (bufconn), the ring's MemNetwork and the membership. Nothing
// touches a socket.
type memNet struct {
	mu      sync.Mutex
	lis     map[string]*bufconn.Listener
	ring    *allreduce.MemNetwork
	members *cluster.MemMembership
}

func newMemNet(t *testing.T) *memNet {
	n := &memNet{lis: map[string]*bufconn.Listener{}, ring: allreduce.NewMemNetwork(), members: cluster.NewMemMembership()}
	t.Cleanup(func() { n.ring.Close() })
	return n
}

// listen returns a listener reachable at addr through dial.
func (n *memNet) listen(addr string) net.Listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := bufconn.Listen(1 << 20)
	n.lis[addr] = l
	return namedListener{l, memAddr(addr)}
}

func (n *memNet) dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	l, ok := n.lis[addr]
	n.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("memnet: nothing listens at %s", addr)
	}
	return l.DialContext(ctx)
}

const memSecret = "test-cluster-key-0123456789"

// coordinator starts a coordinator on the network at "coordinator:7070";
// edit, if set, changes its config first.
func (n *memNet) coordinator(t *testing.T, jc job.Config, dir string, edit func(*CoordinatorConfig)) *Coordinator {
	t.Helper()
	cfg := CoordinatorConfig{Job: jc, Listener: n.listen("coordinator:7070"), Dialer: n.dial, Gossip: "mem", Membership: n.members.Start,
		Dir: dir, Secret: []byte(memSecret), Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// worker starts worker id on the network; Run's error goes to errs when
// it returns. Cancelling ctx stops it.
func (n *memNet) worker(t *testing.T, ctx context.Context, wg *sync.WaitGroup, id string, errs chan<- error) *worker.Worker {
	t.Helper()
	w, err := worker.NewWorker(worker.WorkerConfig{ID: id, Coordinator: "coordinator:7070", Secret: []byte(memSecret), Dialer: n.dial,
		PeerListener: n.listen(id + ":7072"), RingTransport: memRing{n.ring.Node(id + ":7071")}, Gossip: "coordinator",
		Membership: n.members.Start, Retry: 50 * time.Millisecond, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		err := w.Run(ctx)
		if errs != nil {
			errs <- err
		}
	}()
	return w
}

// oneWorker starts a coordinator (edit, if set, changes its config) and
// one worker, w0, on a fresh in-memory network. stop ends the worker and
// waits for it; it also runs when the test ends, before the coordinator
// closes.
func oneWorker(t *testing.T, jc job.Config, dir string, edit func(*CoordinatorConfig)) (c *Coordinator, stop func()) {
	t.Helper()
	n := newMemNet(t)
	c = n.coordinator(t, jc, dir, edit)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	n.worker(t, ctx, &wg, "w0", nil)
	return c, stop
}

// memRing is a MemNetwork node as a worker's ring transport.
type memRing struct{ *allreduce.MemTransport }

func (memRing) Close() error { return nil }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// namedListener gives a bufconn listener the address it is dialled at.
type namedListener struct {
	*bufconn.Listener
	addr memAddr
}

func (l namedListener) Addr() net.Addr { return l.addr }

// A coordinator and three workers train over injected collaborators: an
// in-memory network for control and state transfer and the ring's
// MemNetwork, with no socket opened. A worker killed mid-run is replaced
// by the survivors' next generation, and the others end with identical
// weights. Its gradient goes in one bucket per layer, reduced while
// backward runs (the other tests' small models make one bucket, reduced
// after backward).
func TestClusterInMemory(t *testing.T) {
	jc := testJob(testCorpus(t), 40)
	jc.Cluster.BucketBytes = 0
	n := newMemNet(t)
	c := n.coordinator(t, jc, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	w0 := n.worker(t, ctx, &wg, "w0", errs)
	w1 := n.worker(t, ctx, &wg, "w1", errs)
	ctx2, kill2 := context.WithCancel(ctx)
	defer kill2()
	n.worker(t, ctx2, &wg, "w2", nil)
	go func() {
		for len(c.History()) < 10 {
			time.Sleep(5 * time.Millisecond)
		}
		n.ring.Kill("w2:7071") // its ring links break...
		n.members.Kill("w2")   // ...the membership reports it gone...
		kill2()                // ...and the process ends
	}()
	select {
	case <-c.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the in-memory run did not finish (%d steps)", len(c.History()))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a surviving worker: %v", err)
		}
	}
	if o, _, ck := c.Outcome(); o.String() != "finished" || ck != 40 {
		t.Fatalf("outcome %v, checkpoint %d", o, ck)
	}
	p0, p1 := w0.Model().Params.Value, w1.Model().Params.Value
	for i := range p0 {
		if p0[i] != p1[i] {
			t.Fatalf("w0 and w1 differ at parameter %d", i)
		}
	}
}
