package cluster

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/internal/cluster/controlpb"
)

const chunkBytes = 1 << 20

// stateServer serves the Peer service from a function returning the
// encoded state of a step.
type stateServer struct {
	controlpb.UnimplementedPeerServer
	stateAt func(step int64) ([]byte, error)
}

// State streams the state of the requested step in chunks.
func (s *stateServer) State(req *controlpb.StateRequest, stream controlpb.Peer_StateServer) error {
	b, err := s.stateAt(req.Step)
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	for off := 0; ; off += chunkBytes {
		end := min(off+chunkBytes, len(b))
		if err := stream.Send(&controlpb.StateChunk{Step: req.Step, Data: b[off:end], Last: end == len(b)}); err != nil {
			return err
		}
		if end == len(b) {
			return nil
		}
	}
}

// fetchState downloads the state of step from the Peer service at addr.
func fetchState(ctx context.Context, addr string, secret []byte, step int64) ([]byte, error) {
	conn, err := grpc.NewClient(addr, dialOptions(secret)...)
	if err != nil {
		return nil, fmt.Errorf("state from %s: %w", addr, err)
	}
	defer conn.Close()
	stream, err := controlpb.NewPeerClient(conn).State(ctx, &controlpb.StateRequest{Step: step})
	if err != nil {
		return nil, fmt.Errorf("state from %s: %w", addr, err)
	}
	var b []byte
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			return nil, fmt.Errorf("state from %s: stream ended before the last chunk", addr)
		}
		if err != nil {
			return nil, fmt.Errorf("state of step %d from %s: %w", step, addr, err)
		}
		b = append(b, c.Data...)
		if c.Last {
			return b, nil
		}
	}
}
