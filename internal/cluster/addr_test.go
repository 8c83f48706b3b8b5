package cluster

import (
	"net"
	"testing"
)

// A listener bound to every interface is advertised at a reachable IP;
// any other address as it is.
func TestReachable(t *testing.T) {
	ip := net.ParseIP("10.77.0.3")
	for addr, want := range map[string]string{
		"0.0.0.0:7070":    "10.77.0.3:7070",
		"[::]:7071":       "10.77.0.3:7071",
		"10.1.2.3:7070":   "10.1.2.3:7070",
		"127.0.0.1:7070":  "127.0.0.1:7070",
		"host.local:7070": "host.local:7070",
		"no port":         "no port",
	} {
		if got := Reachable(addr, ip); got != want {
			t.Errorf("Reachable(%q) = %q, want %q", addr, got, want)
		}
	}
}

// A private address is preferred to a public one; loopback, link-local
// and multicast addresses are never picked.
func TestPickIP(t *testing.T) {
	nets := func(cidrs ...string) []net.Addr {
		var out []net.Addr
		for _, c := range cidrs {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				t.Fatal(err)
			}
			n.IP = ip
			out = append(out, n)
		}
		return out
	}
	for _, c := range []struct {
		addrs []net.Addr
		want  string
	}{
		{nets("127.0.0.1/8", "192.0.2.7/24", "10.77.0.2/24"), "10.77.0.2"},
		{nets("127.0.0.1/8", "fe80::1/64", "192.0.2.7/24"), "192.0.2.7"},
		{nets("127.0.0.1/8", "fe80::1/64"), "<nil>"},
	} {
		if got := pickIP(c.addrs).String(); got != c.want {
			t.Errorf("pickIP(%v) = %s, want %s", c.addrs, got, c.want)
		}
	}
}
