package admit

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/credentials"
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("admit: invalid config")

// Defaults used by Config.EnsureDefaults.
const (
	// DefaultTimeout bounds how long a connection may stay
	// unauthenticated. A member sends its key in its first message, right
	// after connecting; three seconds leave room for a loaded machine and
	// still free a stranger's slot quickly.
	DefaultTimeout = 3 * time.Second
	// DefaultMaxPending bounds unauthenticated connections in all: far
	// above what members open at once (a handful around a membership
	// change), small enough that what strangers hold stays a few MB.
	DefaultMaxPending = 64
	// DefaultMaxPendingPerSource bounds unauthenticated connections from
	// one address: a host runs a few members at most, each opening one
	// connection at a time to a given server.
	DefaultMaxPendingPerSource = 8
	// DefaultMaxConcurrentStreams is the per-connection stream limit of
	// ServerOptions: the HTTP/2 recommended minimum, far above what a
	// cluster client runs at once.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxHeaderBytes caps the header list of one request in
	// ServerOptions (gRPC's own default is 16 MiB): cluster metadata is a
	// token and a few ids.
	DefaultMaxHeaderBytes = 64 << 10
)

// Config bounds a Listener's unauthenticated connections. The zero value
// means every default.
type Config struct {
	// Timeout is how long after being accepted a connection may stay
	// unauthenticated before it is closed (default DefaultTimeout).
	Timeout time.Duration
	// MaxPending bounds unauthenticated connections in all (default
	// DefaultMaxPending); when full, the oldest is closed to make room.
	MaxPending int
	// MaxPendingPerSource bounds unauthenticated connections from one
	// source address (default DefaultMaxPendingPerSource); when a source
	// is at the limit, its oldest is closed to make room. Connections
	// whose remote address is not an IP (in-memory listeners) are only
	// subject to MaxPending.
	MaxPendingPerSource int
	// MaxConcurrentStreams is the per-connection stream limit that
	// ServerOptions sets (default DefaultMaxConcurrentStreams).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes is the request header limit that ServerOptions sets
	// (default DefaultMaxHeaderBytes).
	MaxHeaderBytes uint32
	// Credentials are the gRPC transport credentials ServerOptions wraps
	// (default insecure.NewCredentials()).
	Credentials credentials.TransportCredentials
	// OnClose, if set, is called each time the Listener closes a pending
	// connection (evicted, refused or timed out), without locks held; it
	// must not block. Stats has the same counts.
	OnClose func(Reason)
}

// EnsureDefaults fills zero fields with their documented defaults.
func (c *Config) EnsureDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerSource == 0 {
		c.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
}

// Validate reports the first problem with c, after defaults are applied
// to a copy; the error wraps ErrInvalidConfig.
func (c *Config) Validate() error {
	d := *c
	d.EnsureDefaults()
	switch {
	case d.Timeout < 0:
		return fmt.Errorf("%w: negative timeout %v", ErrInvalidConfig, d.Timeout)
	case d.MaxPending < 1:
		return fmt.Errorf("%w: max pending %d < 1", ErrInvalidConfig, d.MaxPending)
	case d.MaxPendingPerSource < 1:
		return fmt.Errorf("%w: max pending per source %d < 1", ErrInvalidConfig, d.MaxPendingPerSource)
	case d.MaxHeaderBytes < 1<<10:
		return fmt.Errorf("%w: max header bytes %d below 1 KiB", ErrInvalidConfig, d.MaxHeaderBytes)
	}
	return nil
}

// Reason says why a Listener closed a pending connection.
type Reason int

// Reasons passed to Config.OnClose.
const (
	// Evicted: the pending set (or the source's share of it) was full and
	// this was the oldest connection; a newer one took its place.
	Evicted Reason = iota + 1
	// Refused: the pending set was full of connections from preferred
	// sources and this new one was not from one.
	Refused
	// TimedOut: not authenticated within Config.Timeout.
	TimedOut
)

func (r Reason) String() string {
	switch r {
	case Evicted:
		return "evicted"
	case Refused:
		return "refused"
	case TimedOut:
		return "timeout"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}
