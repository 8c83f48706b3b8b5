package admit

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ServerOptions returns the gRPC server options that make admission work
// and bound what an unauthenticated connection can do: transport
// credentials that tag each connection for AdmitContext (wrapping
// Config.Credentials), the HTTP/2 handshake bounded by Config.Timeout, at
// most Config.MaxConcurrentStreams streams per connection and request
// headers of at most Config.MaxHeaderBytes. Pass them to grpc.NewServer
// with no other grpc.Creds, and serve on l.
func (l *Listener) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(serverCreds{TransportCredentials: l.cfg.Credentials, l: l}),
		grpc.ConnectionTimeout(l.cfg.Timeout),
		grpc.MaxConcurrentStreams(l.cfg.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(l.cfg.MaxHeaderBytes),
	}
}

// AuthOptions returns interceptors that run check on every unary and
// streaming RPC, fail the RPC with check's error, and otherwise admit the
// RPC's connection before calling the handler. check is the server's key
// check (it should return a codes.Unauthenticated status). They are
// chained interceptors: they run after a grpc.UnaryInterceptor or
// grpc.StreamInterceptor the server also sets.
func (l *Listener) AuthOptions(check func(ctx context.Context) error) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			l.AdmitContext(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := check(ss.Context()); err != nil {
				return err
			}
			l.AdmitContext(ss.Context())
			return h(srv, ss)
		}),
	}
}

// AdmitContext admits the connection an RPC arrived on, given the RPC's
// context, once the server has verified the caller's key. It reports
// false when the connection is not one of l's served with ServerOptions,
// or was already closed by l.
func (l *Listener) AdmitContext(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	if !ok || ai.conn == nil {
		return false
	}
	return l.Admit(ai.conn)
}

// AuthInfo is the peer information ServerOptions' credentials give a
// connection accepted by a Listener: the wrapped credentials' own
// AuthInfo (reach it through the embedded field to inspect, say, TLS
// state), tagged with the connection.
type AuthInfo struct {
	credentials.AuthInfo
	conn *Conn
}

// GetCommonAuthInfo returns the wrapped AuthInfo's security level, for
// gRPC's security-level checks.
func (a AuthInfo) GetCommonAuthInfo() credentials.CommonAuthInfo {
	if c, ok := a.AuthInfo.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	}); ok {
		return c.GetCommonAuthInfo()
	}
	return credentials.CommonAuthInfo{}
}

// serverCreds wraps transport credentials: the handshake runs on the
// connection a Listener wrapped (so gRPC does its I/O on the original
// connection, a *net.TCPConn it reads without pinning a buffer per
// connection) and the resulting AuthInfo names the Listener's Conn.
type serverCreds struct {
	credentials.TransportCredentials
	l *Listener
}

func (s serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, ok := raw.(*Conn)
	if !ok || c.l != s.l {
		return s.TransportCredentials.ServerHandshake(raw)
	}
	conn, info, err := s.TransportCredentials.ServerHandshake(c.Conn)
	if err != nil {
		return nil, nil, err
	}
	return conn, AuthInfo{AuthInfo: info, conn: c}, nil
}

func (s serverCreds) Clone() credentials.TransportCredentials {
	return serverCreds{TransportCredentials: s.TransportCredentials.Clone(), l: s.l}
}
