package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"sync"
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
	path     string // the path Open was given
	file     string // the file read: path, or its backup for a reader that fell back
	opts     Options
	db       *bolt.DB
	fd       *os.File // bbolt's file, for CheckFile
	recovery *Recovery
	closed   atomic.Bool
	txState  // see tx.go

	saves    atomic.Int64 // successful saves, for Options.BackupEvery
	backupMu sync.Mutex   // one backup at a time
	stateMu  sync.Mutex
	last     BackupInfo // guarded by stateMu
}

// errNotStore reports a bbolt file without the buckets of a store: a
// damaged store, or another file. Open treats it as damage.
var errNotStore = fmt.Errorf("%w: not a checkpoint store", ErrFormat)

func initBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecords, bucketSums, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("%w: %q: %w", errNotStore, name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyFormat); v == nil {
		return meta.Put(keyFormat, []byte{storeFormat})
	}
	return checkFormat(meta.Get(keyFormat))
}

// checkBuckets checks, read-only, what initBuckets would create.
func checkBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecords, bucketSums, bucketMeta} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: no %q bucket", errNotStore, name)
		}
	}
	return checkFormat(tx.Bucket(bucketMeta).Get(keyFormat))
}

// checkFormat checks the store format version v. Another version is
// ErrFormat, not damage: a newer build's store is left alone.
func checkFormat(v []byte) error {
	switch {
	case len(v) != 1:
		return fmt.Errorf("%w: format entry of %d bytes", errNotStore, len(v))
	case v[0] != storeFormat:
		return fmt.Errorf("%w: store format %d, this build reads %d", ErrFormat, v[0], storeFormat)
	}
	return nil
}

// Path returns the path Open was given. The store reads another file,
// the backup, when Recovery says so and Recovery.Restored is false.
func (s *Store) Path() string { return s.path }

// Recovery returns how Open recovered the store from its backup, or nil
// when it used the store's own file as it was.
func (s *Store) Recovery() *Recovery { return s.recovery }

// begin checks the store and ctx before a transaction.
func (s *Store) begin(ctx context.Context, op string) error {
	if err := s.usable(); err != nil {
		return fmt.Errorf("checkpoint: %s %s: %w", op, s.file, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checkpoint: %s %s: %w", op, s.file, err)
	}
	return nil
}

// CheckFile returns nil when the store's path still names the file the
// Store has open, and an error wrapping ErrFileGone when that file was
// deleted, renamed away or replaced: what the Store writes then is lost
// when it closes, and the next Open does not see it. Save checks this
// itself; a caller may call it at any time to notice the loss early.
func (s *Store) CheckFile() error {
	if s.closed.Load() {
		return fmt.Errorf("checkpoint: check %s: %w", s.file, ErrClosed)
	}
	if err := s.checkFile(); err != nil {
		return fmt.Errorf("checkpoint: check %s: %w", s.file, err)
	}
	return nil
}

func (s *Store) checkFile() error {
	open, err := s.fd.Stat()
	if err != nil {
		return err
	}
	cur, err := os.Stat(s.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: the file was deleted or renamed", ErrFileGone)
	case err != nil:
		return err
	case !os.SameFile(open, cur):
		return fmt.Errorf("%w: the path names another file now", ErrFileGone)
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
//
// Save fails with ErrFileGone when the store's file is no longer at its
// path, before writing or after (see CheckFile): a checkpoint written
// into a deleted file is not saved. After every Options.BackupEvery
// successful saves it backs the store up (see Backup); a failed backup
// does not fail the save, and LastBackup reports it.
func (s *Store) Save(ctx context.Context, c *Checkpoint) error {
	if c == nil {
		return fmt.Errorf("checkpoint: save %s: %w: nil checkpoint", s.file, ErrInvalid)
	}
	if err := s.begin(ctx, "save"); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.file, c.Step, ErrReadOnly)
	}
	rec := *c
	if rec.WallTime.IsZero() {
		rec.WallTime = time.Now()
	}
	data, err := rec.MarshalBinary()
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.file, c.Step, err)
	}
	if err := s.checkFile(); err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.file, c.Step, err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		if err := s.write(tx, c.Step, data); err != nil {
			return err
		}
		return ctx.Err() // a done ctx rolls the transaction back
	})
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d: %w", s.file, c.Step, err)
	}
	if err := s.checkFile(); err != nil {
		return fmt.Errorf("checkpoint: save %s: step %d went to a file no longer at its path: %w", s.file, c.Step, err)
	}
	if n := s.saves.Add(1); !s.opts.NoBackup && n%int64(s.opts.BackupEvery) == 0 {
		_ = s.Backup(context.WithoutCancel(ctx)) // the save is done; LastBackup reports a failure
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
	best, ok, _ := s.findBest(tx)
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
