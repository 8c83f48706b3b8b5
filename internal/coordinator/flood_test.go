package coordinator

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/testenv"

	"github.com/recur-ml/recur/internal/admit"
	"github.com/recur-ml/recur/internal/planner"
)

// holdFlood opens idle and garbage connections to addr, as strangers
// without the key would, and keeps them until the test ends; stillOpen
// counts those the server has not closed.
func holdFlood(t *testing.T, addr string, idle, garbage int) (stillOpen func() int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(addr)), 7))
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range idle + garbage {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			continue // a full backlog refuses some: that is fine
		}
		if i >= idle {
			junk := make([]byte, 64+rng.IntN(512))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(junk)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		deadline := time.Now().Add(2 * time.Second)
		for _, c := range conns {
			c.SetReadDeadline(deadline)
		}
		open := 0
		buf := make([]byte, 256)
		for _, c := range conns {
			for {
				_, err := c.Read(buf) // a TLS alert may come before the close
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					open++
				}
				if err != nil {
					break
				}
			}
		}
		return open
	}
}

// Strangers without the key hold 1,000 idle and 1,000 garbage connections
// to the coordinator's control port and to a worker's state and ring
// ports (6,000 in all): a worker still joins, receives the
// state from a peer, a killed worker is replaced by a new generation, the
// run finishes, and the coordinator never holds more than its admission
// limit of unauthenticated connections.
func TestControlPortFloodOfStrangers(t *testing.T) {
	testenv.RaiseFileLimit(t, 16384)
	jc := testJob(testCorpus(t), 1_000_000) // stopped below
	tc := startCluster(t, jc, t.TempDir(), true)
	tc.addWorker("w1")
	tc.addWorker("w2")
	tc.waitSteps(5, time.Minute)
	stillOpen := holdFlood(t, tc.coord.Addr(), 1000, 1000)
	// And the ports of a worker the joiner may sync from and link to.
	ring, peer := tc.workers["w2"].Addrs()
	peerOpen := holdFlood(t, peer, 1000, 1000)
	ringOpen := holdFlood(t, ring, 1000, 1000)
	adm := tc.coord.lis.(*admit.Listener)
	n := len(tc.coord.History())
	tc.addWorker("w3") // joins and syncs under the flood
	poll(t, "w3 in a generation", func() bool { return tc.workers["w3"].InGeneration() })
	tc.waitSteps(n+10, time.Minute)
	tc.kill("w1") // re-formation under the flood
	n = len(tc.coord.History())
	tc.waitSteps(n+20, 2*time.Minute)
	tc.coord.Stop(planner.Interrupted, "the test is over")
	tc.wait(time.Minute)
	for name, open := range map[string]func() int{"the coordinator's control port": stillOpen, "w2's state port": peerOpen, "w2's ring port": ringOpen} {
		if n := open(); n > admit.DefaultMaxPending {
			t.Errorf("%s holds %d strangers' connections open, admission limit %d", name, n, admit.DefaultMaxPending)
		}
	}
	st := adm.Stats()
	if st.Evicted+st.Refused+st.TimedOut == 0 {
		t.Fatalf("admission closed no stranger: %+v", st)
	}
	h := tc.coord.History()
	for i, r := range h {
		if r.Step != int64(i) {
			t.Fatalf("step %d recorded as %d", i, r.Step)
		}
	}
	tc.wg.Wait()
	p2, p3 := tc.params("w2"), tc.params("w3")
	for i := range p2 {
		if p2[i] != p3[i] {
			t.Fatalf("w2 and w3 differ at parameter %d", i)
		}
	}
}
