package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/internal/cluster/controlpb"
)

const chunkBytes = 1 << 20

// StateServer serves the Peer service from a function returning the
// encoded state of a step and the hash of the job it belongs to.
type StateServer struct {
	controlpb.UnimplementedPeerServer
	// StateAt returns the encoded state of step and its job's hash, read
	// together (the job may change between two calls).
	StateAt func(step int64) (job string, state []byte, err error)
}

// State streams the state of the requested step in chunks. A request from
// another job is refused, naming both.
func (s *StateServer) State(req *controlpb.StateRequest, stream controlpb.Peer_StateServer) error {
	job, b, err := s.StateAt(req.Step)
	if req.JobHash != "" && job != "" && req.JobHash != job {
		return status.Errorf(codes.FailedPrecondition, "%v: state of job %s requested, this process holds job %s", ErrOtherJob, req.JobHash, job)
	}
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	for off := 0; ; off += chunkBytes {
		end := min(off+chunkBytes, len(b))
		if err := stream.Send(&controlpb.StateChunk{Step: req.Step, Data: b[off:end], Last: end == len(b), JobHash: job}); err != nil {
			return err
		}
		if end == len(b) {
			return nil
		}
	}
}

// ErrOtherJob reports a state, worker or checkpoint of another job than
// this process's: it is never adopted.
var ErrOtherJob = errors.New("cluster: state of another job")

// FetchState downloads the state of step of job (its hash) from the Peer
// service at addr; a state of another job is refused.
func FetchState(ctx context.Context, dial Dialer, addr string, sec *Security, step int64, job string) ([]byte, error) {
	conn, err := NewClient(addr, sec, dial)
	if err != nil {
		return nil, fmt.Errorf("state from %s: %w", addr, err)
	}
	defer conn.Close()
	stream, err := controlpb.NewPeerClient(conn).State(ctx, &controlpb.StateRequest{Step: step, JobHash: job})
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
		if c.JobHash != "" && c.JobHash != job {
			return nil, fmt.Errorf("state from %s: %w: it belongs to job %s, this process trains job %s", addr, ErrOtherJob, c.JobHash, job)
		}
		b = append(b, c.Data...)
		if c.Last {
			return b, nil
		}
	}
}
