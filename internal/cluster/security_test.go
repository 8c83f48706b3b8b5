package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("test-cluster-key-0123456789")

func newSec(t *testing.T, cfg SecurityConfig) *Security {
	t.Helper()
	s, err := NewSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve accepts one connection on a fresh loopback listener and runs the
// server handshake of sec on it; the result arrives on the channel.
func serve(t *testing.T, sec *Security) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	out := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			out <- err
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tc, err := sec.HandshakeServer(ctx, c)
		if err == nil {
			// Echo one line: the connection carries data.
			buf := make([]byte, 5)
			if _, err = io.ReadFull(tc, buf); err == nil {
				_, err = tc.Write(buf)
			}
		}
		out <- err
	}()
	return l.Addr().String(), out
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	return err
}

// Two processes with the same cluster key authenticate each other with
// certificates they minted themselves; the connection is TLS 1.3 and
// carries data.
func TestSecuritySameKeyConnects(t *testing.T) {
	server := newSec(t, SecurityConfig{Secret: testKey, Name: "coordinator"})
	client := newSec(t, SecurityConfig{Secret: testKey, Name: "worker w1"})
	addr, done := serve(t, server)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := client.HandshakeClient(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	st := c.(*tls.Conn).ConnectionState()
	if st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "coordinator" {
		t.Fatalf("version %x, peer %q", st.Version, st.PeerCertificates[0].Subject.CommonName)
	}
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	if r := server.Refusals(); len(r) != 0 {
		t.Fatalf("refusals %v", r)
	}
}

// Each way a stranger can fail is refused, named and counted: another key
// (its certificate chains to another authority), no certificate, an
// expired one, plaintext, and a replayed recording of a good connection.
func TestSecurityRefusals(t *testing.T) {
	server := newSec(t, SecurityConfig{Secret: testKey, Name: "coordinator"})
	member := newSec(t, SecurityConfig{Secret: testKey, Name: "worker w1"})
	other := newSec(t, SecurityConfig{Secret: []byte("another-cluster-key-9876543"), Name: "stranger"})
	otherCert, err := other.Mint("stranger", time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := member.Mint("old worker", time.Now().Add(-48*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	skip := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, Certificates: certs, MinVersion: tls.VersionTLS13}
	}
	cases := []struct {
		name, reason string
		client       func(addr string) error
	}{
		{"another key", RefusedUnknownCA, func(addr string) error { return dialTLS(t, addr, skip(*otherCert)) }},
		{"no certificate", RefusedNoCertificate, func(addr string) error { return dialTLS(t, addr, skip()) }},
		{"expired certificate", RefusedExpired, func(addr string) error { return dialTLS(t, addr, skip(*expired)) }},
		{"plaintext", RefusedNotTLS, func(addr string) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			c.Write([]byte("POST /recur.Control/Join HTTP/1.1\r\n\r\n"))
			_, err = io.ReadAll(c)
			return err
		}},
	}
	for _, tc := range cases {
		addr, done := serve(t, server)
		tc.client(addr)
		err := <-done
		if err == nil || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: server says %v, want a refusal naming the peer and %q", tc.name, err, tc.reason)
		}
		if n := server.Refusals()[tc.reason]; n != 1 {
			t.Errorf("%s: %d refusals counted as %s (%v)", tc.name, n, tc.reason, server.Refusals())
		}
	}

	// The member's own view of a server of another key: a clear error.
	addr, done := serve(t, other)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = member.HandshakeClient(t.Context(), raw)
	raw.Close()
	<-done
	if err == nil || Classify(err) != RefusedUnknownCA {
		t.Errorf("a member dialling a server of another key: %v (%s), want unknown authority", err, Classify(err))
	}
}

// recorder keeps what a client sent.
type recorder struct {
	net.Conn
	mu   sync.Mutex
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.sent.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// A captured connection cannot be replayed: the bytes a member sent,
// handshake and data, sent again to the server, fail its handshake (TLS
// 1.3 derives fresh keys from both sides' randomness) and carry nothing.
func TestSecurityReplayIsRefused(t *testing.T) {
	server := newSec(t, SecurityConfig{Secret: testKey, Name: "coordinator"})
	member := newSec(t, SecurityConfig{Secret: testKey, Name: "worker w1"})
	addr, done := serve(t, server)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: raw}
	c, err := member.HandshakeClient(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("the recorded connection: %v", err)
	}

	addr, done = serve(t, server)
	replay, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	rec.mu.Lock()
	replay.Write(rec.sent.Bytes())
	rec.mu.Unlock()
	err = <-done
	if err == nil {
		t.Fatal("the replayed connection was accepted")
	}
	if Classify(err) == "" || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("replay: %v", err)
	}
}

// A minted certificate is replaced once half its validity has passed, and
// peers check validity on their own clock.
func TestSecurityRenewsItsCertificate(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newSec(t, SecurityConfig{Secret: testKey, Name: "w", Validity: time.Hour, Now: clock})
	first, _ := s.current()
	advance(20 * time.Minute)
	if again, _ := s.current(); again != first {
		t.Fatal("re-minted before half the validity passed")
	}
	advance(15 * time.Minute)
	second, _ := s.current()
	if second == first || !second.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatal("not re-minted after half the validity")
	}
	// A peer whose clock is two hours ahead finds the first one expired.
	peer := newSec(t, SecurityConfig{Secret: testKey, Name: "p", Now: func() time.Time { return clock().Add(2 * time.Hour) }})
	if err := peer.verify([]*x509.Certificate{first.Leaf}, x509.ExtKeyUsageClientAuth); err == nil || Classify(err) != RefusedExpired {
		t.Fatalf("an expired certificate: %v", err)
	}
}

// The organisation's certificates: a process with them and a process
// minting from the same CA's key accept each other; a partial or
// contradictory configuration is refused before anything starts.
func TestSecurityOrganisationPKI(t *testing.T) {
	ca := newSec(t, SecurityConfig{Secret: testKey, Name: "ca"})
	dir := t.TempDir()
	cert, key, caFile, err := ca.WritePEM(dir, "worker-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	org := newSec(t, SecurityConfig{CertFile: cert, KeyFile: key, CAFile: caFile})
	if !strings.Contains(org.Mode(), caFile) {
		t.Fatalf("mode %q does not name the CA file", org.Mode())
	}
	addr, done := serve(t, ca)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := org.HandshakeClient(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	io.ReadFull(c, make([]byte, 5))
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	for name, cfg := range map[string]SecurityConfig{
		"cert without key":  {Secret: testKey, CertFile: cert},
		"insecure and cert": {Insecure: true, CertFile: cert, KeyFile: key, CAFile: caFile},
		"short key":         {Secret: []byte("short")},
		"missing CA file":   {CertFile: cert, KeyFile: key, CAFile: dir + "/nope.crt"},
		"key is not a cert": {CertFile: key, KeyFile: key, CAFile: caFile},
	} {
		if _, err := NewSecurity(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Insecure is plaintext end to end.
func TestSecurityInsecure(t *testing.T) {
	s := newSec(t, SecurityConfig{Insecure: true})
	if s.ServerTLS() != nil || s.ClientTLS() != nil || !s.Insecure() || !strings.Contains(s.Mode(), "plaintext") {
		t.Fatal("insecure security configures TLS")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c, err := s.HandshakeClient(t.Context(), a)
	if err != nil || c != a {
		t.Fatalf("insecure handshake: %v", err)
	}
}

// A port probe (connect, hang up) is counted apart and not taken for an
// attack.
func TestSecurityProbeIsNotARefusal(t *testing.T) {
	server := newSec(t, SecurityConfig{Secret: testKey, Name: "coordinator"})
	addr, done := serve(t, server)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err == nil || Classify(err) != RefusedClosed {
		t.Fatalf("probe: %v", err)
	}
	if r := server.Refusals(); r[RefusedClosed] != 1 || len(r) != 1 {
		t.Fatalf("refusals %v", r)
	}
}

// A client handshake that fails for good carries RefusedMarker; one cut
// by the peer (a restarting server) does not, so the caller retries it.
func TestSecurityClientMarksPermanentRefusals(t *testing.T) {
	member := newSec(t, SecurityConfig{Secret: testKey, Name: "worker"})
	other := newSec(t, SecurityConfig{Secret: []byte("another-cluster-key-9876543"), Name: "coordinator"})
	addr, done := serve(t, other)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = member.ClientCredentials().ClientHandshake(t.Context(), ServerName, raw)
	raw.Close()
	<-done
	if err == nil || !strings.Contains(err.Error(), RefusedMarker) {
		t.Fatalf("another key: %v, want %s", err, RefusedMarker)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close() // a server killed mid-handshake
		}
	}()
	raw, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _, err = member.ClientCredentials().ClientHandshake(t.Context(), ServerName, raw)
	if err == nil || strings.Contains(err.Error(), RefusedMarker) {
		t.Fatalf("a cut connection: %v, want an error without %s", err, RefusedMarker)
	}
}
