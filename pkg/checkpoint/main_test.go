package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

// helperEnv, when set to a store's path, makes the test binary act as a
// second process that tries to open that store (see TestLockOtherProcess).
const helperEnv = "RECUR_CHECKPOINT_LOCK_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		s, err := Open(path, Options{Timeout: 200 * time.Millisecond})
		if err == nil {
			s.Close()
			fmt.Println("opened")
			os.Exit(0)
		}
		fmt.Printf("locked=%v: %v\n", errors.Is(err, ErrLocked), err)
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// testCtx returns a context that ends with the test or after 30 seconds.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openTest opens a store in a fresh directory. At cleanup it checks the
// bbolt file's consistency (as bbolt's own tests do) and, unless the test
// damaged the store on purpose, that every checkpoint passes its checksum.
func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	opts.NoSync = true
	s, err := Open(t.TempDir()+"/ckpt.db", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.closed.Load() {
			return
		}
		checkFile(t, s.db)
		if _, ok := damagedOnPurpose.Load(s); !ok {
			checkSums(t, s)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// damagedOnPurpose holds the stores a test damaged, whose checkpoints need
// not all pass at cleanup.
var damagedOnPurpose sync.Map

func checkSums(t *testing.T, s *Store) {
	t.Helper()
	infos, err := s.List(context.Background())
	if err != nil {
		t.Error(err)
	}
	for _, in := range infos {
		if !in.OK {
			t.Errorf("cleanup: step %d: %v", in.Step, in.Err)
		}
	}
}

func checkFile(t *testing.T, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
