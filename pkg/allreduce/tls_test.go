package allreduce

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
)

// tlsTransports returns n transports of kind ("tcp" or "grpc") secured by
// sec, and their members.
func tlsTransports(t *testing.T, kind string, secs []*cluster.Security) ([]Transport, []Member) {
	t.Helper()
	trs := make([]Transport, len(secs))
	ms := members(len(secs), "")
	for i, sec := range secs {
		var tr interface {
			Transport
			Addr() string
			Close() error
		}
		var err error
		if kind == "tcp" {
			cfg := TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret}
			if !sec.Insecure() {
				cfg.ServerHandshake, cfg.ClientHandshake = sec.HandshakeServer, sec.HandshakeClient
			}
			tr, err = NewTCPTransport(cfg)
		} else {
			tr, err = NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret,
				ServerCredentials: sec.ServerCredentials(), ClientCredentials: sec.ClientCredentials()})
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		trs[i], ms[i].Addr = tr, tr.Addr()
	}
	return trs, ms
}

func security(t *testing.T, key string, insecure bool) *cluster.Security {
	t.Helper()
	cfg := cluster.SecurityConfig{Secret: []byte(key), Name: "rank", Insecure: insecure}
	if insecure {
		cfg.Secret = nil
	}
	s, err := cluster.NewSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Over mutual TLS, both transports reduce exactly as in plaintext; a rank
// in plaintext, or with certificates of another cluster key, cannot link
// to a TLS rank, and the refusal is counted by reason on the rank it
// dialled.
func TestRingOverTLS(t *testing.T) {
	const key = "test-cluster-key-0123456789"
	for _, kind := range []string{"tcp", "grpc"} {
		t.Run(kind, func(t *testing.T) {
			secs := []*cluster.Security{security(t, key, false), security(t, key, false), security(t, key, false)}
			trs, ms := tlsTransports(t, kind, secs)
			rings := formRing(t, ms, 1, nil, func(i int) Transport { return trs[i] })
			rng := rand.New(rand.NewPCG(3, 4))
			bufs, sum := randomInputs(rng, 3, 50000)
			if _, errs := runAll(testCtx(t, 20*time.Second), rings, bufs, func(int) Options { return Options{} }); errors.Join(errs...) != nil {
				t.Fatal(errors.Join(errs...))
			}
			checkResult(t, bufs, sum, func(int) float64 { return 1e-4 })
			for _, r := range rings {
				r.Close()
			}

			for name, stranger := range map[string]*cluster.Security{
				"plaintext":   security(t, key, true),
				"another key": security(t, "another-cluster-key-987654321", false),
			} {
				before := total(secs[1].Refusals())
				st, sm := tlsTransports(t, kind, []*cluster.Security{stranger})
				pair := []Member{sm[0], {ID: ms[1].ID, Addr: ms[1].Addr}}
				ctx := testCtx(t, 5*time.Second)
				_, err := New(ctx, Config{Rank: 0, Members: pair, Generation: 7, Timeout: 2 * time.Second}, st[0])
				if err == nil {
					t.Fatalf("%s: a stranger formed a ring with a TLS rank", name)
				}
				deadline := time.Now().Add(time.Minute)
				for total(secs[1].Refusals()) == before {
					if time.Now().After(deadline) {
						t.Fatalf("%s: no refusal counted on the dialled rank (%v)", name, secs[1].Refusals())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

func total(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
