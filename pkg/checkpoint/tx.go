package checkpoint

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// bbolt's panics and faults, which a damaged file or one truncated under
// an open Store cause, come back from view and update as a
// *FileDamagedError. Some leave bbolt's state or locks behind:
//
//   - Starting a transaction reads the meta pages while bbolt holds its
//     locks, and a fault there does not release them: the Store is wedged.
//     Ending a read transaction takes one of those locks again.
//   - A write transaction that faults may stop halfway through a change of
//     bbolt's state.
//
// Either breaks the Store: it refuses further use (usable). So that no
// goroutine waits for a lock that is never released, transactions start
// one at a time (txMu) and only on a Store that is not broken, read
// transactions open when a wedge comes are left, not ended, and Close does
// not wait for bbolt's locks but releases the file's lock and closes it,
// leaving the mapping (bbolt does not give it out). Write transactions
// run one at a time (writeMu). Before a transaction starts, the file's
// length is checked against its meta pages, so that a file truncated under
// the Store faults inside a transaction, which leaves nothing behind,
// rather than while one starts.
//
// Ending a read transaction cannot be kept from racing a wedge: bbolt
// needs it to end while another transaction starts, to remap a file a
// save grows. So a wedge can still hang a read that ends at that moment,
// and Close after it; it takes the file truncated to under two pages
// between the length check and bbolt's read of the meta pages.

// txState is the part of a Store that tracks its transactions.
type txState struct {
	txMu     sync.Mutex     // one transaction starts at a time
	wedged   atomic.Bool    // bbolt may hold its locks forever
	active   sync.WaitGroup // transactions begun and not ended
	writeMu  sync.Mutex     // one write transaction at a time
	pageSize int64
	broken   atomic.Pointer[FileDamagedError] // the fault that broke the Store
}

// beginTx starts a transaction, refusing on a closed or broken Store.
func (s *Store) beginTx(writable bool) (*bolt.Tx, error) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if err := s.checkLength(); err != nil {
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
	if err != nil {
		return nil, err
	}
	s.active.Add(1)
	return tx, nil
}

// skipLengthCheck lets a test start a transaction on a truncated file,
// to wedge a Store.
var skipLengthCheck bool

// checkLength fails when the file is shorter than its two meta pages,
// which starting a transaction reads.
func (s *Store) checkLength() error {
	if skipLengthCheck {
		return nil
	}
	fi, err := s.fd.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < 2*s.pageSize {
		return &FileDamagedError{Path: s.file, Err: fmt.Errorf(
			"the file is %d bytes, shorter than its two meta pages of %d: truncated under the store", fi.Size(), s.pageSize)}
	}
	return nil
}

// endRead ends a read transaction.
func (s *Store) endRead(tx *bolt.Tx) {
	defer s.active.Done()
	if s.wedged.Load() {
		return // ending it would wait for bbolt's lost lock
	}
	if err := guard(s.file, tx.Rollback); isFault(err) {
		s.wedged.Store(true)
		s.breakWith(err)
	}
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	tx, err := s.beginTx(false)
	if err != nil {
		return err
	}
	defer s.endRead(tx)
	return guard(s.file, func() error { return fn(tx) })
}

// update runs fn in a write transaction and commits it. A write
// transaction's rollback takes none of the locks a wedge keeps.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.beginTx(true)
	if err != nil {
		return err
	}
	defer s.active.Done()
	err = guard(s.file, func() error {
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if isFault(err) {
		_ = guard(s.file, tx.Rollback) // what is left, releasing the writer lock
		s.breakWith(err)
	}
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

// Close releases the file and its lock, once the transactions under way
// end. Later calls return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("checkpoint: close %s: %w", s.file, ErrClosed)
	}
	s.writeMu.Lock() // a write under way ends first
	defer s.writeMu.Unlock()
	s.txMu.Lock() // no transaction starts after this
	defer s.txMu.Unlock()
	if !s.wedged.Load() {
		s.active.Wait() // reads end, or are left when a wedge comes
	}
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
