package cluster

import (
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/recur-ml/recur/internal/planner"
)

// Membership is the failure detector and directory of a cluster: the
// coordinator learns from it that a worker died or was cut off (within a
// few seconds), workers find the coordinator through any member.
// StartGossip is the memberlist implementation; MemMembership runs a whole
// cluster's membership in one process for tests.
type Membership interface {
	// Addr is the address other members join through.
	Addr() string
	// Join contacts any of addrs.
	Join(addrs ...string) error
	// Coordinator returns the control address the coordinator advertises,
	// if the coordinator is a live member.
	Coordinator() (string, bool)
	// Members returns the names of the live members.
	Members() map[string]bool
	// LocalIP is the IP this member advertises (nil if unknown).
	LocalIP() net.IP
	// Leave leaves gracefully (the others learn at once) and stops; Stop
	// stops without leaving (the others detect a failure). Later calls of
	// either do nothing.
	Leave()
	Stop()
}

// MembershipConfig describes one member.
type MembershipConfig struct {
	Name      string // unique member name (planner.CoordinatorID, a worker id)
	Bind      string // host:port to bind; port 0 picks one
	Advertise string // host the others reach this member at; empty: the implementation's choice
	Secret    []byte // cluster key: gossip is encrypted with a key derived from it
	// Meta travels with the member: the coordinator's control address, a
	// worker's incarnation.
	Meta string
	// Gone, if set, is called with the name and meta of a departed member
	// (never the coordinator's own). It may be called while the
	// implementation holds its own locks: it must not call back into it.
	Gone func(name, meta string)
	Log  *zap.Logger
}

// StartMembership starts a member; StartGossip is the default.
type StartMembership func(MembershipConfig) (Membership, error)

// gossip is a memberlist node, encrypted with a key derived from the
// cluster secret. memberlist's Members returns nodes it keeps changing, so
// the live members and their meta are copied from its event callbacks
// (which it calls under its own lock) into nodes.
type gossip struct {
	ml   *memberlist.Memberlist
	once sync.Once

	addr string // this member's address
	ip   net.IP

	mu    sync.Mutex
	nodes map[string]string // live member -> meta
}

type gossipEvents struct {
	g    *gossip
	gone func(name, meta string)
	log  *zap.Logger
}

func (e gossipEvents) NotifyJoin(n *memberlist.Node) {
	e.log.Debug("gossip join", zap.String("node", n.Name))
	e.g.set(n.Name, string(n.Meta))
}
func (e gossipEvents) NotifyLeave(n *memberlist.Node) {
	meta := string(n.Meta)
	e.g.mu.Lock()
	delete(e.g.nodes, n.Name)
	e.g.mu.Unlock()
	if e.gone == nil || n.Name == planner.CoordinatorID {
		return // only the coordinator acts on departures, and not its own
	}
	e.log.Info("gossip: member gone", zap.String("node", n.Name))
	e.gone(n.Name, meta)
}
func (e gossipEvents) NotifyUpdate(n *memberlist.Node) { e.g.set(n.Name, string(n.Meta)) }

func (g *gossip) set(name, meta string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nodes[name] = meta
}

type metaDelegate struct{ meta []byte }

func (d metaDelegate) NodeMeta(limit int) []byte                { return d.meta }
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// StartGossip starts a memberlist member tuned to detect a dead worker in
// about 2-3 s.
func StartGossip(cfg MembershipConfig) (Membership, error) {
	lg := cfg.Log
	if lg == nil {
		lg = zap.NewNop()
	}
	host, portStr, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.Bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.Bind, err)
	}
	conf := memberlist.DefaultLANConfig()
	conf.Name = cfg.Name
	conf.BindAddr, conf.BindPort = host, port
	conf.AdvertisePort = port
	if cfg.Advertise != "" {
		conf.AdvertiseAddr = cfg.Advertise
	}
	// Detect a dead worker in about 2-3 s: probe every 500 ms, suspect after
	// a 250 ms timeout, declare dead after 3 probe intervals of suspicion.
	conf.ProbeInterval = 500 * time.Millisecond
	conf.ProbeTimeout = 250 * time.Millisecond
	conf.SuspicionMult = 3
	conf.GossipInterval = 100 * time.Millisecond
	conf.PushPullInterval = 5 * time.Second
	// A restarted worker comes back under its name from another address;
	// let it take the name over once the old process is known dead.
	conf.DeadNodeReclaimTime = time.Second
	g := &gossip{nodes: map[string]string{cfg.Name: cfg.Meta}}
	conf.Events = gossipEvents{g: g, gone: cfg.Gone, log: lg}
	conf.Delegate = metaDelegate{meta: []byte(cfg.Meta)}
	conf.Logger = log.New(io.Discard, "", 0)
	if len(cfg.Secret) > 0 {
		conf.SecretKey = gossipKey(cfg.Secret)
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	g.ml = ml
	// The local node's address does not change: read it once, here.
	n := ml.LocalNode()
	g.addr, g.ip = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), append(net.IP(nil), n.Addr...)
	return g, nil
}

func (g *gossip) Addr() string { return g.addr }

func (g *gossip) LocalIP() net.IP { return g.ip }

func (g *gossip) Join(addrs ...string) error {
	_, err := g.ml.Join(addrs)
	return err
}

func (g *gossip) Coordinator() (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	meta, ok := g.nodes[planner.CoordinatorID]
	return meta, ok
}

func (g *gossip) Members() map[string]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]bool, len(g.nodes))
	for name := range g.nodes {
		out[name] = true
	}
	return out
}

func (g *gossip) Leave() { g.stop(true) }
func (g *gossip) Stop()  { g.stop(false) }

// stop stops the node, leaving first when graceful; later calls do nothing.
func (g *gossip) stop(graceful bool) {
	g.once.Do(func() {
		if graceful {
			g.ml.Leave(200 * time.Millisecond)
		}
		g.ml.Shutdown()
	})
}
