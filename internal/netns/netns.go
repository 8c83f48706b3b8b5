//go:build linux

package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of Config.
const (
	// DefaultSubnet is the /24 the nodes live on: private, and reachable
	// only inside the run's own bridge, so runs cannot collide on it.
	DefaultSubnet = "10.77.0"
	// DefaultBurst is tbf's bucket: it must hold at least one timer tick's
	// worth of bytes at the rate (1 Gbit/s at HZ=250: 500 KB), or the link
	// cannot reach its rate.
	DefaultBurst = "512kb"
	// DefaultLatency bounds how long a packet may queue in tbf before it
	// is dropped: TCP then backs off as on a congested link.
	DefaultLatency = "50ms"
	// prefixRoot starts every namespace this package creates (Sweep's
	// pattern).
	prefixRoot = "recur-nt-"
)

// Config describes a network.
type Config struct {
	// Subnet is the first three octets of the nodes' /24 (DefaultSubnet).
	Subnet string
	// Rate is tc's rate of every shaped node's egress, e.g. "1gbit" or
	// "100mbit"; empty leaves the links unshaped.
	Rate string
	// Burst and Latency are tbf's (DefaultBurst, DefaultLatency).
	Burst, Latency string
}

// tcValue is what tc accepts as a rate, size or time: a number and a unit.
var tcValue = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[a-zA-Z]*$`)

// Validate reports a field tc or ip would refuse, naming it.
func (c *Config) Validate() error {
	if c.Subnet != "" {
		ip := net.ParseIP(c.Subnet + ".1").To4()
		if ip == nil || !ip.IsPrivate() {
			return fmt.Errorf("netns: subnet %q: want the first three octets of a private IPv4 /24, e.g. 10.77.0", c.Subnet)
		}
	}
	for name, v := range map[string]string{"rate": c.Rate, "burst": c.Burst, "latency": c.Latency} {
		if v != "" && !tcValue.MatchString(v) {
			return fmt.Errorf("netns: %s %q: want a number and a unit, e.g. 1gbit, 512kb, 50ms", name, v)
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Subnet == "" {
		c.Subnet = DefaultSubnet
	}
	if c.Burst == "" {
		c.Burst = DefaultBurst
	}
	if c.Latency == "" {
		c.Latency = DefaultLatency
	}
}

// Net is a bridge and the nodes attached to it.
type Net struct {
	cfg    Config
	prefix string // every namespace's name starts with it
	bridge string // the bridge's namespace

	mu     sync.Mutex
	nodes  []*Node
	closed bool
}

// Node is one host of a Net: a network namespace with the interface eth0
// on the bridge.
type Node struct {
	Name string // as given to Add
	NS   string // the namespace's name (ip netns)
	IP   net.IP // eth0's address
	veth string // the bridge's end of the node's link, in the bridge namespace
	net  *Net
}

// Available reports why this machine cannot build a Net (nil: it can).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s not found (Debian: apt-get install iproute2): %w", tool, err)
		}
	}
	return nil
}

// New creates the bridge of a new network. Close removes it and every
// node.
func New(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	cfg.defaults()
	var b [3]byte
	rand.Read(b[:])
	n := &Net{cfg: cfg, prefix: fmt.Sprintf("%s%d-%s-", prefixRoot, os.Getpid(), hex.EncodeToString(b[:]))}
	n.bridge = n.prefix + "br"
	if err := n.addNS(ctx, n.bridge); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"-n", n.bridge, "link", "add", "br0", "type", "bridge"},
		{"-n", n.bridge, "link", "set", "br0", "up"},
	} {
		if err := ip(ctx, args...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Prefix starts the name of every namespace of the network.
func (n *Net) Prefix() string { return n.prefix }

// addNS creates namespace ns with its loopback up, and records it for
// Close.
func (n *Net) addNS(ctx context.Context, ns string) error {
	if err := ip(ctx, "netns", "add", ns); err != nil {
		return err
	}
	return ip(ctx, "-n", ns, "link", "set", "lo", "up")
}

// nodeName is what Add accepts as a node's name: short, and safe in a
// namespace's name.
var nodeName = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// Add creates a node on the bridge at the next address; shaped puts tbf
// at Config.Rate on its egress (nodes that only observe, such as a test's
// monitor, go unshaped).
func (n *Net) Add(ctx context.Context, name string, shaped bool) (*Node, error) {
	if !nodeName.MatchString(name) || name == "br" {
		return nil, fmt.Errorf("netns: node name %q: want 1-12 lower-case letters and digits, not br", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("netns: network closed")
	}
	for _, o := range n.nodes {
		if o.Name == name {
			return nil, fmt.Errorf("netns: node %s exists", name)
		}
	}
	i := len(n.nodes)
	if i >= 250 {
		return nil, errors.New("netns: a /24 holds 250 nodes")
	}
	nd := &Node{Name: name, NS: n.prefix + name, IP: net.ParseIP(fmt.Sprintf("%s.%d", n.cfg.Subnet, i+1)).To4(),
		veth: fmt.Sprintf("v%d", i), net: n}
	if err := n.addNS(ctx, nd.NS); err != nil {
		return nil, err
	}
	n.nodes = append(n.nodes, nd) // Close removes it from here on
	steps := [][]string{
		// The pair is made inside the node, then one end moves to the
		// bridge: no name ever appears in the caller's namespace.
		{"-n", nd.NS, "link", "add", "eth0", "type", "veth", "peer", "name", nd.veth},
		{"-n", nd.NS, "link", "set", nd.veth, "netns", n.bridge},
		{"-n", n.bridge, "link", "set", nd.veth, "master", "br0"},
		{"-n", n.bridge, "link", "set", nd.veth, "up"},
		{"-n", nd.NS, "addr", "add", nd.IP.String() + "/24", "dev", "eth0"},
		{"-n", nd.NS, "link", "set", "eth0", "up"},
	}
	for _, args := range steps {
		if err := ip(ctx, args...); err != nil {
			return nil, err
		}
	}
	if shaped && n.cfg.Rate != "" {
		if err := nd.shape(ctx, "add", n.cfg.Rate); err != nil {
			return nil, err
		}
	}
	return nd, nil
}

// shape adds or changes (op) the tbf on the node's egress.
func (nd *Node) shape(ctx context.Context, op, rate string) error {
	return nd.run(ctx, "tc", "qdisc", op, "dev", "eth0", "root", "tbf", "rate", rate, "burst", nd.net.cfg.Burst, "latency", nd.net.cfg.Latency)
}

// SetRate reshapes a shaped node's egress to rate (a slow link, or the
// network's rate again).
func (nd *Node) SetRate(ctx context.Context, rate string) error {
	if !tcValue.MatchString(rate) {
		return fmt.Errorf("netns: rate %q: want a number and a unit, e.g. 20mbit", rate)
	}
	return nd.shape(ctx, "change", rate)
}

// Nodes returns the nodes in the order they were added.
func (n *Net) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Node(nil), n.nodes...)
}

// Close kills any process still inside the network's namespaces (a
// namespace lives on while one does), then removes the namespaces and
// with them the links and the bridge. Later calls do nothing.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return removeNamespaces(ctx, n.prefix)
}

// Addr is host:port of the node's address.
func (nd *Node) Addr(port int) string {
	return net.JoinHostPort(nd.IP.String(), fmt.Sprint(port))
}

// Command returns a command that runs name inside the node (ip netns
// exec); it ends with ctx like exec.CommandContext.
func (nd *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nd.NS, name}, args...)...)
	// ip netns exec replaces itself with the command, which dies with the
	// process that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// SetLink cuts the node's link (up false: the bridge's end goes down, as
// a pulled cable or a dead switch port) or restores it.
func (nd *Node) SetLink(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip(ctx, "-n", nd.net.bridge, "link", "set", nd.veth, state)
}

// run runs a command inside the node.
func (nd *Node) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nd.NS, name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns: %s %s in %s: %w: %s", name, strings.Join(args, " "), nd.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ip runs ip with args.
func ip(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// commandOutput runs name with args and returns its standard output.
func commandOutput(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("netns: %s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}
