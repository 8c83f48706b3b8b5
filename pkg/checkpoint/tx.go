package checkpoint

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bbolt's panics and faults, which a damaged file or one truncated under
// an open Store cause, come back from view and update as a
// *FileDamagedError. Some leave bbolt's state or locks behind:
//
//   - Starting a transaction reads the meta page while bbolt holds its
//     locks, and a fault there does not release them: the Store is wedged.
//   - A write transaction that faults may stop halfway through a change of
//     bbolt's state, and rolling it back may fault too, keeping bbolt's
//     writer lock: the Store is broken, or wedged.
//
// A broken Store refuses further use (begin), and Close does not wait for
// the locks of a wedged one: it releases the file's lock and closes it,
// and leaves the mapping, which bbolt does not give out. So that no goroutine waits on a lock that
// is never released, transactions start one at a time (txMu) and write
// transactions run one at a time (writeMu), and each checks the Store
// first. A read transaction that faults leaves nothing behind.

// beginTx starts a transaction, refusing on a broken Store.
func (s *Store) beginTx(writable bool) (*bolt.Tx, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	var tx *bolt.Tx
	err := guard(s.file, func() (err error) {
		tx, err = s.db.Begin(writable)
		return err
	})
	if isFault(err) {
		s.wedged.Store(true)
		s.breakWith(err)
	}
	return tx, err
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	tx, err := s.beginTx(false)
	if err != nil {
		return err
	}
	err = guard(s.file, func() error { return fn(tx) })
	if rerr := guard(s.file, tx.Rollback); isFault(rerr) {
		s.wedged.Store(true)
		s.breakWith(rerr)
	}
	return err
}

// update runs fn in a write transaction and commits it.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.beginTx(true)
	if err != nil {
		return err
	}
	err = guard(s.file, func() error {
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if !isFault(err) {
		return err
	}
	// Roll back what is left; that releases bbolt's writer lock unless
	// it faults too.
	if guard(s.file, func() error { _ = tx.Rollback(); return nil }) != nil {
		s.wedged.Store(true)
	}
	s.breakWith(err)
	return err
}

// breakWith marks the Store broken by the fault err.
func (s *Store) breakWith(err error) {
	var fe *FileDamagedError
	if errors.As(err, &fe) {
		s.broken.CompareAndSwap(nil, fe)
	}
}

// usable returns why the Store refuses use: it is closed or broken.
func (s *Store) usable() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if fe := s.broken.Load(); fe != nil {
		return fmt.Errorf("a transaction faulted on the damaged file; reopen the store: %w", fe)
	}
	return nil
}

// Close releases the file and its lock. Later calls return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("checkpoint: close %s: %w", s.file, ErrClosed)
	}
	s.writeMu.Lock() // a write under way ends first
	defer s.writeMu.Unlock()
	s.txMu.Lock() // and no transaction starts after this
	defer s.txMu.Unlock()
	var err error
	if s.wedged.Load() { // the mapping stays, until the process ends
		err = errors.Join(unlockFile(s.fd), s.fd.Close())
	} else {
		err = guard(s.file, s.db.Close)
	}
	if err != nil {
		return fmt.Errorf("checkpoint: close %s: %w", s.file, err)
	}
	return nil
}
