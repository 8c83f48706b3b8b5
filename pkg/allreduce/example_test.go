package allreduce_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// Three ranks in one process over the in-memory transport; each
// contributes its rank+1 and rank 2 flags a bad gradient.
func Example() {
	net := allreduce.NewMemNetwork()
	defer net.Close()
	members := []allreduce.Member{{ID: "a", Addr: "a"}, {ID: "b", Addr: "b"}, {ID: "c", Addr: "c"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out := make([]string, len(members))
	var wg sync.WaitGroup
	for rank := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := allreduce.Config{Rank: rank, Members: members, Generation: 1}
			ring, err := allreduce.New(ctx, cfg, net.Node(members[rank].Addr))
			if err != nil {
				out[rank] = err.Error()
				return
			}
			defer ring.Close()
			grads := []float32{float32(rank + 1), 10}
			res, err := ring.AllReduce(ctx, grads, allreduce.Options{Op: allreduce.Mean, Bad: rank == 2})
			out[rank] = fmt.Sprintf("rank %d: %v bad=%v err=%v", rank, grads, res.AnyBad, err)
		}()
	}
	wg.Wait()
	for _, line := range out {
		fmt.Println(line)
	}
	// Output:
	// rank 0: [2 10] bad=true err=<nil>
	// rank 1: [2 10] bad=true err=<nil>
	// rank 2: [2 10] bad=true err=<nil>
}
