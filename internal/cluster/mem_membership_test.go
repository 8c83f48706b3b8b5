package cluster

import (
	"sync"
	"testing"

	"github.com/recur-ml/recur/internal/planner"
)

// The in-process membership behaves as the coordinator relies on: members
// see each other, a killed member is reported gone with its meta, the
// coordinator's own departure is not reported, a stopped member cannot
// rejoin, and a restarted one replaces the old.
func TestMemMembership(t *testing.T) {
	n := NewMemMembership()
	var mu sync.Mutex
	var gone []string
	coord, err := n.Start(MembershipConfig{Name: planner.CoordinatorID, Meta: "coordinator:7070", Gone: func(name, meta string) {
		mu.Lock()
		gone = append(gone, name+"/"+meta)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	w1, _ := n.Start(MembershipConfig{Name: "w1", Meta: "inc1"})
	w2, _ := n.Start(MembershipConfig{Name: "w2", Meta: "inc2"})
	if addr, ok := w1.Coordinator(); !ok || addr != "coordinator:7070" {
		t.Fatalf("w1 finds the coordinator at %q, %v", addr, ok)
	}
	if m := coord.Members(); len(m) != 3 || !m["w1"] || !m["w2"] {
		t.Fatalf("members %v", m)
	}
	if !n.Kill("w1") || n.Kill("nobody") {
		t.Fatal("Kill reports the wrong membership")
	}
	if err := w1.Join(); err != nil { // a partitioned process comes back
		t.Fatal(err)
	}
	w2.Stop()
	if err := w2.Join(); err == nil {
		t.Fatal("a stopped member rejoined")
	}
	w1b, _ := n.Start(MembershipConfig{Name: "w1", Meta: "inc1b"}) // restarted: the old one departs
	if m := w1b.Members(); len(m) != 2 || !m["w1"] {
		t.Fatalf("members after the restart %v", m)
	}
	coord.Leave()
	if _, ok := w1b.Coordinator(); ok {
		t.Fatal("the coordinator is still a member after leaving")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"w1/inc1", "w2/inc2", "w1/inc1"}
	if len(gone) != len(want) {
		t.Fatalf("gone %v, want %v", gone, want)
	}
	for i := range want {
		if gone[i] != want[i] {
			t.Fatalf("gone %v, want %v", gone, want)
		}
	}
}
