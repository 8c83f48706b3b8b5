// Package allreduce is Recur's data-parallel gradient exchange: a
// bandwidth-optimal ring allreduce of float32 buffers over long-lived links
// between ring neighbours (plain TCP connections or gRPC streams), built so that a failure anywhere makes every rank return an
// error naming the culprit instead of hanging.
//
// # Using it
//
// A worker process creates one transport for its lifetime and, for each
// ring generation it is part of, one Ring:
//
//	tr, _ := allreduce.NewTCPTransport(allreduce.TCPConfig{ListenAddr: ":7070", Secret: secret})
//	ring, err := allreduce.New(ctx, allreduce.Config{Rank: r, Members: members, Generation: gen}, tr)
//	res, err := ring.AllReduce(ctx, grads, allreduce.Options{Op: allreduce.Mean, Bad: !finite(grads)})
//	if err != nil { ring.Close(); /* re-form with gen+1 and the live members */ }
//	if res.AnyBad { /* every rank skips this step */ }
//
// Every rank ends a successful call with bit-identical buffers. Any error
// is terminal for that Ring (ErrRingFailed afterwards): ranks cannot agree
// on a step some of them may have completed, so the caller re-forms a new
// generation, typically after re-synchronising parameters.
//
// # Algorithm
//
// The pure schedule (schedule.go) cuts the buffer into N chunks and each
// chunk into segments. Reduce-scatter (N-1 steps) then allgather (N-1
// steps) moves one chunk per step around the ring, so each rank sends and
// receives 2(N-1)/N of the buffer: the bandwidth lower bound. Sending a
// segment depends only on receiving the same segment one step earlier, so
// segments stream through the ring back to back and every link stays busy.
// Sums are taken in float32 in a fixed order per chunk; the owner of each
// reduced chunk applies Mean and the wire rounding before the allgather
// copies it everywhere, which is why all ranks hold the same bytes.
//
// # Protocol
//
// Rank i dials rank i+1 once per generation: one bidirectional link. Two
// transports carry the same frames (the protobuf encoding of
// ringpb.Frame, ringpb/ring.proto): TCPTransport, one TCP connection per
// link with each frame preceded by its 4-byte length, and GRPCTransport,
// one gRPC stream (service recur.allreduce.v1.Ring, method Link). Data
// frames flow left to right: (generation, call, slot, flags, total
// length, payload), the payload raw little-endian float32, fp16 or bf16.
// The receiver applies a slot and answers with an ack on the same stream;
// acks are credits, a sender keeps at most Config.Window unacknowledged
// segments in flight, and a call ends on a rank when it has applied every
// slot from its left and has every ack from its right. Heartbeats flow both
// ways on every link and carry the highest call the sender has entered.
//
// Every frame carries the ring generation and frames of another generation
// are dropped (counted in Metrics); data of an earlier call is dropped;
// data of the next call waits until the local call starts; anything else
// out of order (slot, length, compression, kind) is a protocol violation.
//
// Failure detection, all bounded by Config.Timeout (default 5 s): a
// neighbour from which nothing arrived for Timeout/2 is blamed as silent
// (ErrPeerTimeout: dead, hung, partitioned); one whose heartbeats show it
// has not entered the call after Timeout/2 is blamed as a straggler
// (ErrPeerNotReady); a broken stream blames the neighbour at once
// (ErrLinkBroken); a call in which nothing moved for Timeout fails
// (ErrNoProgress); ctx ending fails the call too. The rank that detects a
// failure sends an abort frame (suspect rank, failure class, reason) both
// ways; every rank that receives one fails its call with a *PeerError
// naming the suspect (wrapping ErrAborted and the class) and forwards it
// once, so the abort crosses the ring in both directions even when one
// link is gone. Timeout must exceed the normal skew between ranks entering
// a call.
//
// Links are authenticated with a cluster secret: the dialer sends
// HMAC-SHA256(secret, generation, from ID, to ID), in its hello (TCP) or
// the stream metadata (gRPC); the accepting side compares it in constant
// time and refuses a bad token with a reason (a hello answer, or
// codes.Unauthenticated), counted in Metrics. A refused link fails New with
// ErrUnauthenticated. The token binds one generation and one directed
// link; it authenticates and does not encrypt.
//
// # Admission
//
// A stranger cannot stall the ring: what is reachable without the secret
// is bounded in connections, time and memory (internal/admit). An
// incoming connection is pending until it authenticates: its hello
// verifies (TCP) or it opens a Link stream whose token verifies (gRPC).
// Both transports bound pending connections alike (TCPConfig and
// GRPCConfig):
//
//   - HelloTimeout (default 3 s): a connection still pending then is
//     closed; a member authenticates within milliseconds of connecting.
//   - MaxPendingHellosPerSource (default 8): pending connections from one
//     IP address (an IPv6 /64); one more evicts that address's oldest.
//   - MaxPendingHellos (default 64): pending connections in all; one more
//     evicts the oldest, but never one from an expected neighbour's
//     address (the dialers of the links Accept waits for, when members
//     are addressed by IP) for one from another address.
//
// Evicting the oldest instead of refusing the newest means a flood only
// cycles through the slots: a member's connection would have to be
// followed by 64 newer ones (8 from its own address) in the milliseconds
// its hello takes, and a dialer whose hello goes unanswered (TCP: closed
// before the answer; gRPC: codes.Unavailable before the peer's hello)
// tries again until the join deadline. Authenticated links are not
// limited. The gRPC server also caps streams per connection (100) and
// request headers (64 KiB), and borrows its write buffer per flush (it
// only writes acks), so a stranger's connection holds goroutines and
// small structures, not megabytes of buffers; when the listener's
// connections are not *net.TCPConn, gRPC allocates a read buffer
// (ReadBufferBytes) per connection. Metrics counts the connections closed
// to make room (HellosEvicted) and at the deadline (HellosTimedOut). With
// 2,000 strangers' connections per port, a port holds 64 open and about
// 6 MB (gRPC); TestTCPFloodOfStrangers and TestGRPCFloodOfStrangers form,
// re-form and reduce through such a flood.
//
// # Performance
//
// TCPTransport sends each frame with one writev straight from the caller's
// buffer and receives it into the frame's reusable buffer: the kernel's
// copies are the only ones. gRPC cannot do that: its HTTP/2 DATA frames are
// fixed at 16 KiB, so it either copies every byte through its write and
// read buffers or makes a system call per 16 KiB; on loopback, where the
// ring is CPU-bound, gRPC costs about 1.7x the CPU per call and reaches
// about 0.65 of TCPTransport's bandwidth (BenchmarkRing, BenchmarkRingTCP).
// Workers use TCP unless told otherwise.
//
// The gRPC codec (codec.go) speaks ringpb.Frame's exact protobuf wire
// format but never marshals the payload: the header is encoded by hand and
// the payload goes to gRPC as a separate buffer. Uncompressed, that buffer
// is a view of the caller's own elements, not a copy: gRPC's writer reads
// it after SendMsg returns, so the ring tracks each view until gRPC
// releases it and only then lets a later receive overwrite those elements
// (sendhold.go); AllReduce returns once gRPC holds none. On receipt the
// payload is added into the caller's buffer straight from gRPC's receive
// buffers.
// HTTP/2 windows (GRPCConfig.WindowBytes) hold several segments. See
// BenchmarkRing and scripts/netns_bench.sh for measurements.
//
// # Testing
//
// MemNetwork is an in-memory Transport whose links can be cut, partitioned,
// slowed and filtered and which can inject forged frames; the fault tests
// use it to kill, partition and stall peers. The same Ring code runs over
// TCPTransport and GRPCTransport in their own tests (sizes, N = 1..8, dead
// peers, strangers, garbage and oversized frames, floods of connections
// without the secret).
package allreduce
