package shard

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The Load* helpers name errors after the file's base name.
func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := LoadCSV(write("ok.csv", "a\n1\n2\n"), CSVConfig{}); err != nil || s.Rows != 2 {
		t.Fatalf("LoadCSV: %v", err)
	}
	if _, err := LoadCSV(write("bad.csv", "a\n1\nx\n"), CSVConfig{}); err == nil || err.Error() != `bad.csv:3: column "a": expected a finite number, got "x"` {
		t.Fatalf("LoadCSV bad: %v", err)
	}
	if exs, _, err := LoadJSONL(write("ok.jsonl", `{"input":[1]}`), JSONLConfig{}); err != nil || len(exs) != 1 {
		t.Fatalf("LoadJSONL: %v", err)
	}
	if _, _, err := LoadJSONL(write("empty.jsonl", ""), JSONLConfig{}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("LoadJSONL empty: %v", err)
	}
	if _, err := LoadIDX(write("empty.idx", "")); err == nil || err.Error() != "empty.idx: empty IDX file" {
		t.Fatalf("LoadIDX empty: %v", err)
	}
	if _, err := OpenText(write("empty.txt", ""), TextConfig{}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("OpenText empty: %v", err)
	}
	for _, load := range []func(string) error{
		func(p string) error { _, err := LoadCSV(p, CSVConfig{}); return err },
		func(p string) error { _, _, err := LoadJSONL(p, JSONLConfig{}); return err },
		func(p string) error { _, err := LoadIDX(p); return err },
		func(p string) error { _, err := LoadImageSet(p, p, 0); return err },
	} {
		if err := load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing file: %v", err)
		}
	}
}
