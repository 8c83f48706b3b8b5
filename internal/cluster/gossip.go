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

// gossip is a memberlist node: the coordinator learns from it that a worker
// died or was cut off (within a few seconds), workers use it to find the
// coordinator through any member. Gossip is encrypted with a key derived
// from the cluster secret.
type gossip struct {
	ml   *memberlist.Memberlist
	once sync.Once
}

type gossipEvents struct {
	gone func(name, meta string)
	log  *zap.Logger
}

func (e gossipEvents) NotifyJoin(n *memberlist.Node) {
	e.log.Debug("gossip join", zap.String("node", n.Name))
}
func (e gossipEvents) NotifyLeave(n *memberlist.Node) {
	if e.gone == nil || n.Name == planner.CoordinatorID {
		return // only the coordinator acts on departures, and not its own
	}
	e.log.Info("gossip: member gone", zap.String("node", n.Name))
	e.gone(n.Name, string(n.Meta))
}
func (e gossipEvents) NotifyUpdate(*memberlist.Node) {}

type metaDelegate struct{ meta []byte }

func (d metaDelegate) NodeMeta(limit int) []byte                { return d.meta }
func (metaDelegate) NotifyMsg([]byte)                           {}
func (metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (metaDelegate) LocalState(join bool) []byte                { return nil }
func (metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// startGossip starts a memberlist node named name on bind (host:port, port
// 0 picks one), reachable at advertise (a host; empty: memberlist's choice),
// carrying meta (the coordinator's control address, a worker's
// incarnation). gone is called with the name and meta of a departed node.
func startGossip(name, bind, advertise string, secret []byte, meta string, gone func(name, meta string), lg *zap.Logger) (*gossip, error) {
	host, portStr, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", bind, err)
	}
	conf := memberlist.DefaultLANConfig()
	conf.Name = name
	conf.BindAddr, conf.BindPort = host, port
	conf.AdvertisePort = port
	if advertise != "" {
		conf.AdvertiseAddr = advertise
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
	conf.Events = gossipEvents{gone: gone, log: lg}
	conf.Delegate = metaDelegate{meta: []byte(meta)}
	conf.Logger = log.New(io.Discard, "", 0)
	if len(secret) > 0 {
		conf.SecretKey = gossipKey(secret)
	}
	ml, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	return &gossip{ml: ml}, nil
}

func (g *gossip) addr() string {
	n := g.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// join contacts any member.
func (g *gossip) join(addrs ...string) error {
	_, err := g.ml.Join(addrs)
	return err
}

// coordinator returns the control address the coordinator advertises.
func (g *gossip) coordinator() (string, bool) {
	for _, n := range g.ml.Members() {
		if n.Name == planner.CoordinatorID {
			return string(n.Meta), true
		}
	}
	return "", false
}

// members returns the names of the live members.
func (g *gossip) members() map[string]bool {
	out := map[string]bool{}
	for _, n := range g.ml.Members() {
		out[n.Name] = true
	}
	return out
}

// shutdown leaves the gossip gracefully (peers learn at once) and stops.
func (g *gossip) shutdown() { g.stop(true) }

// stop stops the node, leaving first when graceful; later calls do nothing.
func (g *gossip) stop(graceful bool) {
	g.once.Do(func() {
		if graceful {
			g.ml.Leave(200 * time.Millisecond)
		}
		g.ml.Shutdown()
	})
}
