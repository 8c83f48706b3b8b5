package allreduce

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers can branch with errors.Is; peer failures additionally come as a
// *PeerError naming the rank and address to blame.
var (
	// ErrInvalidConfig reports a Config that fails Validate.
	ErrInvalidConfig = errors.New("allreduce: invalid config")
	// ErrClosed reports use of a Ring (or transport) after Close.
	ErrClosed = errors.New("allreduce: closed")
	// ErrRingFailed is returned by every call after one call failed: a ring
	// whose members may disagree about a step is never reused; form a new
	// generation instead.
	ErrRingFailed = errors.New("allreduce: ring failed earlier, form a new generation")
	// ErrPeerTimeout reports a neighbour from which nothing (not even a
	// heartbeat) arrived within half the timeout: dead, hung or partitioned.
	ErrPeerTimeout = errors.New("allreduce: peer silent")
	// ErrPeerNotReady reports a neighbour that is alive but did not enter
	// the call within half the timeout (a straggler).
	ErrPeerNotReady = errors.New("allreduce: peer did not join the call")
	// ErrNoProgress reports a call in which no segment moved for a whole
	// timeout although every neighbour looked alive.
	ErrNoProgress = errors.New("allreduce: no progress")
	// ErrLinkBroken reports a stream to a neighbour that failed or closed.
	ErrLinkBroken = errors.New("allreduce: link broken")
	// ErrProtocol reports a frame that breaks the protocol: wrong length,
	// out-of-order slot, mismatched options, oversized or undecodable.
	ErrProtocol = errors.New("allreduce: protocol violation")
	// ErrAborted reports a failure detected by another rank and propagated
	// around the ring; the wrapped error names the class, the PeerError the
	// rank that rank blamed.
	ErrAborted = errors.New("allreduce: aborted by another rank")
	// ErrUnauthenticated reports a stream refused because its cluster token
	// did not verify (gRPC code Unauthenticated).
	ErrUnauthenticated = errors.New("allreduce: unauthenticated")
)

// errCode classifies failures on the wire (Frame.code of abort frames).
type errCode uint32

const (
	codeUnknown errCode = iota
	codeTimeout
	codeNotReady
	codeNoProgress
	codeLinkBroken
	codeProtocol
	codeCanceled
	codeClosed
)

var codeErrs = map[errCode]error{
	codeTimeout:    ErrPeerTimeout,
	codeNotReady:   ErrPeerNotReady,
	codeNoProgress: ErrNoProgress,
	codeLinkBroken: ErrLinkBroken,
	codeProtocol:   ErrProtocol,
	codeClosed:     ErrClosed,
}

// codeOf maps an error to its wire class.
func codeOf(err error) errCode {
	for c, e := range codeErrs {
		if errors.Is(err, e) {
			return c
		}
	}
	if errors.Is(err, errCanceled) {
		return codeCanceled
	}
	return codeUnknown
}

// errCanceled marks a call abandoned by its caller (context done).
var errCanceled = errors.New("allreduce: call canceled by a rank")

// errOfCode is the sentinel for a wire class (nil when unknown).
func errOfCode(c errCode) error {
	if c == codeCanceled {
		return errCanceled
	}
	return codeErrs[c]
}

// PeerError names the ring member held responsible for a failed operation.
type PeerError struct {
	Rank       int    // rank of the blamed peer, -1 if nobody in particular
	ID         string // member ID of the blamed peer
	Addr       string // address of the blamed peer
	Generation uint64 // ring generation
	Call       uint64 // call sequence number, 0 during ring formation
	Op         string // "dial", "accept", "send", "recv" or "abort"
	Err        error  // cause; wraps one of the sentinels
}

// Error implements error.
func (e *PeerError) Error() string {
	who := "no peer"
	if e.Rank >= 0 {
		who = fmt.Sprintf("peer rank %d (id %q, addr %s)", e.Rank, e.ID, e.Addr)
	}
	return fmt.Sprintf("allreduce: gen %d call %d: %s: %s: %v", e.Generation, e.Call, who, e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *PeerError) Unwrap() error { return e.Err }
