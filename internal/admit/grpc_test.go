package admit

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// http2Opening is what an HTTP/2 client sends first: the preface and an
// empty SETTINGS frame. A connection that sends it and nothing more holds
// a fully set-up gRPC server transport.
var http2Opening = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)

// keyCheck accepts RPCs whose metadata carries key=k.
func keyCheck(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("key"); len(v) == 1 && v[0] == "k" {
		return nil
	}
	return status.Error(codes.Unauthenticated, "no key")
}

// serveHealth serves the gRPC health service behind an admission
// Listener with cfg and keyCheck.
func serveHealth(t *testing.T, cfg Config) *Listener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(l.ServerOptions(), l.AuthOptions(keyCheck)...)...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return l
}

// waitClosed reads c until the server closes it (EOF or reset); false if
// that takes longer than wait.
func waitClosed(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		}
	}
}

// Clients with the key are admitted on their first RPC, unary or
// streaming, and keep their connection past the deadline; a connection
// that only speaks HTTP/2, or only makes keyless RPCs, is closed at the
// deadline.
func TestGRPCAdmission(t *testing.T) {
	const timeout = 200 * time.Millisecond
	l := serveHealth(t, Config{Timeout: timeout})
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	keyed := metadata.AppendToOutgoingContext(ctx, "key", "k")

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	if _, err := hc.Check(keyed, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout)
	if _, err := hc.Check(keyed, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("admitted connection after the deadline: %v", err)
	}
	if s := l.Stats(); s.Accepted != 1 || s.Admitted != 1 {
		t.Fatalf("stats %+v: the admitted connection was replaced", s)
	}

	// A streaming RPC admits its connection too.
	cs, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	w, err := healthpb.NewHealthClient(cs).Watch(keyed, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Admitted != 2 {
		t.Fatalf("stats %+v after a streaming RPC", s)
	}

	// Keyless RPCs are refused and admit nothing.
	ck, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, err := healthpb.NewHealthClient(ck).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("keyless RPC: %v", err)
	}
	ck.Close() // no reconnect: its connection's slot times out once

	// An HTTP/2 connection that never makes an RPC.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(http2Opening); err != nil {
		t.Fatal(err)
	}
	if !waitClosed(raw, 10*time.Second) {
		t.Fatal("idle HTTP/2 connection not closed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().TimedOut < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := l.Stats(); s.TimedOut != 2 || s.Admitted != 2 || s.Pending != 0 {
		t.Fatalf("stats %+v, want the keyless and the idle connection timed out", s)
	}
}

// Garbage instead of an HTTP/2 preface releases its slot at once.
func TestGRPCGarbageReleasesSlot(t *testing.T) {
	l := serveHealth(t, Config{Timeout: time.Hour})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if !waitClosed(c, 10*time.Second) {
		t.Fatal("garbage connection not closed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Pending != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := l.Stats(); s.Pending != 0 || s.Accepted != 1 {
		t.Fatalf("stats %+v", s)
	}
}
