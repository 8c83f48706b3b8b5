package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/pkg/checkpoint"
)

// ownStore is the checkpoint file the coordinator opens itself (when
// CoordinatorConfig.Store is nil). When a save finds the file deleted,
// replaced or damaged under it, it reopens the store, which restores the
// newest backup (pkg/checkpoint keeps one after every save), and saves
// again: nothing saved is lost, and the operator is told.
type ownStore struct {
	path      string
	log       *zap.Logger
	recovered func(*checkpoint.Recovery) // told of every restore from the backup

	mu sync.RWMutex
	s  *checkpoint.Store
}

func openOwnStore(path string, log *zap.Logger, recovered func(*checkpoint.Recovery)) (*ownStore, error) {
	o := &ownStore{path: path, log: log, recovered: recovered}
	s, err := o.open()
	if err != nil {
		return nil, err
	}
	o.s = s
	return o, nil
}

func (o *ownStore) open() (*checkpoint.Store, error) {
	s, err := checkpoint.Open(o.path, checkpoint.Options{})
	if err != nil {
		return nil, err
	}
	if rec := s.Recovery(); rec != nil {
		o.log.Warn("checkpoint store recovered from its backup", zap.String("what", rec.String()))
		o.recovered(rec)
	}
	return s, nil
}

func (o *ownStore) cur() *checkpoint.Store {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.s
}

// Save saves c; a store file gone or damaged under the coordinator is
// reopened (from its backup) and the save tried once more.
func (o *ownStore) Save(ctx context.Context, c *checkpoint.Checkpoint) error {
	s := o.cur()
	err := s.Save(ctx, c)
	if err == nil {
		if b := s.LastBackup(); b.Err != nil {
			o.log.Warn("checkpoint backup failed (the checkpoint itself is saved)", zap.Uint64("step", c.Step), zap.Error(b.Err))
		}
		return nil
	}
	if !errors.Is(err, checkpoint.ErrFileGone) && !errors.Is(err, checkpoint.ErrDamaged) {
		return err
	}
	o.log.Warn("the checkpoint store file is gone or damaged: reopening it from its backup", zap.String("path", o.path), zap.Error(err))
	if rerr := o.reopen(s); rerr != nil {
		return fmt.Errorf("%w; reopening %s: %w", err, o.path, rerr)
	}
	return o.cur().Save(ctx, c)
}

// reopen replaces old (unless another save already did) with a fresh open.
func (o *ownStore) reopen(old *checkpoint.Store) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s != old {
		return nil
	}
	old.Close()
	s, err := o.open()
	if err != nil {
		return err
	}
	o.s = s
	return nil
}

func (o *ownStore) Latest(ctx context.Context) (*checkpoint.Checkpoint, checkpoint.Report, error) {
	return o.cur().Latest(ctx)
}

func (o *ownStore) Best(ctx context.Context) (*checkpoint.Checkpoint, checkpoint.Report, error) {
	return o.cur().Best(ctx)
}

func (o *ownStore) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.s.Close()
}
