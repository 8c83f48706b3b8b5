//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext connects from inside the node, as a process there would:
// the socket is made in the node's namespace (on a thread switched into
// it for the call), so the caller reaches the node's network without a
// route of its own. It fits http.Transport.DialContext.
func (nd *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := inNamespace(nd, func() (any, error) { return new(net.Dialer).DialContext(ctx, network, addr) })
		if err != nil {
			done <- result{nil, err}
			return
		}
		done <- result{c.(net.Conn), nil}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("netns: dial %s from %s: %w", addr, nd.Name, r.err)
	}
	return r.c, nil
}

// inNamespace runs fn on a thread switched into nd's namespace, and
// switches it back; sockets fn makes stay in nd's namespace. A thread that
// cannot be switched back is never unlocked, so the runtime discards it
// with the goroutine.
func inNamespace(nd *Node, fn func() (any, error)) (any, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join(netnsDir, nd.NS))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns: %w", err)
	}
	v, err := fn()
	if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return v, err
}
