package checkpoint

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCheckBoltAcceptsBoltFiles runs random workloads on bbolt files, of
// several page sizes, with inline, nested and large buckets, small and
// overflowing values, deletes, and with and without a stored freelist,
// and checks that checkBolt accepts every file bbolt wrote: a false alarm
// would move a healthy store aside.
func TestCheckBoltAcceptsBoltFiles(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	depth := 0
	for run, ps := range []int{0, 1024, 4096, 16384, 0, 4096} {
		t.Run(fmt.Sprintf("page size %d", ps), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.db")
			opts := &bolt.Options{NoSync: true, PageSize: ps, NoFreelistSync: run >= 4}
			for range 5 {
				db, err := bolt.Open(path, 0o600, opts)
				if err != nil {
					t.Fatal(err)
				}
				for range 4 {
					if err := db.Update(func(tx *bolt.Tx) error { return randomOps(r, tx, 150) }); err != nil {
						t.Fatal(err)
					}
				}
				checkFile(t, db)
				_ = db.View(func(tx *bolt.Tx) error {
					return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
						depth = max(depth, b.Stats().Depth)
						return nil
					})
				})
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := f.Stat()
				err = checkBolt(f, fi.Size())
				f.Close()
				if err != nil {
					t.Fatalf("checkBolt rejects a file bbolt wrote: %v", err)
				}
			}
		})
	}
	if depth < 3 {
		t.Fatalf("the deepest bucket has %d levels: the workload does not reach branch pages under branch pages", depth)
	}
}

// randomOps applies n random puts, deletes and bucket changes in tx.
func randomOps(r *rand.Rand, tx *bolt.Tx, n int) error {
	for range n {
		b, err := tx.CreateBucketIfNotExists([]byte{'b', byte('0' + r.IntN(4))})
		if err != nil {
			return err
		}
		if r.IntN(3) == 0 { // one level down
			if b, err = b.CreateBucketIfNotExists([]byte{'n', byte('0' + r.IntN(3))}); err != nil {
				return err
			}
		}
		key := make([]byte, 1+r.IntN(24))
		for i := range key {
			key[i] = byte('a' + r.IntN(8))
		}
		switch k := r.IntN(20); {
		case k < 11:
			size := r.IntN(200)
			if k == 0 {
				size = 3000 + r.IntN(40_000) // overflow pages
			}
			if b.Bucket(key) == nil {
				if err := b.Put(key, make([]byte, size)); err != nil {
					return err
				}
			}
		case k < 18:
			c := b.Cursor()
			if k, _ := c.Seek(key); k != nil && b.Bucket(k) == nil {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		case k < 19:
			if b.Get(key) == nil {
				if _, err := b.CreateBucketIfNotExists(key); err != nil {
					return err
				}
			}
		default:
			if b.Bucket(key) != nil {
				if err := b.DeleteBucket(key); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
