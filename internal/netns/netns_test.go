//go:build linux

package netns

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// needRoot skips a test that builds namespaces where that is impossible.
func needRoot(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
}

// Two shaped nodes reach each other over the bridge; a cut link refuses
// traffic until it is restored; a node's command runs inside it; Close
// removes every namespace.
func TestNetLinks(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n, err := New(ctx, Config{Rate: "100mbit"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a, err := n.Add(ctx, "a", true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Add(ctx, "b", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx, "a", true); err == nil {
		t.Fatal("a second node a was added")
	}
	if a.IP.String() != DefaultSubnet+".1" || b.IP.String() != DefaultSubnet+".2" {
		t.Fatalf("addresses %s %s", a.IP, b.IP)
	}
	out, err := a.Command(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.IP.String()+"/24") {
		t.Fatalf("a command inside a: %v\n%s", err, out)
	}
	out, err = a.Command(ctx, "tc", "qdisc", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "100Mbit") {
		t.Fatalf("a's link is not shaped: %v\n%s", err, out)
	}

	if err := a.SetRate(ctx, "20mbit"); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Command(ctx, "tc", "qdisc", "show", "dev", "eth0").CombinedOutput(); err != nil || !strings.Contains(string(out), "20Mbit") {
		t.Fatalf("a's link was not reshaped: %v\n%s", err, out)
	}

	// A listener inside b, reached from a.
	lis := listenIn(t, ctx, b, "tcp", b.Addr(0))
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	if got := fetch(ctx, a, lis.Addr().String(), time.Minute); got != "hello" {
		t.Fatalf("a -> b: %q", got)
	}
	// b's address is not reachable from the caller's namespace.
	if c, err := net.DialTimeout("tcp", lis.Addr().String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("b is reachable outside the network")
	}
	if err := b.SetLink(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := fetch(ctx, a, lis.Addr().String(), 500*time.Millisecond); got != "" {
		t.Fatalf("a reached b over a cut link: %q", got)
	}
	if err := b.SetLink(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := fetch(ctx, a, lis.Addr().String(), time.Minute); got != "hello" {
		t.Fatalf("a -> b after the link came back: %q", got)
	}

	sleeper := b.Command(ctx, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { sleeper.Wait(); close(exited) }()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select { // Close ends what still runs inside
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("a process inside the network outlived Close")
	}
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), n.Prefix()) {
			t.Errorf("namespace %s left after Close", e.Name())
		}
	}
}

// listenIn opens a listener inside node nd: the socket is made on a
// thread switched into the node, like DialContext's.
func listenIn(t *testing.T, ctx context.Context, nd *Node, network, addr string) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := inNamespace(nd, func() (any, error) { return new(net.ListenConfig).Listen(ctx, network, addr) })
		if err != nil {
			done <- result{nil, err}
			return
		}
		done <- result{l.(net.Listener), nil}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.l
}

// fetch dials addr from nd until it reads something or limit passes ("").
func fetch(ctx context.Context, nd *Node, addr string, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		c, err := nd.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			if len(b) > 0 {
				return string(b)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ""
}

// Sweep removes the namespaces of a run whose process is gone and leaves
// a live run's alone.
func TestSweep(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	live, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// A pid above pid_max never runs; the random part keeps concurrent
	// runs of this test apart.
	var b [3]byte
	rand.Read(b[:])
	dead := fmt.Sprintf("%s2147483647-%x-", prefixRoot, b)
	for _, name := range []string{"br", "w1"} {
		if err := ip(ctx, "netns", "add", dead+name); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"br", "w1"} {
		if _, err := os.Stat(netnsDir + "/" + dead + name); err == nil {
			t.Errorf("Sweep left %s of a dead run (removed %v)", dead+name, removed)
		}
	}
	if _, err := os.Stat(netnsDir + "/" + live.Prefix() + "br"); err != nil {
		t.Fatalf("Sweep removed a live run's namespace: %v", err)
	}
}

func TestRunOf(t *testing.T) {
	for name, want := range map[string]int{
		"recur-nt-123-a1b2c3-w1": 123,
		"recur-nt-123-a1b2c3-br": 123,
		"recur-nt-x-a1b2c3-br":   0,
		"recur-nt-123":           0,
		"recur-rb-1":             0,
		"other":                  0,
	} {
		_, pid, ok := runOf(name)
		if ok != (want != 0) || pid != want {
			t.Errorf("runOf(%q) = %d, %v", name, pid, ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Subnet: "8.8.8"}, {Subnet: "10.77"}, {Rate: "1 gbit"}, {Rate: "fast"}, {Burst: "512kb; reboot"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, c := range []Config{{}, {Subnet: "192.168.9", Rate: "2.5gbit", Burst: "1mb", Latency: "20ms"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
