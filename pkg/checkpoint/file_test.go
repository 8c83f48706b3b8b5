package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A checkpoint file round-trips, and any damage is detected.
func TestFileRoundTripAndDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latest.ckpt")
	want := sample(42, 1.5)
	if err := WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, wrote %+v", got, want)
	}
	b, _ := os.ReadFile(path)
	for _, off := range []int{0, 4, 5, 13, len(b) / 2, len(b) - 1} {
		bad := append([]byte(nil), b...)
		bad[off] ^= 0x40
		if _, err := DecodeFile(bad); !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrFormat) {
			t.Errorf("byte %d flipped: %v, want ErrDamaged or ErrFormat", off, err)
		}
	}
	for _, n := range []int{0, 10, len(b) - 1} {
		if _, err := DecodeFile(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.ckpt")); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("missing file: %v, want ErrNoCheckpoint", err)
	}
}

func FuzzDecodeFile(f *testing.F) {
	good, _ := EncodeFile(sample(3, 0.5))
	f.Add(good)
	f.Add([]byte("RCKF\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeFile(b)
		if err == nil && c == nil {
			t.Fatal("no checkpoint and no error")
		}
	})
}

// A read-only store reads beside other readers (and on a read-only file
// system), refuses to save, and cannot be opened while a writer holds it.
func TestReadOnlyStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.db")
	w, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, w, sample(1, 2), sample(2, 1), sample(3, 3))
	if _, err := Open(path, Options{ReadOnly: true, Timeout: 50e6}); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open beside the writer: %v, want ErrLocked", err)
	}
	w.Close()
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	r1, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	defer r2.Close()
	if c, err := r1.At(testCtx(t), 2); err != nil || c.Step != 2 {
		t.Fatalf("At(2): %v, %v", c, err)
	}
	if _, err := r1.At(testCtx(t), 7); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("At(7): %v, want ErrNoCheckpoint", err)
	}
	if c, _, err := r2.Best(testCtx(t)); err != nil || c.Step != 2 {
		t.Fatalf("Best: %v, %v", c, err)
	}
	if err := r1.Save(testCtx(t), sample(4, 1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Save on a read-only store: %v, want ErrReadOnly", err)
	}
}
