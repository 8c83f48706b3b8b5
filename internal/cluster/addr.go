package cluster

import "net"

// Reachable is the address other machines dial for a listener bound to
// addr: addr itself, or, when it is bound to every interface (0.0.0.0,
// ::), the same port on ip (nil: HostIP). An address other hosts cannot
// dial ("0.0.0.0:7070" names the dialer's own machine) is never what a
// process advertises.
func Reachable(addr string, ip net.IP) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if h := net.ParseIP(host); h == nil || !h.IsUnspecified() {
		return addr
	}
	if ip == nil {
		ip = HostIP()
	}
	if ip == nil {
		return addr
	}
	return net.JoinHostPort(ip.String(), port)
}

// HostIP is this machine's first private unicast address, else its first
// global unicast one (nil when it has neither), as memberlist picks the
// address it advertises when bound to every interface.
func HostIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	return pickIP(addrs)
}

func pickIP(addrs []net.Addr) net.IP {
	var global net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.IsPrivate() {
			return n.IP
		}
		if global == nil {
			global = n.IP
		}
	}
	return global
}
