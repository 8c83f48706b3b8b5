// Package admit bounds what a stranger can hold on a listening port: the
// connections that have not yet proven they know the cluster key.
//
// The rule it serves: anything reachable without the key is bounded in
// memory, time and connections. A Listener wraps a net.Listener; every
// connection it accepts is pending until the server marks it
// authenticated (Listener.Admit for a plain protocol, Listener.AdmitContext
// from a gRPC handler or interceptor). A pending connection
//
//   - is closed when it is still pending Config.Timeout after it was
//     accepted (default 3 s; a member authenticates within milliseconds);
//   - counts against Config.MaxPendingPerSource (default 8) for its source
//     (the IP address; an IPv6 /64 counts as one source): when a source is
//     at its limit, its own oldest pending connection is closed to make
//     room, so one address can only cycle through its own slots;
//   - counts against Config.MaxPending (default 64) in all: when full, the
//     oldest pending connection that is not from a preferred source is
//     closed to make room (a new connection from an ordinary source is
//     refused instead when every pending one is preferred).
//
// Evicting the oldest rather than refusing the newest is what lets a
// member through a flood: its connection authenticates within
// milliseconds of being accepted, so it would have to be followed by
// MaxPending (or, from its own address, MaxPendingPerSource) newer
// connections within those milliseconds to be evicted, and a member's
// dialer retries when that happens. Sources the server expects
// (SetPreferred: the ring transports name their neighbours' addresses) are
// never evicted by connections from other sources, so a flood from many
// addresses cannot starve them at all. Authenticated connections are no
// longer counted or limited: once a peer holds the key it is trusted.
//
// # gRPC servers
//
// gRPC does its own I/O on the accepted connection, so the Listener learns
// which connection an RPC arrived on through the server's transport
// credentials: ServerOptions wraps them (insecure by default) and tags
// each connection, and AdmitContext reads the tag from the peer in an RPC's
// context. ServerOptions also bounds the HTTP/2 handshake, concurrent
// streams and header size; AuthOptions runs the server's key check on
// every RPC and admits the connection when it passes:
//
//	lis, err := admit.NewListener(rawLis, admit.Config{})
//	srv := grpc.NewServer(append(lis.ServerOptions(), lis.AuthOptions(check)...)...)
//	go srv.Serve(lis)
//
// A gRPC client connects when it starts its first RPC, so it authenticates
// at once; a client that connects without an RPC (ClientConn.Connect) is
// dropped after Timeout and reconnects on its next RPC.
package admit
