package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Open opens the store at path, creating the file if needed. It fails with
// ErrLocked when another Store, in this process or another, holds the file
// for longer than opts.Timeout.
//
// Open checks the file's pages before bbolt maps it, so that a damaged or
// truncated file is an error wrapping ErrDamaged (a *FileDamagedError)
// rather than a panic or a crash. When the file cannot be used (it is
// damaged, missing, or holds no good checkpoint) and its backup,
// BackupPath(path), has a good checkpoint, Open uses the backup and says
// so in Store.Recovery: a writer moves a damaged file aside, to
// path.damaged-TIME, and copies the backup into its place; a reader reads
// the backup. Without a usable backup, a store that opens is returned as it
// is (empty, or with every checkpoint damaged, which reads report), and a
// damaged file is an error.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	opts = opts.withDefaults()
	if opts.ReadOnly {
		return openReader(path, opts)
	}
	return openWriter(path, opts)
}

// errLockTimeout is lockFile's failure to get the lock in time.
var errLockTimeout = errors.New("timed out waiting for the lock")

// lockRetry is how long lockFile sleeps between tries, as bbolt does.
const lockRetry = 50 * time.Millisecond

func openWriter(path string, opts Options) (*Store, error) {
	var rec *Recovery
	_, statErr := os.Lstat(path)
	missing := errors.Is(statErr, fs.ErrNotExist)
	for range 3 {
		s, judged, err := openFile(path, path, opts)
		if err != nil && !errors.Is(err, ErrDamaged) {
			return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
		}
		why, keep := err, true
		if err == nil {
			if why, keep = s.unusable(); why == nil {
				s.recovery = rec
				removeTemps(path)
				return s, nil
			}
			if missing && errors.Is(why, ErrNoCheckpoint) {
				why = fmt.Errorf("checkpoint: %s was missing: %w", path, fs.ErrNotExist)
			}
		}
		if rec != nil { // the copy of the backup does not do either
			closeQuietly(s)
			return nil, fmt.Errorf("checkpoint: open %s: restored from backup %s, and still: %w", path, rec.Backup, why)
		}
		b, step, berr := openBackup(path, opts)
		closeQuietly(b)
		if berr != nil {
			if s != nil && !isFault(why) {
				removeTemps(path)
				return s, nil // empty, or every checkpoint damaged: reads say so
			}
			closeQuietly(s)
			return nil, fmt.Errorf("%w; %w", why, berr)
		}
		closeQuietly(s)
		moved, err := restore(path, judged, b.file, keep, opts)
		if errors.Is(err, errChanged) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w; restoring from backup %s: %w", why, b.file, err)
		}
		rec = &Recovery{Reason: why, Backup: b.file, Step: step, Restored: true, MovedTo: moved}
	}
	return nil, fmt.Errorf("checkpoint: open %s: %w", path, errChanged)
}

func openReader(path string, opts Options) (*Store, error) {
	s, _, err := openFile(path, path, opts)
	if err != nil && !errors.Is(err, ErrDamaged) && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	why := err
	if err == nil {
		if why, _ = s.unusable(); why == nil {
			return s, nil
		}
	}
	b, step, berr := openBackup(path, opts)
	if berr == nil {
		closeQuietly(s)
		b.recovery = &Recovery{Reason: why, Backup: b.file, Step: step}
		return b, nil
	}
	if s != nil && !isFault(why) {
		return s, nil
	}
	closeQuietly(s)
	if errors.Is(why, fs.ErrNotExist) {
		why = fmt.Errorf("checkpoint: open %s: %w", path, why)
	}
	return nil, fmt.Errorf("%w; %w", why, berr)
}

// unusable says why a store just opened should give way to its backup: it
// holds no checkpoint, or none that is good (keep: the file has some to
// keep), or reading it faulted.
func (s *Store) unusable() (why error, keep bool) {
	_, _, err := s.probe()
	switch {
	case err == nil:
		return nil, false
	case errors.Is(err, ErrNoCheckpoint):
		return fmt.Errorf("checkpoint: %s: the file is new or empty: %w", s.file, ErrNoCheckpoint), false
	}
	return err, true
}

// openBackup opens the backup of the store at path read-only and returns
// it with the step of its newest good checkpoint; it fails, wrapping
// ErrNoBackup, when the backup is missing, damaged or has no good
// checkpoint.
func openBackup(path string, opts Options) (*Store, uint64, error) {
	bak := BackupPath(path)
	opts.ReadOnly = true
	b, _, err := openFile(path, bak, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("%w %s: %w", ErrNoBackup, bak, err)
	}
	step, _, err := b.probe()
	if err != nil {
		closeQuietly(b)
		return nil, 0, fmt.Errorf("%w %s: %w", ErrNoBackup, bak, err)
	}
	return b, step, nil
}

func closeQuietly(s *Store) {
	if s != nil {
		_ = s.Close()
	}
}

// openFile opens file, the store at path or its backup: it locks the
// file, checks its pages, maps it, and creates (writer) or checks (reader)
// the buckets. It returns the identity of the file it locked, also when
// that file turns out damaged.
func openFile(path, file string, opts Options) (*Store, os.FileInfo, error) {
	f, fi, err := openLocked(file, opts)
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() > 0 || opts.ReadOnly { // an empty file is a new store for a writer
		if err := checkBolt(f, fi.Size()); err != nil {
			f.Close()
			return nil, fi, &FileDamagedError{Path: file, Err: err}
		}
	}
	db, err := openBolt(f, file, opts)
	if err != nil {
		return nil, fi, err
	}
	s := &Store{path: path, file: file, opts: opts, db: db, fd: f}
	s.pageSize = int64(db.Info().PageSize)
	if opts.ReadOnly {
		err = s.view(checkBuckets)
	} else {
		err = s.update(initBuckets)
	}
	if errors.Is(err, errNotStore) {
		err = &FileDamagedError{Path: file, Err: err}
	}
	if err != nil {
		closeQuietly(s)
		return nil, fi, err
	}
	return s, fi, nil
}

// openLocked opens file, creating it for a writer, and locks it. The lock
// is taken on the file the path names once it is held: a writer that
// restores a store replaces its file while others wait for the lock.
func openLocked(file string, opts Options) (*os.File, os.FileInfo, error) {
	flag := os.O_RDWR | os.O_CREATE
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	deadline := time.Now().Add(opts.Timeout)
	for range 5 {
		f, err := os.OpenFile(file, flag, opts.Mode)
		if err != nil {
			return nil, nil, err
		}
		if err := lockFile(f, !opts.ReadOnly, time.Until(deadline)); err != nil {
			f.Close()
			if errors.Is(err, errLockTimeout) {
				return nil, nil, fmt.Errorf("%w (waited %v)", ErrLocked, opts.Timeout)
			}
			return nil, nil, fmt.Errorf("lock %s: %w", file, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if cur, err := os.Stat(file); err == nil && os.SameFile(fi, cur) {
			return f, fi, nil
		}
		f.Close()
	}
	return nil, nil, fmt.Errorf("%s keeps changing while Open waits for its lock", file)
}

// openBolt has bbolt open f, which openLocked opened and locked as file.
// bbolt takes the same lock on f again, at once.
func openBolt(f *os.File, file string, opts Options) (*bolt.DB, error) {
	var handed atomic.Bool
	bo := &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync, ReadOnly: opts.ReadOnly,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			if handed.CompareAndSwap(false, true) {
				return f, nil
			}
			return os.OpenFile(name, flag, mode)
		}}
	var db *bolt.DB
	err := guard(file, func() (err error) {
		db, err = bolt.Open(file, opts.Mode, bo)
		return err
	})
	if err == nil {
		return db, nil
	}
	f.Close() // bbolt closed it on an error, not on a panic
	switch {
	case isFault(err):
		return nil, err
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w (waited %v): %w", ErrLocked, opts.Timeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, &FileDamagedError{Path: file, Err: err}
	}
	return nil, err
}
