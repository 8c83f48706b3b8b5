package coordinator

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readOld reads a file through a handle opened before it was replaced.
func readOld(t *testing.T, f *os.File) string {
	t.Helper()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openOld writes content to dir/name and opens it, so a test can tell a
// file replaced by rename (the handle keeps the old bytes) from one
// rewritten in place (truncated, then filled: a reader can see it empty).
func openOld(t *testing.T, dir, name, content string) *os.File {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	old := openOld(t, dir, "x", "old")
	if err := writeFileAtomic(filepath.Join(dir, "x"), []byte("new content")); err != nil {
		t.Fatal(err)
	}
	if got := readOld(t, old); got != "old" {
		t.Fatalf("the old file was rewritten in place: the old handle reads %q", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "x"))
	if err != nil || string(b) != "new content" {
		t.Fatalf("new content: %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "x")); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode: %v, %v", st.Mode(), err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "y"), []byte("z")); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Fatalf("temporary files left: %v", names)
	}
}

// job.json, vocab.json and loss.png are replaced, never rewritten in
// place (a 0-byte loss.png was seen mid-write).
func TestRunFilesReplacedAtomically(t *testing.T) {
	dir := t.TempDir()
	oldJob := openOld(t, dir, "job.json", "old job")
	oldVocab := openOld(t, dir, "vocab.json", "old vocab")
	oldCurve := openOld(t, dir, "loss.png", "old curve")
	tc := startCluster(t, testJob(testCorpus(t), 10), dir, false)
	for f, name := range map[*os.File]string{oldJob: "job.json", oldVocab: "vocab.json"} {
		if got := readOld(t, f); got != "old "+name[:len(name)-5] {
			t.Errorf("%s was rewritten in place: the old handle reads %.40q", name, got)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !json.Valid(b) {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	c := tc.coord
	c.mu.Lock()
	c.curve.addTrain(1, 2.5)
	c.curve.addTrain(2, 2.0)
	c.mu.Unlock()
	c.writeCurve()
	if got := readOld(t, oldCurve); got != "old curve" {
		t.Errorf("loss.png was rewritten in place: the old handle reads %.40q", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "loss.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("loss.png: %v", err)
	}
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if m, _ := filepath.Match("*.tmp*", n.Name()); m {
			t.Errorf("temporary file left: %s", n.Name())
		}
	}
}
