package cluster

import (
	"errors"
	"net"
	"sync"

	"github.com/recur-ml/recur/internal/planner"
)

// MemMembership is a whole cluster's membership in one process: members
// started through Start see each other at once, and Kill makes one
// depart as a crashed process would. Its zero value is not usable; use
// NewMemMembership.
type MemMembership struct {
	mu      sync.Mutex
	members map[string]*memMember
}

// NewMemMembership returns an empty in-process membership.
func NewMemMembership() *MemMembership {
	return &MemMembership{members: map[string]*memMember{}}
}

// Start adds a live member; a member of the same name replaces the old
// one (a restarted process), which departs first. It is a
// StartMembership.
func (n *MemMembership) Start(cfg MembershipConfig) (Membership, error) {
	m := &memMember{net: n, cfg: cfg}
	if old := n.lookup(cfg.Name); old != nil {
		old.depart()
	}
	m.Join()
	return m, nil
}

// Kill makes the named member depart, as a crashed or partitioned
// process: the others are told it is gone. It reports whether it was a
// member.
func (n *MemMembership) Kill(name string) bool {
	m := n.lookup(name)
	if m == nil {
		return false
	}
	m.depart()
	return true
}

func (n *MemMembership) lookup(name string) *memMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[name]
}

type memMember struct {
	net     *MemMembership
	cfg     MembershipConfig
	stopped bool // Leave or Stop was called (under net.mu)
}

// Join makes the member live again after a Kill, as a partitioned
// process that rejoins (any address reaches the one network).
func (m *memMember) Join(...string) error {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	if m.stopped {
		return errors.New("membership: member stopped")
	}
	if m.net.members[m.cfg.Name] == nil {
		m.net.members[m.cfg.Name] = m
	}
	return nil
}

// depart removes the member and tells the others, outside the lock (as
// memberlist, Gone may be slow; unlike it, Gone may call back).
func (m *memMember) depart() {
	m.net.mu.Lock()
	if m.net.members[m.cfg.Name] != m {
		m.net.mu.Unlock()
		return
	}
	delete(m.net.members, m.cfg.Name)
	var tell []func(string, string)
	for _, o := range m.net.members {
		if o.cfg.Gone != nil && m.cfg.Name != planner.CoordinatorID {
			tell = append(tell, o.cfg.Gone)
		}
	}
	m.net.mu.Unlock()
	for _, gone := range tell {
		gone(m.cfg.Name, m.cfg.Meta)
	}
}

func (m *memMember) Addr() string    { return "mem:" + m.cfg.Name }
func (m *memMember) LocalIP() net.IP { return nil }
func (m *memMember) Leave()          { m.stop() }
func (m *memMember) Stop()           { m.stop() }

func (m *memMember) stop() {
	m.net.mu.Lock()
	m.stopped = true
	m.net.mu.Unlock()
	m.depart()
}

func (m *memMember) Coordinator() (string, bool) {
	c := m.net.lookup(planner.CoordinatorID)
	if c == nil {
		return "", false
	}
	return c.cfg.Meta, true
}

func (m *memMember) Members() map[string]bool {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	out := make(map[string]bool, len(m.net.members))
	for name := range m.net.members {
		out[name] = true
	}
	return out
}
