package allreduce

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/pkg/allreduce/ringpb"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// grpcNodes starts n loopback transports, closed at cleanup.
func grpcNodes(t testing.TB, n int, m *Metrics) ([]*GRPCTransport, []Member) {
	t.Helper()
	trs := make([]*GRPCTransport, n)
	ms := make([]Member, n)
	for i := range trs {
		tr, err := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		trs[i] = tr
		ms[i] = Member{ID: members(n, "")[i].ID, Addr: tr.Addr()}
	}
	return trs, ms
}

func TestGRPCAllReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 2, 3, 5} {
		trs, ms := grpcNodes(t, n, nil)
		rings := formRing(t, ms, 1, func(c *Config) { c.SegmentBytes = 4096 }, func(i int) Transport { return trs[i] })
		for _, l := range []int{0, 1, n + 1, 999, 20000} {
			for _, comp := range []Compression{None, BF16} {
				bufs, sum := randomInputs(rng, n, l)
				_, errs := runAll(testCtx(t, 20*time.Second), rings, bufs, func(int) Options { return Options{Compression: comp} })
				for r, err := range errs {
					if err != nil {
						t.Fatalf("N=%d len=%d rank %d: %v", n, l, r, err)
					}
				}
				tol := 1e-5
				if comp == BF16 {
					tol = float64(n+1) * math.Ldexp(1, -8) * 4
				}
				checkResult(t, bufs, sum, func(i int) float64 { return tol * float64(n) * (1 + math.Abs(sum[i])) })
			}
		}
	}
}

// A worker keeps its transport while rings come and go: after a member
// dies, the survivors form a new generation with a new member list.
func TestGRPCNewGenerationAfterPeerDeath(t *testing.T) {
	trs, ms := grpcNodes(t, 4, nil)
	checkNewGenerationAfterPeerDeath(t, asTransports(trs), ms, 5000)
}

func TestGRPCRejectsWrongSecret(t *testing.T) {
	m := NewMetrics()
	trs, ms := grpcNodes(t, 1, m)
	bad, err := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", Secret: []byte("not-the-cluster-secret")})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	h := LinkHello{Generation: 1, From: Member{ID: "intruder", Addr: bad.Addr()}, To: ms[0]}
	_, err = bad.Dial(testCtx(t, 5*time.Second), h)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("dial with wrong secret: %v, want ErrUnauthenticated", err)
	}
	if got := m.Snapshot().RejectedUnauthenticated; got != 1 {
		t.Fatalf("rejected counter = %d, want 1", got)
	}
	// A raw client without any token gets codes.Unauthenticated too.
	cc, err := grpc.NewClient(ms[0].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := metadata.AppendToOutgoingContext(testCtx(t, 5*time.Second), mdGeneration, "1", mdFrom, "x", mdTo, "w0", mdToken, "00")
	s, err := ringpb.NewRingClient(cc).Link(ctx)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("raw stream: %v, want Unauthenticated", err)
	}
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	if !strings.Contains(buf.String(), `allreduce_rejected_streams_total{reason="unauthenticated"} 2`) {
		t.Fatalf("metrics:\n%s", buf.String())
	}
	_ = trs
}

// bytesCodec sends raw bytes, to put arbitrary messages on a Link stream.
type bytesCodec struct{}

func (bytesCodec) Name() string { return "raw-bytes" }
func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (bytesCodec) Unmarshal(d mem.BufferSlice, v any) error {
	*v.(*[]byte) = d.Materialize()
	return nil
}

// A hostile left neighbour with a valid token sends what no Ring would:
// undecodable frames and messages above the size limit. The victim's call
// fails with ErrProtocol naming that neighbour; nothing hangs.
func TestGRPCGarbageAndOversizedFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff, 0x01, 0x02}},
		{"oversized", make([]byte, MaxFrameBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trs, ms := grpcNodes(t, 2, nil)
			ctx := testCtx(t, 10*time.Second)
			const gen = 1
			// The fake rank 0 accepts the victim's link on its transport...
			accepted := make(chan Conn, 1)
			go func() {
				c, err := trs[0].Accept(ctx, LinkHello{Generation: gen, From: ms[1], To: ms[0]})
				if err != nil {
					t.Error(err)
				}
				accepted <- c
			}()
			// ...and dials the victim with a raw stream.
			cc, err := grpc.NewClient(ms[1].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bytesCodec{}), grpc.MaxCallSendMsgSize(2*MaxFrameBytes)))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			sctx := metadata.NewOutgoingContext(ctx, helloMetadata(testSecret, LinkHello{Generation: gen, From: ms[0], To: ms[1]}))
			stream, err := cc.NewStream(sctx, &ringpb.Ring_ServiceDesc.Streams[0], ringpb.Ring_Link_FullMethodName, grpc.WaitForReady(true))
			if err != nil {
				t.Fatal(err)
			}
			var hello []byte
			if err := stream.RecvMsg(&hello); err != nil {
				t.Fatal(err)
			}
			victim, err := New(ctx, Config{Rank: 1, Members: ms, Generation: gen, Timeout: 2 * time.Second}, trs[1])
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Close()
			if c := <-accepted; c != nil {
				defer c.Close()
			}
			done := make(chan error, 1)
			go func() {
				_, err := victim.AllReduce(ctx, make([]float32, 1000), Options{})
				done <- err
			}()
			if err := stream.SendMsg(&tc.msg); err != nil {
				t.Fatal(err)
			}
			err = <-done
			var pe *PeerError
			if !errors.Is(err, ErrProtocol) || !errors.As(err, &pe) || pe.Rank != 0 || pe.Addr != ms[0].Addr {
				t.Fatalf("victim: %v, want ErrProtocol naming rank 0", err)
			}
		})
	}
}

// A rank that stays connected but never joins the call is named by every
// other rank within the timeout, over real gRPC.
func TestGRPCStragglerNamedByAll(t *testing.T) {
	trs, ms := grpcNodes(t, 4, nil)
	rings := formRing(t, ms, 1, func(c *Config) { c.Timeout = time.Second }, func(i int) Transport { return trs[i] })
	bufs, _ := randomInputs(rand.New(rand.NewPCG(5, 6)), 4, 100000)
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings[:3], bufs[:3], nil)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	for r, err := range errs {
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Rank != 3 || pe.Addr != ms[3].Addr || !errors.Is(err, ErrPeerNotReady) {
			t.Fatalf("rank %d: %v, want ErrPeerNotReady naming rank 3 (%s)", r, err, ms[3].Addr)
		}
	}
}
