package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket and key names of the store file, format version 1:
//
//	records  step (8 bytes, big-endian) -> record (see MarshalBinary)
//	sums     step -> CRC-32C (Castagnoli) of the record, 4 bytes big-endian
//	meta     "format" -> 1 byte, the store format version
var (
	bucketRecords = []byte("records")
	bucketSums    = []byte("sums")
	bucketMeta    = []byte("meta")
	keyFormat     = []byte("format")
)

const storeFormat = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Store keeps checkpoints in one bbolt file. Its methods are safe for
// concurrent use; bbolt serializes writers and lets readers run beside them.
type Store struct {
	path   string
	opts   Options
	db     *bolt.DB
	closed atomic.Bool
}

// Open opens the store at path, creating the file if needed. It fails with
// ErrLocked when another Store, in this process or another, holds the file
// for longer than opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	opts = opts.withDefaults()
	db, err := bolt.Open(path, opts.Mode, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync, ReadOnly: opts.ReadOnly})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("checkpoint: open %s: %w (waited %v): %w", path, ErrLocked, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	if opts.ReadOnly {
		err = db.View(checkBuckets)
	} else {
		err = db.Update(initBuckets)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	return &Store{path: path, opts: opts, db: db}, nil
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecords, bucketSums, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyFormat); {
	case v == nil:
		return meta.Put(keyFormat, []byte{storeFormat})
	case len(v) != 1 || v[0] != storeFormat:
		return fmt.Errorf("%w: store format %v, this build reads %d", ErrFormat, v, storeFormat)
	}
	return nil
}

// checkBuckets checks, read-only, what initBuckets would create.
func checkBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecords, bucketSums, bucketMeta} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: no %q bucket: not a checkpoint store", ErrFormat, name)
		}
	}
	if v := tx.Bucket(bucketMeta).Get(keyFormat); len(v) != 1 || v[0] != storeFormat {
		return fmt.Errorf("%w: store format %v, this build reads %d", ErrFormat, v, storeFormat)
	}
	return nil
}

// Path returns the store's file.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Later calls return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("checkpoint: close %s: %w", s.path, ErrClosed)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("checkpoint: close %s: %w", s.path, err)
	}
	return nil
}

// begin checks the store and ctx before a transaction.
func (s *Store) begin(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("checkpoint: %s %s: %w", op, s.path, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint: %s %s: %w", op, s.path, err)
	}
	return nil
}

func key(step uint64) []byte { return binary.BigEndian.AppendUint64(nil, step) }

func sum(record []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, crc32.Checksum(record, castagnoli))
}

// Save writes c, its checksum and the pruning of older checkpoints in one
// transaction. It replaces a checkpoint of the same step and deletes every
// checkpoint after c.Step (see the package doc). It keeps the Keep newest
// checkpoints and the best good one, by Options.BestMetric, and deletes the
// rest. If ctx is done before the commit, nothing is written. A zero
// c.WallTime is stored as the current time; c itself is not modified.
func (s *Store) Save(ctx context.Context, c *Checkpoint) error {
	if c == nil {
		return fmt.Errorf("checkpoint: save %s: %w: nil checkpoint", s.path, ErrInvalid)
	}
	if err := s.begin(ctx, "save"); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.path, c.Step, ErrReadOnly)
	}
	rec := *c
	if rec.WallTime.IsZero() {
		rec.WallTime = time.Now()
	}
	data, err := rec.MarshalBinary()
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.path, c.Step, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := s.write(tx, c.Step, data); err != nil {
			return err
		}
		return ctx.Err() // a done ctx rolls the transaction back
	})
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.path, c.Step, err)
	}
	return nil
}

// write puts the record of step, drops the abandoned timeline after it and
// prunes, all in tx.
func (s *Store) write(tx *bolt.Tx, step uint64, data []byte) error {
	records, sums := tx.Bucket(bucketRecords), tx.Bucket(bucketSums)
	steps := storedSteps(records)
	for _, st := range steps {
		if st > step {
			if err := deleteStep(tx, st); err != nil {
				return err
			}
		}
	}
	if err := records.Put(key(step), data); err != nil {
		return err
	}
	if err := sums.Put(key(step), sum(data)); err != nil {
		return err
	}
	return s.prune(tx)
}

// prune deletes every checkpoint but the Keep newest and the best.
func (s *Store) prune(tx *bolt.Tx) error {
	steps := storedSteps(tx.Bucket(bucketRecords))
	if len(steps) <= s.opts.Keep {
		return nil
	}
	best, ok, _ := s.best(tx)
	for _, st := range steps[:len(steps)-s.opts.Keep] {
		if ok && st == best.step {
			continue
		}
		if err := deleteStep(tx, st); err != nil {
			return err
		}
	}
	return nil
}

func deleteStep(tx *bolt.Tx, step uint64) error {
	if err := tx.Bucket(bucketRecords).Delete(key(step)); err != nil {
		return err
	}
	return tx.Bucket(bucketSums).Delete(key(step))
}

// storedSteps returns the steps of the records bucket in increasing order.
func storedSteps(records *bolt.Bucket) []uint64 {
	var steps []uint64
	c := records.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) == 8 {
			steps = append(steps, binary.BigEndian.Uint64(k))
		}
	}
	return steps
}
