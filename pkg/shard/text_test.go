package shard

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func openString(t testing.TB, s string, cfg TextConfig) *TextCorpus {
	t.Helper()
	c, err := NewTextCorpus(strings.NewReader(s), int64(len(s)), "corpus.txt", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readAll(t testing.TB, tk Tokens) []int32 {
	t.Helper()
	out := make([]int32, tk.Len())
	if err := tk.ReadTokens(out, 0); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTextSplitAndVocab(t *testing.T) {
	// 10 bytes; the 90% cut at byte 9 is inside "é" (bytes 8-9), so it moves
	// back to byte 8: train "abcabcab", validation "é".
	c := openString(t, "abcabcabé", TextConfig{})
	if c.SplitByte() != 8 {
		t.Fatalf("cut at %d, want 8", c.SplitByte())
	}
	if got := string(c.Vocab().Runes()); got != "abc" {
		t.Fatalf("vocab %q: must come from the training part only", got)
	}
	if got := readAll(t, c.Validation()); len(got) != 1 || got[0] != Unk {
		t.Fatalf("validation tokens %v, want [<unk>]", got)
	}
	if got := c.Vocab().Decode(readAll(t, c.Train())); got != "abcabcab" {
		t.Fatalf("train decodes to %q", got)
	}
}

// A non-ASCII corpus spanning several index checkpoints: random reads
// through the rune index agree with encoding the whole string.
func TestTextTokensRandomAccess(t *testing.T) {
	var sb strings.Builder
	for i := 0; sb.Len() < 40000; i++ {
		sb.WriteString([]string{"a", "ж", "€", "\U0001F600", "\n", "b"}[i*7%6])
	}
	s := sb.String()
	c := openString(t, s, TextConfig{TrainFraction: 0.5})
	trainText := s[:c.SplitByte()]
	want := c.Vocab().Encode(trainText)
	tr := c.Train()
	if tr.Len() != int64(len(want)) || tr.Len() != int64(utf8.RuneCountInString(trainText)) {
		t.Fatalf("train has %d tokens, want %d", tr.Len(), len(want))
	}
	for _, off := range []int64{0, 1, 4095, 4096, 4097, 8191, int64(len(want)) - 33} {
		got := make([]int32, 33)
		if err := tr.ReadTokens(got, off); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != want[int(off)+i] {
				t.Fatalf("offset %d+%d: %d, want %d", off, i, got[i], want[int(off)+i])
			}
		}
	}
	if err := tr.ReadTokens(make([]int32, 2), tr.Len()-1); !errors.Is(err, ErrConfig) {
		t.Fatalf("read past end: err %v", err)
	}
}

func TestTextByteLevel(t *testing.T) {
	c := openString(t, "\xff\x00abcdefgh", TextConfig{Level: ByteLevel})
	if c.Vocab().Size() != 256 || c.Train().Len() != 9 || c.Validation().Len() != 1 {
		t.Fatalf("vocab %d, parts %d/%d", c.Vocab().Size(), c.Train().Len(), c.Validation().Len())
	}
	if got := readAll(t, c.Train()); got[0] != 255 || got[1] != 0 {
		t.Fatalf("tokens %v", got)
	}
}

func TestTextGivenVocab(t *testing.T) {
	v := NewCharVocab([]rune("ab"))
	c := openString(t, "abcabcabca", TextConfig{Vocab: v})
	if c.Vocab() != v {
		t.Fatal("given vocabulary not used")
	}
	if got := readAll(t, c.Train()); got[2] != Unk {
		t.Fatalf("tokens %v: 'c' must be <unk>", got)
	}
}

func TestTextErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		cfg        TextConfig
		want       error
		msg        string
	}{
		{"empty", "", TextConfig{}, ErrEmpty, "corpus.txt: empty text corpus"},
		{"bad utf8", "ok\nline two\xffx\n", TextConfig{}, ErrInvalidUTF8, "corpus.txt:2: invalid UTF-8 at byte offset 11"},
		{"bad fraction", "abc", TextConfig{TrainFraction: 2}, ErrConfig, ""},
		{"bad level", "abc", TextConfig{Level: 9}, ErrConfig, ""},
	} {
		_, err := NewTextCorpus(strings.NewReader(tc.text), int64(len(tc.text)), "corpus.txt", tc.cfg)
		if !errors.Is(err, tc.want) || (tc.msg != "" && err.Error() != tc.msg) {
			t.Errorf("%s: err %v, want %v %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

func TestOpenTextFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.txt")
	text := strings.Repeat("to be or not to be\n", 50)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenText(path, TextConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewStreams(c.Train(), StreamConfig{Streams: 4, Steps: 16})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	// 855 train bytes: 4 segments of (855-1)/4 = 213; step 0 reads the first
	// byte of each segment.
	want := string([]byte{text[0], text[213], text[426], text[639]})
	if got := c.Vocab().Decode(b.Tokens[:4]); got != want {
		t.Fatalf("first step %q, want %q", got, want)
	}
	if _, err := OpenText(filepath.Join(t.TempDir(), "missing.txt"), TextConfig{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err %v", err)
	}
}

func FuzzTextCorpus(f *testing.F) {
	f.Add([]byte("hello\nwörld\n"), false)
	f.Add([]byte("a\xffb"), false)
	f.Add([]byte("\xe2\x82"), true)
	f.Fuzz(func(t *testing.T, data []byte, byteLevel bool) {
		cfg := TextConfig{}
		if byteLevel {
			cfg.Level = ByteLevel
		}
		c, err := NewTextCorpus(bytes.NewReader(data), int64(len(data)), "f.txt", cfg)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			return
		}
		tr, va := readAll(t, c.Train()), readAll(t, c.Validation())
		if !byteLevel {
			if !utf8.Valid(data) {
				t.Fatal("invalid UTF-8 accepted")
			}
			if got := c.Vocab().Decode(tr); got != string(data[:c.SplitByte()]) {
				t.Fatalf("train decodes to %q", got)
			}
		}
		if int64(len(tr)+len(va)) > int64(len(data)) {
			t.Fatal("more tokens than bytes")
		}
	})
}

// tinyShakespeare returns the path of the corpus, or skips.
func tinyShakespeare(t testing.TB) string {
	dirs := []string{os.Getenv("RECUR_DATA"), "/work/shared/data"}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "tinyshakespeare.txt")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("tinyshakespeare.txt not found in $RECUR_DATA or /work/shared/data; set RECUR_DATA to its folder")
	return ""
}

func TestTinyShakespeareFirstBatch(t *testing.T) {
	path := tinyShakespeare(t)
	start := time.Now()
	c, err := OpenText(path, TextConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewStreams(c.Train(), StreamConfig{Streams: 64, Steps: 128})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("open + vocab + first batch: %v (vocab %d, train %d tokens)", took, c.Vocab().Size(), c.Train().Len())
	if c.Vocab().Size() != 66 { // 65 characters + <unk>
		t.Errorf("vocab size %d, want 66", c.Vocab().Size())
	}
	if got := c.Vocab().Decode(b.Tokens[:1]) + c.Vocab().Decode(b.Targets[:1]); got != "Fi" {
		t.Errorf("stream 0 starts %q, want \"Fi\"", got)
	}
	if took > time.Second {
		t.Errorf("open + first batch took %v, want well under a second", took)
	}
}
