package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// sized returns a checkpoint of step whose parameters are n bytes that do
// not repeat, so that records span many pages.
func sized(step uint64, loss float64, n int) *Checkpoint {
	c := sample(step, loss)
	c.Params = make([]byte, n)
	r := rand.New(rand.NewPCG(step, 7))
	for i := range c.Params {
		c.Params[i] = byte(r.Uint32())
	}
	return c
}

// built is a closed store, with its backup, and what was saved into it.
type built struct {
	path  string
	saved map[uint64]*Checkpoint // every checkpoint saved, by step
	kept  []uint64               // the steps the store keeps, oldest first
}

// newest returns the newest checkpoint saved.
func (b built) newest() *Checkpoint { return b.saved[b.kept[len(b.kept)-1]] }

// build saves n checkpoints of params bytes each to a new store in dir
// and closes it. The last save leaves its backup beside it.
func build(t testing.TB, dir string, n, params int) built {
	t.Helper()
	b := built{path: filepath.Join(dir, "ckpt.db"), saved: map[uint64]*Checkpoint{}}
	s, err := Open(b.path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range n {
		c := sized(uint64(i+1)*10, float64(n-i), params)
		if err := s.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
		b.saved[c.Step] = c
	}
	if lb := s.LastBackup(); lb.Err != nil || lb.Step != uint64(n)*10 {
		t.Fatalf("backup after the last save: %+v", lb)
	}
	infos, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		b.kept = append(b.kept, in.Step)
	}
	return b
}

// copyStore copies the store b, with its backup unless noBackup, into
// dir and returns the copy's path.
func copyStore(t testing.TB, b built, dir string, noBackup bool) string {
	t.Helper()
	path := filepath.Join(dir, filepath.Base(b.path))
	copyFile(t, b.path, path)
	if !noBackup {
		copyFile(t, BackupPath(b.path), BackupPath(path))
	}
	return path
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// storeMeta returns the page size and the meta page bbolt uses of the
// store file at path.
func storeMeta(t *testing.T, path string) (int, boltMeta) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	ps, err := boltPageSize(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	m, err := pickMeta(f, ps, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return ps, m
}

// patch writes data at off of the file at path.
func patch(t testing.TB, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// truncate cuts the file at path to size bytes.
func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// wantRecovered checks that the store at path opens, as a writer and as
// a reader, from its backup, and that Latest returns the newest checkpoint
// of b. The writer must keep the damaged file when keep.
func wantRecovered(t *testing.T, b built, path string, keep bool) {
	t.Helper()
	ctx := testCtx(t)
	for _, ro := range []bool{true, false} {
		s, err := Open(path, Options{ReadOnly: ro, NoSync: true})
		if err != nil {
			t.Fatalf("read-only %v: %v", ro, err)
		}
		rec := s.Recovery()
		if rec == nil || rec.Restored == ro || rec.Step != b.newest().Step || rec.Reason == nil ||
			rec.Backup != BackupPath(path) {
			t.Fatalf("read-only %v: recovery %+v, want from %s, step %d", ro, rec, BackupPath(path), b.newest().Step)
		}
		if keep && !ro {
			if rec.MovedTo == "" || !strings.HasPrefix(rec.MovedTo, path+".damaged-") {
				t.Fatalf("damaged file moved to %q", rec.MovedTo)
			}
			if _, err := os.Stat(rec.MovedTo); err != nil {
				t.Fatalf("the damaged file is not kept: %v", err)
			}
		}
		t.Log(rec)
		got, rep, err := s.Latest(ctx)
		if err != nil || !reflect.DeepEqual(got, b.newest()) {
			t.Fatalf("read-only %v: Latest = %v, %v", ro, got, err)
		}
		if ro && rep.Recovery == nil {
			t.Fatal("a read from the backup does not say so")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The writer restored the file: it opens as it is now.
	s, err := Open(path, Options{NoSync: true})
	if err != nil || s.Recovery() != nil {
		t.Fatalf("after the restore: %v, recovery %v", err, s.Recovery())
	}
	s.Close()
}

// wantDamaged checks that, without a backup, the store at path fails to
// open, as a reader and as a writer, with an error wrapping ErrDamaged that
// names the file and contains want.
func wantDamaged(t *testing.T, path, want string) {
	t.Helper()
	for _, ro := range []bool{true, false} {
		s, err := Open(path, Options{ReadOnly: ro, NoSync: true})
		if err == nil {
			s.Close()
			t.Fatalf("read-only %v: a damaged store opened", ro)
		}
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Fatalf("read-only %v: %v\nwant ErrDamaged naming the file and %q", ro, err, want)
		}
	}
}

// TestDamagedFreelist damages the freelist page, which made bbolt panic
// ("invalid freelist page") when the coordinator or recur eval opened it.
func TestDamagedFreelist(t *testing.T) {
	b := build(t, t.TempDir(), 6, 3000)
	ps, m := storeMeta(t, b.path)
	if m.freelist == noFreelist {
		t.Fatal("the store has no freelist page")
	}
	for _, d := range []struct {
		name string
		off  int64 // in the freelist page
		data []byte
		want string
	}{
		{"page type", 8, []byte{leafFlag, 0}, "freelist page"},
		{"count", 10, []byte{0xfe, 0xff}, "lists 65534 pages"},
		{"page id", 0, []byte{0xff, 0xff}, "identifies itself"},
		{"listed page", pageHeaderSize, []byte{0xff, 0xff, 0xff, 0x7f}, "freelist page"},
	} {
		t.Run(d.name, func(t *testing.T) {
			path := copyStore(t, b, t.TempDir(), false)
			patch(t, path, int64(m.freelist)*int64(ps)+d.off, d.data)
			wantRecovered(t, b, path, true)

			path = copyStore(t, b, t.TempDir(), true)
			patch(t, path, int64(m.freelist)*int64(ps)+d.off, d.data)
			wantDamaged(t, path, d.want)
		})
	}
}

// TestBucketFlagCleared makes the records bucket's entry in the root
// page a plain value: the file's pages are sound, but it is no store.
func TestBucketFlagCleared(t *testing.T) {
	b := build(t, t.TempDir(), 3, 3000)
	ps, m := storeMeta(t, b.path)
	root := make([]byte, ps)
	f, err := os.Open(b.path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(root, int64(m.root)*int64(ps))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	off := int64(-1)
	for i := range int(ne.Uint16(root[10:])) {
		e := pageHeaderSize + i*elementSize
		pos, ksize := int(ne.Uint32(root[e+4:])), int(ne.Uint32(root[e+8:]))
		if string(root[e+pos:e+pos+ksize]) == string(bucketRecords) {
			off = int64(m.root)*int64(ps) + int64(e)
		}
	}
	if off < 0 {
		t.Fatal("no records entry in the root page")
	}
	path := copyStore(t, b, t.TempDir(), false)
	patch(t, path, off, []byte{0, 0, 0, 0})
	wantRecovered(t, b, path, true)

	path = copyStore(t, b, t.TempDir(), true)
	patch(t, path, off, []byte{0, 0, 0, 0})
	wantDamaged(t, path, "not a checkpoint store")
}

// TestTruncated cuts a store of several megabytes to 8 KB, 100 KB and
// 1 MB, which made bbolt fault (SIGBUS, SIGSEGV) reading past the end.
func TestTruncated(t *testing.T) {
	b := build(t, t.TempDir(), 5, 600_000)
	fi, err := os.Stat(b.path)
	if err != nil || fi.Size() <= 2<<20 {
		t.Fatalf("store of %v bytes, want more than 2 MB: %v", fi.Size(), err)
	}
	ps, m := storeMeta(t, b.path)
	inUse := int64(m.hwm) * int64(ps) // bbolt grows the file beyond it
	for _, size := range []int64{0, 8 << 10, 100 << 10, 1 << 20, inUse - 1} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			path := copyStore(t, b, t.TempDir(), false)
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			wantRecovered(t, b, path, size > 0)

			path = copyStore(t, b, t.TempDir(), true)
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			if size == 0 { // nothing is left: a writer starts an empty store
				s, err := Open(path, Options{NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Latest(testCtx(t)); !errors.Is(err, ErrNoCheckpoint) {
					t.Fatalf("Latest of an emptied store: %v", err)
				}
				s.Close()
				return
			}
			wantDamaged(t, path, "truncated")
		})
	}
}

// TestMissingFile opens a store whose file was deleted: the writer
// restores it from the backup, a reader reads the backup.
func TestMissingFile(t *testing.T) {
	b := build(t, t.TempDir(), 3, 2000)
	path := copyStore(t, b, t.TempDir(), false)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	wantRecovered(t, b, path, false)
	// Without the backup, a reader has nothing to read.
	os.Remove(path)
	os.Remove(BackupPath(path))
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNoBackup) {
		t.Fatalf("reader of a missing store without backup: %v", err)
	}
}

// TestFileDeletedUnderStore removes the file of an open store, as an
// operator's rm during training did: the next Save must fail, not write
// into the unlinked file, and a reopen restores the last save.
func TestFileDeletedUnderStore(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSave(t, s, sample(1, 2), sample(2, 1))
	if err := s.CheckFile(); err != nil {
		t.Fatalf("CheckFile of a healthy store: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(); !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), path) {
		t.Fatalf("CheckFile = %v, want ErrFileGone naming the file", err)
	}
	err = s.Save(ctx, sample(3, 0.5))
	if !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), "deleted") || !strings.Contains(err.Error(), "step 3") {
		t.Fatalf("Save into a deleted file = %v, want ErrFileGone", err)
	}
	if lb := s.LastBackup(); lb.Step != 2 {
		t.Fatalf("the failed save changed the backup: %+v", lb)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rec := s2.Recovery(); rec == nil || !rec.Restored || rec.Step != 2 || !errors.Is(rec.Reason, fs.ErrNotExist) {
		t.Fatalf("recovery %+v, want a restore of step 2", rec)
	}
	if got, _, err := s2.Latest(ctx); err != nil || got.Step != 2 {
		t.Fatalf("Latest after the restore = %v, %v", got, err)
	}
}

// TestFileReplacedUnderStore renames another file over the file of an
// open store.
func TestFileReplacedUnderStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSave(t, s, sample(1, 2))
	other := filepath.Join(dir, "other")
	copyFile(t, path, other)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(); !errors.Is(err, ErrFileGone) || !strings.Contains(err.Error(), "another file") {
		t.Fatalf("CheckFile = %v, want ErrFileGone: another file", err)
	}
	if err := s.Save(testCtx(t), sample(2, 1)); !errors.Is(err, ErrFileGone) {
		t.Fatalf("Save = %v, want ErrFileGone", err)
	}
}

// TestFaultUnderOpenStore truncates the file of an open store, so that
// bbolt's reads through its mapping fault: reads fall back to the backup,
// a write fails and leaves the Store refusing further use, and a reopen
// restores the file.
func TestFaultUnderOpenStore(t *testing.T) {
	ctx := testCtx(t)
	b := build(t, t.TempDir(), 4, 40_000)
	path := copyStore(t, b, t.TempDir(), false)
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Truncate(path, 8<<10); err != nil {
		t.Fatal(err)
	}
	got, rep, err := s.Latest(ctx)
	if err != nil || !reflect.DeepEqual(got, b.newest()) || rep.Recovery == nil {
		t.Fatalf("Latest = %v, %v, %v; want the newest, from the backup", got, rep, err)
	}
	var fe *FileDamagedError
	if !errors.As(rep.Recovery.Reason, &fe) || fe.Addr == 0 || fe.Path != path {
		t.Fatalf("reason %v, want a fault in %s", rep.Recovery.Reason, path)
	}
	t.Log(rep)
	if _, err := s.List(ctx); !errors.As(err, &fe) {
		t.Fatalf("List = %v, want a *FileDamagedError", err)
	}
	if err := s.Save(ctx, sized(100, 0.1, 40_000)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Save on a truncated file = %v, want ErrDamaged", err)
	}
	if err := s.Save(ctx, sample(101, 0.1)); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Save after a faulted write = %v, want a refusal", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecovered(t, b, path, true)
}

// TestTruncatedUnderReaders empties the file of an open store while
// readers run. Starting a transaction then faults, with bbolt's locks
// held: no reader may wait for them, every Latest must return the newest
// checkpoint, from the file or from the backup, and Close must return.
func TestTruncatedUnderReaders(t *testing.T) {
	ctx := testCtx(t)
	b := build(t, t.TempDir(), 4, 20_000)
	path := copyStore(t, b, t.TempDir(), false)
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			<-start
			for range 40 {
				got, _, err := s.Latest(ctx)
				if err != nil || !reflect.DeepEqual(got, b.newest()) {
					t.Errorf("Latest = %v, %v", got, err)
					return
				}
			}
		})
	}
	close(start)
	truncate(t, path, 0)
	wg.Wait()
	_, rep, err := s.Latest(ctx)
	if err != nil || rep.Recovery == nil {
		t.Fatalf("Latest after the truncation: %v, %v", rep, err)
	}
	if err := s.Save(ctx, sample(100, 1)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Save on the emptied file = %v, want ErrDamaged", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecovered(t, b, path, false)
}

// TestWedged starts a transaction on a file emptied under the Store,
// which faults while bbolt holds its locks, beside a read transaction
// under way: Latest must fall back to the backup, the open transaction
// must end, and Close must return and release the file.
func TestWedged(t *testing.T) {
	ctx := testCtx(t)
	b := build(t, t.TempDir(), 3, 5000)
	path := copyStore(t, b, t.TempDir(), false)
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.view(func(*bolt.Tx) error {
			close(inside)
			<-release
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-inside
	truncate(t, path, 0)
	skipLengthCheck = true
	got, rep, err := s.Latest(ctx)
	skipLengthCheck = false
	if err != nil || !reflect.DeepEqual(got, b.newest()) || rep.Recovery == nil {
		t.Fatalf("Latest = %v, %v, %v; want the newest, from the backup", got, rep, err)
	}
	if !s.wedged.Load() {
		t.Fatalf("not wedged: %v", rep.Recovery.Reason)
	}
	close(release)
	wg.Wait()
	if err := s.Save(ctx, sample(100, 1)); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Save on a wedged store = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantRecovered(t, b, path, false)
}

// TestReadFallsBackToBackup damages every checkpoint of an open store:
// Latest and Best read the backup, and say so.
func TestReadFallsBackToBackup(t *testing.T) {
	s := openTest(t, Options{})
	mustSave(t, s, sample(1, 2), sample(2, 1))
	for _, st := range []uint64{1, 2} {
		damageStore(t, s, st, damages[0].f)
	}
	for name, read := range map[string]func(context.Context) (*Checkpoint, Report, error){"Latest": s.Latest, "Best": s.Best} {
		got, rep, err := read(testCtx(t))
		if err != nil || got.Step != 2 || rep.Recovery == nil || len(rep.Skipped) != 2 ||
			!errors.Is(rep.Recovery.Reason, ErrDamaged) || rep.Recovery.Restored {
			t.Fatalf("%s = %v, %+v, %v; want step 2 from the backup", name, got, rep, err)
		}
		if !strings.Contains(rep.String(), "reading backup") {
			t.Fatalf("report %q does not say it read the backup", rep)
		}
	}
}

// TestBackup checks when Save backs up, that a backup opens as the
// store did, and that a damaged store does not replace a good backup.
func TestBackup(t *testing.T) {
	ctx := testCtx(t)
	t.Run("every", func(t *testing.T) {
		s := openTest(t, Options{BackupEvery: 2})
		mustSave(t, s, sample(1, 1))
		if _, err := os.Stat(BackupPath(s.Path())); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a backup after 1 save of BackupEvery 2: %v", err)
		}
		mustSave(t, s, sample(2, 1), sample(3, 1))
		if lb := s.LastBackup(); lb.Step != 2 || lb.Err != nil || lb.Time.IsZero() || lb.Path != BackupPath(s.Path()) {
			t.Fatalf("LastBackup = %+v, want step 2", lb)
		}
		b, err := Open(BackupPath(s.Path()), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if all, _ := steps(t, b); !reflect.DeepEqual(all, []uint64{1, 2}) {
			t.Fatalf("the backup holds %v", all)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := openTest(t, Options{NoBackup: true})
		mustSave(t, s, sample(1, 1))
		if _, err := os.Stat(BackupPath(s.Path())); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a backup with NoBackup: %v", err)
		}
		if err := s.Backup(ctx); err != nil { // by hand it works
			t.Fatal(err)
		}
	})
	t.Run("damaged store", func(t *testing.T) {
		s := openTest(t, Options{})
		mustSave(t, s, sample(1, 1), sample(2, 1))
		damageStore(t, s, 2, damages[0].f)
		err := s.Backup(ctx)
		if !errors.Is(err, ErrNoBackup) || !errors.Is(s.LastBackup().Err, ErrNoBackup) || s.LastBackup().Step != 2 {
			t.Fatalf("Backup of a damaged store = %v, last %+v", err, s.LastBackup())
		}
		b, err := Open(BackupPath(s.Path()), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if got, rep, err := b.Latest(ctx); err != nil || got.Step != 2 || len(rep.Skipped) != 0 {
			t.Fatalf("the old backup: %v %v %v", got, rep, err)
		}
		entries, _ := os.ReadDir(filepath.Dir(s.Path()))
		if len(entries) != 2 {
			t.Fatalf("files left behind: %v", entries)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		s := openTest(t, Options{})
		mustSave(t, s, sample(1, 1))
		path := s.Path()
		s.Close()
		r, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := r.Backup(ctx); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Backup of a read-only store = %v", err)
		}
	})
}

// TestTempsRemoved checks that a writer's Open removes the temporary
// files of a backup or a restore that a crash left.
func TestTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.db")
	left := []string{".ckpt.db.bak.tmp123", ".ckpt.db.tmp456"}
	for _, name := range append(left, ".other.tmp1", "latest.ckpt") {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, name := range left {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is left: %v", name, err)
		}
	}
	for _, name := range []string{".other.tmp1", "latest.ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
}

func TestOptionsBackupEvery(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{BackupEvery: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("BackupEvery -1: %v", err)
	}
	if d := DefaultOptions(); d.BackupEvery != 1 || d.NoBackup {
		t.Fatalf("defaults %+v", d)
	}
}
