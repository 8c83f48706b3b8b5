package cluster

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/test/bufconn"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// memNet is an in-memory network for a whole cluster: gRPC listeners by
// name (bufconn) and the ring's MemNetwork. Nothing touches a socket.
type memNet struct {
	mu   sync.Mutex
	lis  map[string]*bufconn.Listener
	ring *allreduce.MemNetwork
}

func newMemNet(t *testing.T) *memNet {
	n := &memNet{lis: map[string]*bufconn.Listener{}, ring: allreduce.NewMemNetwork()}
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
// weights.
func TestClusterInMemory(t *testing.T) {
	jc := testJob(testCorpus(t), 40)
	n := newMemNet(t)
	secret := []byte("test-cluster-key-0123456789")
	c, err := NewCoordinator(CoordinatorConfig{Job: jc, Listener: n.listen("coordinator:7070"), Dialer: n.dial, Gossip: "off",
		Dir: t.TempDir(), Secret: secret, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	workers := map[string]*Worker{}
	errs := make(chan error, 3)
	for i := range 3 {
		id := fmt.Sprintf("w%d", i)
		w, err := NewWorker(WorkerConfig{ID: id, Coordinator: "coordinator:7070", Secret: secret, Dialer: n.dial,
			PeerListener: n.listen(id + ":7072"), RingTransport: memRing{n.ring.Node(id + ":7071")}, Retry: 50 * time.Millisecond,
			Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatal(err)
		}
		workers[id] = w
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			err := w.Run(wctx)
			if id == "w2" {
				return // killed below
			}
			errs <- err
		}()
		if id == "w2" {
			go func() {
				for len(c.History()) < 10 {
					time.Sleep(5 * time.Millisecond)
				}
				n.ring.Kill(id + ":7071") // its ring links break...
				wcancel()                 // ...and the process is gone
			}()
		}
	}
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
	p0, p1 := workers["w0"].engine().model.Params.Value, workers["w1"].engine().model.Params.Value
	for i := range p0 {
		if p0[i] != p1[i] {
			t.Fatalf("w0 and w1 differ at parameter %d", i)
		}
	}
}
