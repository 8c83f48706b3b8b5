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
	"testing"
)

// A damage is what a case does to the copy of a store: it edits the file
// at path, of size bytes.
type damageCase struct {
	name  string
	apply func(t testing.TB, path string, size int64)
}

// randomDamage draws a damage: bytes flipped, a page zeroed or filled
// with noise, or the file truncated, at random places.
func randomDamage(r *rand.Rand) damageCase {
	switch k := r.IntN(10); {
	case k < 3:
		n := 1 + r.IntN(16)
		offs, masks := make([]int64, n), make([]byte, n)
		for i := range offs {
			offs[i], masks[i] = r.Int64(), byte(1+r.IntN(255))
		}
		return damageCase{fmt.Sprintf("flip %d bytes", n), func(t testing.TB, path string, size int64) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, off := range offs {
				data[off%size] ^= masks[i]
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}}
	case k < 5:
		page, noise := r.Int64(), r.IntN(2) == 0
		seed := r.Uint64()
		return damageCase{fmt.Sprintf("page %d, noise %v", page, noise), func(t testing.TB, path string, size int64) {
			const ps = 4096
			buf := make([]byte, ps)
			if noise {
				nr := rand.New(rand.NewPCG(seed, 1))
				for i := range buf {
					buf[i] = byte(nr.Uint32())
				}
			}
			patch(t, path, page%(size/ps)*ps, buf)
		}}
	case k < 8:
		at := r.Int64()
		return damageCase{"truncate at random", func(t testing.TB, path string, size int64) {
			truncate(t, path, at%size)
		}}
	}
	at := []int64{0, 8 << 10, 100 << 10}[r.IntN(3)]
	return damageCase{fmt.Sprintf("truncate to %d", at), func(t testing.TB, path string, _ int64) {
		truncate(t, path, at)
	}}
}

// buildTemplate builds the store the damage tests copy: several
// checkpoints, of several pages each, and its backup.
func buildTemplate(t testing.TB) built { return build(t, t.TempDir(), 6, 20_000) }

// checkDamaged opens the store at path, as a reader or a writer, and
// reads Latest, Best and List, and, for a writer, saves. Each must end in
// a checkpoint that verifies, read from the store's file or its backup
// and saying which, or in an error that wraps ErrDamaged, ErrNoCheckpoint
// or fs.ErrNotExist; none may panic or crash (which would end the test
// binary). With goodBackup, Latest must return a checkpoint. It returns
// where Latest's checkpoint came from: "main", "backup" or "error".
func checkDamaged(t testing.TB, b built, path string, readOnly, goodBackup bool) (source string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(path, Options{ReadOnly: readOnly, NoSync: true, Timeout: 1})
	if err != nil {
		if goodBackup {
			t.Fatalf("Open with a good backup: %v", err)
		}
		wantClear(t, err, path)
		return "error"
	}
	defer s.Close()
	source = "error"
	for _, name := range []string{"Latest", "Best"} {
		read := map[string]func(context.Context) (*Checkpoint, Report, error){"Latest": s.Latest, "Best": s.Best}[name]
		c, rep, err := read(ctx)
		if err != nil {
			if goodBackup && name == "Latest" {
				t.Fatalf("Latest with a good backup: %v", err)
			}
			wantClear(t, err, path)
			continue
		}
		if want := b.saved[c.Step]; !reflect.DeepEqual(c, want) {
			t.Fatalf("%s returned step %d, which is not what was saved", name, c.Step)
		}
		if name == "Latest" {
			source = "main"
			if rep.Recovery != nil || s.Recovery() != nil {
				source = "backup" // restored or read, the Store or the Report says so
			}
		}
	}
	infos, err := s.List(ctx)
	if err != nil {
		wantClear(t, err, path)
	}
	for _, in := range infos {
		if in.OK && b.saved[in.Step] == nil {
			t.Fatalf("List: step %d passes its checksum but was never saved", in.Step)
		}
	}
	if !readOnly {
		if err := s.Save(ctx, sample(1000, 0.5)); err != nil {
			wantClear(t, err, path)
		}
	}
	return source
}

// wantClear fails unless err says what is wrong and names the file.
func wantClear(t testing.TB, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNoCheckpoint) && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unclear error: %v", err)
	}
	if !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

// TestRandomDamage damages copies of one store a few hundred times, with
// a seeded generator, and checks each as checkDamaged does: a checkpoint
// that verifies, or a clear error, never a panic or a crash. One case in
// five damages the backup too.
func TestRandomDamage(t *testing.T) {
	b := buildTemplate(t)
	fi, err := os.Stat(b.path)
	if err != nil {
		t.Fatal(err)
	}
	cases := 300
	if testing.Short() {
		cases = 60
	}
	r := rand.New(rand.NewPCG(13, 1))
	root := t.TempDir()
	sources := map[string]int{}
	for i := range cases {
		d := randomDamage(r)
		both := r.IntN(5) == 0
		for _, ro := range []bool{true, false} {
			dir := filepath.Join(root, fmt.Sprintf("%d-%v", i, ro))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := copyStore(t, b, dir, false)
			d.apply(t, path, fi.Size())
			if both {
				bfi, _ := os.Stat(BackupPath(path))
				d.apply(t, BackupPath(path), bfi.Size())
			}
			t.Run(fmt.Sprintf("%d %s backup damaged %v read-only %v", i, d.name, both, ro), func(t *testing.T) {
				sources[checkDamaged(t, b, path, ro, !both)]++
			})
			os.RemoveAll(dir)
		}
	}
	t.Logf("Latest read: %v", sources)
	for _, src := range []string{"main", "backup", "error"} {
		if sources[src] == 0 && !t.Failed() {
			t.Errorf("no case read from %s: the damage does not cover the cases", src)
		}
	}
}

// FuzzOpenDamaged writes data at off of a copy of a store, or truncates
// it, and checks the copy as TestRandomDamage does.
func FuzzOpenDamaged(f *testing.F) {
	f.Add(uint32(10), []byte{0xff}, uint32(0), uint8(0))
	f.Add(uint32(4096+16), []byte{0, 0, 0, 0}, uint32(0), uint8(1))
	f.Add(uint32(8*4096+8), []byte{2, 0}, uint32(0), uint8(2))
	f.Add(uint32(0), []byte{}, uint32(8<<10), uint8(3))
	f.Add(uint32(0), []byte{}, uint32(100<<10), uint8(0))
	b := buildTemplate(f) // once per process
	f.Fuzz(func(t *testing.T, off uint32, data []byte, cut uint32, flags uint8) {
		path := copyStore(t, b, t.TempDir(), false)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		damaged := []string{path}
		if flags&1 != 0 {
			damaged = append(damaged, BackupPath(path))
		}
		for _, p := range damaged {
			if len(data) > 0 {
				patch(t, p, int64(off)%fi.Size(), data)
			}
			if cut != 0 {
				truncate(t, p, int64(cut)%fi.Size())
			}
		}
		checkDamaged(t, b, path, flags&2 != 0, flags&1 == 0)
	})
}
