package cluster

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Every connection between Recur processes (control, state transfer, both
// ring transports) is mutual TLS 1.3 by default:
//
//   - With only the cluster key, each process derives the same certificate
//     authority from the key (an Ed25519 key from HKDF-SHA256 of the key),
//     and mints its own short-lived certificate signed by it at start. A
//     peer is admitted when its certificate chains to that authority: only
//     holders of the key can mint one, the key never travels, and TLS 1.3's
//     fresh handshake keys make a captured connection useless to replay.
//   - With the organisation's own PKI (SecurityConfig.CertFile, KeyFile,
//     CAFile), the same with its certificates. Host names are not checked
//     (workers move between hosts and advertise IPs): a peer is admitted
//     when its certificate chains to the CA and is valid now.
//   - Insecure is plaintext, only by explicit choice.
//
// The cluster key's bearer token still travels in every RPC's metadata
// (inside TLS), so a certificate from the organisation's CA alone does not
// make a process a member of this cluster.

// ServerName is the name in every certificate Recur mints.
const ServerName = "recur.cluster"

// DefaultCertValidity is how long a minted certificate is valid; it is
// re-minted when half of that has passed.
const DefaultCertValidity = 24 * time.Hour

// SecurityConfig says how a process proves who it is and checks its peers.
type SecurityConfig struct {
	Secret []byte // the cluster key: the bearer token, and the derived CA unless CertFile is set
	Name   string // the minted certificate's common name (e.g. "worker w1")
	// CertFile, KeyFile and CAFile are the organisation's PEM files: this
	// process's certificate and key, and the CA its peers' certificates
	// must chain to. All three or none.
	CertFile, KeyFile, CAFile string
	// Insecure turns TLS off: plaintext, for a trusted network only.
	Insecure bool
	// Validity of a minted certificate; default DefaultCertValidity.
	Validity time.Duration
	// Now is the clock certificates are minted and checked by (nil:
	// time.Now); tests move it.
	Now func() time.Time
	// Log receives a Warn line for refused connections, at most one per
	// reason per second (nil: none).
	Log *zap.Logger
}

// Validate reports an incomplete or contradictory configuration.
func (c SecurityConfig) Validate() error {
	files := 0
	for _, f := range []string{c.CertFile, c.KeyFile, c.CAFile} {
		if f != "" {
			files++
		}
	}
	switch {
	case files != 0 && files != 3:
		return errors.New("security: --tls-cert, --tls-key and --tls-ca go together: give all three or none")
	case c.Insecure && files != 0:
		return errors.New("security: --insecure turns TLS off: it cannot go with --tls-cert, --tls-key, --tls-ca")
	case !c.Insecure && files == 0 && len(c.Secret) < 16:
		return fmt.Errorf("security: the cluster key has %d bytes, need at least 16 (recur keygen)", len(c.Secret))
	case c.Validity < 0:
		return fmt.Errorf("security: certificate validity %v is negative", c.Validity)
	}
	return nil
}

// Security is a process's identity on the wire: TLS credentials for its
// servers and clients, and the bearer token of the cluster key. It counts
// the connections it refuses, by reason.
type Security struct {
	cfg      SecurityConfig
	token    string
	roots    *x509.CertPool // nil when insecure
	caKey    ed25519.PrivateKey
	caCert   *x509.Certificate
	mu       sync.Mutex
	leaf     *tls.Certificate // the current certificate (minted, or the organisation's)
	renewAt  time.Time        // when a minted one is replaced
	refusals sync.Map         // reason -> *atomic.Int64
	logged   sync.Map         // reason -> *atomic.Int64, UnixNano of the last Warn line
}

// NewSecurity builds the identity of a process.
func NewSecurity(cfg SecurityConfig) (*Security, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Validity == 0 {
		cfg.Validity = DefaultCertValidity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Security{cfg: cfg}
	if len(cfg.Secret) > 0 {
		s.token = clusterToken(cfg.Secret)
	}
	switch {
	case cfg.Insecure:
		return s, nil
	case cfg.CertFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("security: --tls-cert %s, --tls-key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("security: --tls-ca: %w", err)
		}
		s.roots = x509.NewCertPool()
		if !s.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("security: --tls-ca %s holds no PEM certificate", cfg.CAFile)
		}
		s.leaf = &cert
		if cert.Leaf != nil && cfg.Now().After(cert.Leaf.NotAfter) {
			return nil, fmt.Errorf("security: --tls-cert %s expired at %s", cfg.CertFile, cert.Leaf.NotAfter.Format(time.RFC3339))
		}
		return s, nil
	}
	var err error
	if s.caKey, s.caCert, err = derivedCA(cfg.Secret); err != nil {
		return nil, err
	}
	s.roots = x509.NewCertPool()
	s.roots.AddCert(s.caCert)
	if _, err := s.current(); err != nil {
		return nil, err
	}
	return s, nil
}

// derivedCA derives the cluster's certificate authority from the key: the
// same key gives every process the same authority key.
func derivedCA(secret []byte) (ed25519.PrivateKey, *x509.Certificate, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, "recur ca v1", ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("security: derive the CA: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	id := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "recur cluster CA " + hex.EncodeToString(id[:8])},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		SubjectKeyId:          id[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("security: derive the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// Mint returns a certificate for name signed by the derived authority,
// valid from notBefore for validity. It exists for tests of refusals
// (expired, not yet valid); processes mint their own through NewSecurity.
func (s *Security) Mint(name string, notBefore time.Time, validity time.Duration) (*tls.Certificate, error) {
	if s.caKey == nil {
		return nil, errors.New("security: no derived authority to mint with")
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: name},
		DNSNames:       []string{ServerName},
		NotBefore:      notBefore,
		NotAfter:       notBefore.Add(validity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		AuthorityKeyId: s.caCert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, key.Public(), s.caKey)
	if err != nil {
		return nil, fmt.Errorf("security: mint a certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

// current returns this process's certificate, minting a new one when half
// of the old one's validity has passed.
func (s *Security) current() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caKey == nil || (s.leaf != nil && s.cfg.Now().Before(s.renewAt)) {
		return s.leaf, nil
	}
	now := s.cfg.Now()
	// Backdated a little: a peer whose clock is behind still accepts it.
	leaf, err := s.Mint(s.cfg.Name, now.Add(-5*time.Minute), s.cfg.Validity+5*time.Minute)
	if err != nil {
		return nil, err
	}
	s.leaf, s.renewAt = leaf, now.Add(s.cfg.Validity/2)
	return leaf, nil
}

// Insecure reports whether TLS is off.
func (s *Security) Insecure() bool { return s.cfg.Insecure }

// Mode names the security in use, for the start-up log line.
func (s *Security) Mode() string {
	switch {
	case s.cfg.Insecure:
		return "plaintext (--insecure)"
	case s.caKey != nil:
		return "mutual TLS, certificates from the cluster key"
	}
	return "mutual TLS, certificates from " + s.cfg.CAFile
}

// verify checks a peer's certificate chain against the roots at the
// current time, for the given use.
func (s *Security) verify(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errNoCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: s.roots, Intermediates: inter, CurrentTime: s.cfg.Now(), KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

var errNoCertificate = errors.New("the peer presented no certificate")

// ServerTLS is the TLS configuration of a server (nil when insecure): it
// requires a client certificate that chains to the roots.
func (s *Security) ServerTLS() *tls.Config {
	if s.cfg.Insecure {
		return nil
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert, // verified below, on our clock
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.current() },
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
		},
	}
}

// ClientTLS is the TLS configuration of a client (nil when insecure): it
// presents this process's certificate and requires the server's to chain
// to the roots.
func (s *Security) ClientTLS() *tls.Config {
	if s.cfg.Insecure {
		return nil
	}
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		ServerName:           ServerName,
		InsecureSkipVerify:   true, // the chain is verified below, without host names
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return s.current() },
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		},
	}
}

// Refusal reasons counted by Refusals.
const (
	RefusedNotTLS        = "not_tls"                 // plaintext or garbage where a handshake was due
	RefusedNoCertificate = "no_certificate"          // the peer presented none
	RefusedUnknownCA     = "unknown_authority"       // signed by another key or CA
	RefusedExpired       = "expired_or_not_yet"      // outside its validity
	RefusedClosed        = "closed_before_handshake" // connected and hung up: a port probe (not logged)
	RefusedOther         = "handshake_failed"        // anything else (a replay, a cut connection)
	RefusedToken         = "wrong_or_missing_key"    // a valid connection whose RPC lacked the cluster token
)

// Classify names the reason of a failed handshake (one of the Refused
// constants).
func Classify(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, io.EOF):
		return RefusedClosed
	case errors.As(err, &rh):
		return RefusedNotTLS
	case errors.Is(err, errNoCertificate), strings.Contains(err.Error(), "certificate required"), strings.Contains(err.Error(), "didn't provide a certificate"):
		return RefusedNoCertificate
	case errors.As(err, &ua), strings.Contains(err.Error(), "unknown certificate authority"):
		return RefusedUnknownCA
	case errors.As(err, &ci) && ci.Reason == x509.Expired, strings.Contains(err.Error(), "expired certificate"):
		return RefusedExpired
	}
	return RefusedOther
}

// refused counts a refusal and returns an error naming the peer and why.
func (s *Security) refused(peer net.Addr, err error) error {
	reason := Classify(err)
	n, _ := s.refusals.LoadOrStore(reason, new(atomic.Int64))
	total := n.(*atomic.Int64).Add(1)
	who := "?"
	if peer != nil {
		who = peer.String()
	}
	if s.cfg.Log != nil && reason != RefusedClosed {
		last, _ := s.logged.LoadOrStore(reason, new(atomic.Int64))
		now, prev := time.Now().UnixNano(), last.(*atomic.Int64).Load()
		if now-prev >= int64(time.Second) && last.(*atomic.Int64).CompareAndSwap(prev, now) {
			s.cfg.Log.Warn("refused a connection", zap.String("peer", who), zap.String("reason", reason), zap.Int64("refused_so_far", total), zap.Error(err))
		}
	}
	return fmt.Errorf("refused %s (%s): %w", who, reason, err)
}

// Refusals returns the refused connections and RPCs by reason.
func (s *Security) Refusals() map[string]int64 {
	out := map[string]int64{}
	s.refusals.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// ServerCredentials are a gRPC server's transport credentials: mutual TLS
// that counts refusals, or plaintext when insecure.
func (s *Security) ServerCredentials() credentials.TransportCredentials {
	if s.cfg.Insecure {
		return insecure.NewCredentials()
	}
	return countingCreds{TransportCredentials: credentials.NewTLS(s.ServerTLS()), s: s}
}

// ClientCredentials are a gRPC client's transport credentials. A
// handshake that fails for a reason retrying cannot mend (the peer's
// certificate chains to another authority or has expired, it refused
// ours, it does not speak TLS) carries RefusedMarker in its error, which
// gRPC keeps in the status message; a cut connection does not.
func (s *Security) ClientCredentials() credentials.TransportCredentials {
	if s.cfg.Insecure {
		return insecure.NewCredentials()
	}
	return markingCreds{credentials.NewTLS(s.ClientTLS())}
}

// RefusedMarker starts the error of a client handshake that failed for
// good (see ClientCredentials and Permanent).
const RefusedMarker = "recur-tls-refused"

// Permanent reports whether a refusal reason cannot be mended by trying
// again.
func Permanent(reason string) bool {
	switch reason {
	case RefusedUnknownCA, RefusedExpired, RefusedNoCertificate, RefusedNotTLS:
		return true
	}
	return false
}

type markingCreds struct {
	credentials.TransportCredentials
}

func (c markingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		if reason := Classify(err); Permanent(reason) {
			return nil, nil, fmt.Errorf("%s (%s): %w", RefusedMarker, reason, err)
		}
		return nil, nil, err
	}
	return out, info, nil
}

func (c markingCreds) Clone() credentials.TransportCredentials {
	return markingCreds{c.TransportCredentials.Clone()}
}

// countingCreds counts and names the handshakes a server refuses.
type countingCreds struct {
	credentials.TransportCredentials
	s *Security
}

func (c countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		return nil, nil, c.s.refused(conn.RemoteAddr(), err)
	}
	return out, info, nil
}

func (c countingCreds) Clone() credentials.TransportCredentials {
	return countingCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}

// HandshakeServer runs the server side of a TLS handshake on conn within
// ctx (for transports that are not gRPC), counting a refusal.
func (s *Security) HandshakeServer(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if s.cfg.Insecure {
		return conn, nil
	}
	tc := tls.Server(conn, s.ServerTLS())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, s.refused(conn.RemoteAddr(), err)
	}
	return tc, nil
}

// HandshakeClient runs the client side of a TLS handshake on conn.
func (s *Security) HandshakeClient(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if s.cfg.Insecure {
		return conn, nil
	}
	tc := tls.Client(conn, s.ClientTLS())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", conn.RemoteAddr(), err)
	}
	return tc, nil
}

// WritePEM mints a certificate for name from the derived authority, valid
// from now for validity, and writes it, its key and the authority's
// certificate as PEM files in dir (name.crt, name.key, ca.crt): a small
// PKI for tests and demonstrations of SecurityConfig's files.
func (s *Security) WritePEM(dir, name string, validity time.Duration) (certFile, keyFile, caFile string, err error) {
	leaf, err := s.Mint(name, s.cfg.Now().Add(-time.Minute), validity)
	if err != nil {
		return "", "", "", err
	}
	key, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		return "", "", "", err
	}
	certFile, keyFile, caFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		path, kind string
		der        []byte
		mode       os.FileMode
	}{{certFile, "CERTIFICATE", leaf.Certificate[0], 0o644}, {keyFile, "PRIVATE KEY", key, 0o600}, {caFile, "CERTIFICATE", s.caCert.Raw, 0o644}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), f.mode); err != nil {
			return "", "", "", fmt.Errorf("security: %w", err)
		}
	}
	return certFile, keyFile, caFile, nil
}
