package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"sync/atomic"
	"time"

	"github.com/recur-ml/recur/internal/admit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Every control and peer RPC carries a token derived from the cluster key
// (HMAC-SHA256 of a fixed label), checked in constant time. Without the key
// a process cannot join, read state or report steps. The ring links have
// their own check (pkg/allreduce); memberlist encrypts gossip with a key
// derived from the same secret.

const tokenKey = "recur-token"

// deriveKey derives a 32-byte key for one purpose from the cluster secret,
// so the control token, the ring key and the gossip key are independent.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// RingKey derives the allreduce transport's key from the cluster secret
// (nil for an empty secret).
func RingKey(secret []byte) []byte {
	if len(secret) == 0 {
		return nil
	}
	return deriveKey(secret, "recur ring v1")
}

func clusterToken(secret []byte) string {
	return hex.EncodeToString(deriveKey(secret, "recur control v1"))
}

// gossipKey derives memberlist's AES-256 key from the cluster secret.
func gossipKey(secret []byte) []byte { return deriveKey(secret, "recur gossip v1") }

// Authenticator checks the token of every RPC a server receives and
// counts refusals.
type Authenticator struct {
	token    string
	rejected atomic.Int64
}

// NewAuthenticator checks tokens derived from secret; an empty secret
// lets every RPC through.
func NewAuthenticator(secret []byte) *Authenticator {
	if len(secret) == 0 {
		return &Authenticator{}
	}
	return &Authenticator{token: clusterToken(secret)}
}

// Rejected is the number of RPCs refused for a missing or wrong key.
func (a *Authenticator) Rejected() int64 { return a.rejected.Load() }

// Check accepts an RPC whose metadata carries the cluster token.
func (a *Authenticator) Check(ctx context.Context) error {
	if a.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, t := range md.Get(tokenKey) {
		if hmac.Equal([]byte(t), []byte(a.token)) {
			return nil
		}
	}
	a.rejected.Add(1)
	return status.Error(codes.Unauthenticated, "recur: missing or wrong cluster key")
}

// Admit wraps lis in the admission a stranger cannot exhaust
// (internal/admit: a short deadline to authenticate, bounded pending
// connections per source and in all) and returns it with the options of a
// gRPC server that serves on it: sec's transport security, every RPC's
// token checked, the connection admitted by its first good RPC.
func (a *Authenticator) Admit(lis net.Listener, sec *Security) (*admit.Listener, []grpc.ServerOption, error) {
	adm, err := admit.NewListener(lis, admit.Config{Credentials: sec.ServerCredentials()})
	if err != nil {
		return nil, nil, err
	}
	opts := append(adm.ServerOptions(), adm.AuthOptions(a.Check)...)
	return adm, append(opts, grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20)), nil
}

// tokenCreds attaches the cluster token to every RPC.
type tokenCreds struct{ token string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if t.token == "" {
		return nil, nil
	}
	return map[string]string{tokenKey: t.token}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

// Dialer opens a connection to addr (host:port) for the control and
// state-transfer services; nil means TCP. Tests pass an in-memory one.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// NewClient connects to addr with sec's credentials, through dial when
// set (the address then goes to it as it is, not to a name resolver).
func NewClient(addr string, sec *Security, dial Dialer) (*grpc.ClientConn, error) {
	if dial != nil {
		addr = "passthrough:///" + addr
	}
	return grpc.NewClient(addr, DialOptions(sec, dial)...)
}

// DialOptions are the options of a client with sec's transport security
// and token, dialling through dial when set.
func DialOptions(sec *Security, dial Dialer) []grpc.DialOption {
	opts := dialOptionsBase(sec.token)
	opts = append(opts, grpc.WithTransportCredentials(sec.ClientCredentials()))
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
	}
	return opts
}

func dialOptionsBase(tok string) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithPerRPCCredentials(tokenCreds{token: tok}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		// Reconnect within a second of a restarted peer coming back (gRPC's
		// default backoff grows to two minutes).
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}}),
	}
}

// ProtocolVersion is checked when a worker joins: a worker of another
// version is refused with the reason.
const ProtocolVersion = "recur/1"
