package worker

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/test/bufconn"

	"github.com/recur-ml/recur/pkg/allreduce"
)

type memRing struct{ *allreduce.MemTransport }

func (memRing) Close() error { return nil }

// A worker whose coordinator never answers gives up after JoinTimeout
// with ErrCoordinatorUnreachable (a supervisor may retry), naming what it
// waited for, and Close stops everything it started.
func TestWorkerCoordinatorUnreachable(t *testing.T) {
	ring := allreduce.NewMemNetwork()
	defer ring.Close()
	w, err := NewWorker(WorkerConfig{ID: "w0", Coordinator: "coordinator:7070", Secret: []byte("test-cluster-key-0123456789"),
		PeerListener: bufconn.Listen(1 << 16), RingTransport: memRing{ring.Node("w0:7071")},
		Dialer: func(ctx context.Context, addr string) (net.Conn, error) {
			return nil, errors.New("connection refused (injected)")
		},
		Retry: 10 * time.Millisecond, JoinTimeout: 300 * time.Millisecond, WarnEvery: 50 * time.Millisecond,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Run(t.Context())
	if !errors.Is(err, ErrCoordinatorUnreachable) || !strings.Contains(err.Error(), "coordinator:7070") {
		t.Fatalf("Run: %v, want ErrCoordinatorUnreachable naming the address", err)
	}
	if w.InGeneration() || w.Model() != nil {
		t.Fatal("a worker that never joined reports a generation or a model")
	}
	if _, _, ok := w.Job(); ok {
		t.Fatal("a worker that never joined holds a job")
	}
}

// Absurd configs are refused before anything starts.
func TestWorkerConfigValidate(t *testing.T) {
	key := []byte("test-cluster-key-0123456789")
	for name, cfg := range map[string]WorkerConfig{
		"no id":            {Coordinator: "c:1", Secret: key},
		"no coordinator":   {ID: "w", Secret: key},
		"short key":        {ID: "w", Coordinator: "c:1", Secret: []byte("short")},
		"negative timeout": {ID: "w", Coordinator: "c:1", Secret: key, JoinTimeout: -time.Second},
	} {
		if _, err := NewWorker(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
