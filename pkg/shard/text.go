package shard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"
)

// TextConfig configures a text corpus.
type TextConfig struct {
	// Level is CharLevel (default) or ByteLevel.
	Level Level
	// Vocab, when set, is used as is instead of being built from the
	// training text: pass the vocabulary saved with a model, or one built up
	// front for a corpus too large for a vocabulary pass. Its level wins over
	// Level.
	Vocab *Vocab
	// TrainFraction is the share of bytes in the training part; default
	// 0.9 (the tiny-shakespeare convention: first 90% train, last 10%
	// validation). The cut is moved back to the start of the rune it falls
	// in, so both parts are whole runes.
	TrainFraction float64
}

// DefaultTrainFraction is the default share of data used for training.
const DefaultTrainFraction = 0.9

// Validate reports whether the configuration is usable.
func (c TextConfig) Validate() error {
	if c.Level != CharLevel && c.Level != ByteLevel {
		return configErr("text level %d unknown", c.Level)
	}
	if c.TrainFraction < 0 || c.TrainFraction > 1 || c.TrainFraction != c.TrainFraction {
		return configErr("TrainFraction %v outside [0, 1]", c.TrainFraction)
	}
	return nil
}

// checkpointRunes is how many runes lie between two entries of the index
// that maps a rune offset to a byte offset (8 bytes per 4096 runes).
const checkpointRunes = 4096

// TextCorpus is a text file read as a token stream without loading it: on
// Linux the file is memory-mapped, elsewhere it is read through
// io.ReaderAt. Char-level opening makes one sequential pass to validate
// UTF-8, build the vocabulary (unless given) and index rune offsets;
// byte-level opening reads nothing.
type TextCorpus struct {
	name       string
	r          io.ReaderAt
	size       int64
	cut        int64 // byte offset of the split
	vocab      *Vocab
	train, val *TextTokens
	closer     func() error
}

// OpenText opens the corpus at path. Close it when done.
func OpenText(path string, cfg TextConfig) (*TextCorpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shard: open text: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shard: open text: %w", err)
	}
	var r io.ReaderAt = f
	closer := f.Close
	if data, unmap, err := mapFile(f, st.Size()); err == nil {
		f.Close() // the mapping keeps the pages
		r, closer = bytes.NewReader(data), unmap
	}
	c, err := NewTextCorpus(r, st.Size(), filepath.Base(path), cfg)
	if err != nil {
		closer()
		return nil, err
	}
	c.closer = closer
	return c, nil
}

// NewTextCorpus reads a corpus of size bytes from r; name labels errors.
func NewTextCorpus(r io.ReaderAt, size int64, name string, cfg TextConfig) (*TextCorpus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, inputErr(name, 0, ErrEmpty, "empty text corpus")
	}
	frac := cfg.TrainFraction
	if frac == 0 {
		frac = DefaultTrainFraction
	}
	c := &TextCorpus{name: name, r: r, size: size, vocab: cfg.Vocab}
	level := cfg.Level
	if c.vocab != nil {
		level = c.vocab.Level()
	}
	c.cut = int64(frac * float64(size))
	if level == ByteLevel {
		if c.vocab == nil {
			c.vocab = NewByteVocab()
		}
		c.train = &TextTokens{c: c, lo: 0, hi: c.cut, n: c.cut, ascii: true}
		c.val = &TextTokens{c: c, lo: c.cut, hi: size, n: size - c.cut, ascii: true}
		return c, nil
	}
	if err := c.backToRuneStart(); err != nil {
		return nil, err
	}
	if err := c.scan(); err != nil {
		return nil, err
	}
	return c, nil
}

// backToRuneStart moves the cut back to the first byte of its rune.
func (c *TextCorpus) backToRuneStart() error {
	if c.cut == 0 || c.cut == c.size {
		return nil
	}
	lo := max(0, c.cut-utf8.UTFMax+1)
	buf := make([]byte, c.cut-lo+1)
	if _, err := c.r.ReadAt(buf, lo); err != nil && err != io.EOF {
		return fmt.Errorf("shard: read %s: %w", c.name, err)
	}
	for i := len(buf) - 1; i >= 0; i-- {
		if utf8.RuneStart(buf[i]) {
			c.cut = lo + int64(i)
			return nil
		}
	}
	return nil // invalid UTF-8 here; scan reports it
}

// scan makes the single pass over a char-level corpus: it validates UTF-8
// (reporting byte offset and line), collects the training runes, and builds
// the rune-offset index of each part.
func (c *TextCorpus) scan() error {
	br := bufio.NewReaderSize(io.NewSectionReader(c.r, 0, c.size), int(min(c.size, 1<<16)))
	seen := map[rune]bool{}
	var asciiSeen [utf8.RuneSelf]bool
	parts := [2]*TextTokens{{c: c, lo: 0, hi: c.cut}, {c: c, lo: c.cut, hi: c.size}}
	var off int64
	line := 1
	for p, t := range parts {
		t.ascii = true
		for off < t.hi {
			if t.n%checkpointRunes == 0 {
				t.index = append(t.index, off)
			}
			r, n, err := br.ReadRune()
			if err != nil {
				return fmt.Errorf("shard: read %s at byte %d: %w", c.name, off, err)
			}
			if r == utf8.RuneError && n == 1 {
				return inputErr(c.name, line, ErrInvalidUTF8, "invalid UTF-8 at byte offset %d", off)
			}
			if r == '\n' {
				line++
			}
			if n > 1 {
				t.ascii = false
			}
			if p == 0 && c.vocab == nil {
				if r < utf8.RuneSelf {
					asciiSeen[r] = true
				} else {
					seen[r] = true
				}
			}
			off += int64(n)
			t.n++
		}
	}
	if off != c.size {
		return inputErr(c.name, line, ErrInvalidUTF8, "rune crosses the train/validation cut at byte offset %d", c.cut)
	}
	if c.vocab == nil {
		runes := make([]rune, 0, len(seen)+len(asciiSeen))
		for r, ok := range asciiSeen {
			if ok {
				runes = append(runes, rune(r))
			}
		}
		for r := range seen {
			runes = append(runes, r)
		}
		c.vocab = NewCharVocab(runes)
	}
	c.train, c.val = parts[0], parts[1]
	return nil
}

// Vocab returns the vocabulary (built from the training part, or given).
func (c *TextCorpus) Vocab() *Vocab { return c.vocab }

// Train returns the training part: the tokens before the cut.
func (c *TextCorpus) Train() *TextTokens { return c.train }

// Validation returns the validation part: the tokens from the cut on.
func (c *TextCorpus) Validation() *TextTokens { return c.val }

// SplitByte returns the byte offset where the validation part starts.
func (c *TextCorpus) SplitByte() int64 { return c.cut }

// Close releases the mapping or file. Tokens must not be read afterwards.
func (c *TextCorpus) Close() error {
	if c.closer == nil {
		return nil
	}
	err := c.closer()
	c.closer = nil
	return err
}

// TextTokens is one part of a TextCorpus as Tokens. Reads are safe for
// concurrent use.
type TextTokens struct {
	c      *TextCorpus
	lo, hi int64   // byte range of the part
	n      int64   // tokens in the part
	ascii  bool    // one byte per token: token offset = byte offset
	index  []int64 // byte offset of rune i*checkpointRunes

	// hints remembers the byte offset of runes where recent reads ended, so
	// a stream reading window after window decodes only its window instead
	// of walking from the previous checkpoint. Bounded by maxHints.
	mu    sync.Mutex
	hints map[int64]int64
}

const maxHints = 1 << 14

// start returns a rune offset at or before off with its known byte offset.
func (t *TextTokens) start(off int64) (rune0, byte0 int64) {
	t.mu.Lock()
	b, ok := t.hints[off]
	t.mu.Unlock()
	if ok {
		return off, b
	}
	ck := off / checkpointRunes
	return ck * checkpointRunes, t.index[ck]
}

func (t *TextTokens) hint(runeOff, byteOff int64) {
	t.mu.Lock()
	if t.hints == nil || len(t.hints) >= maxHints {
		t.hints = make(map[int64]int64)
	}
	t.hints[runeOff] = byteOff
	t.mu.Unlock()
}

// Len returns the number of tokens.
func (t *TextTokens) Len() int64 { return t.n }

// ReadTokens fills dst with the tokens at [off, off+len(dst)).
func (t *TextTokens) ReadTokens(dst []int32, off int64) error {
	if off < 0 || off+int64(len(dst)) > t.n {
		return fmt.Errorf("%w: tokens [%d, %d) outside [0, %d)", ErrConfig, off, off+int64(len(dst)), t.n)
	}
	v := t.c.vocab
	if t.ascii {
		buf := make([]byte, len(dst))
		if err := t.readAt(buf, t.lo+off); err != nil {
			return err
		}
		if v.Level() == ByteLevel {
			for i, b := range buf {
				dst[i] = int32(b)
			}
		} else {
			for i, b := range buf {
				dst[i] = v.ascii[b&0x7f]
			}
		}
		return nil
	}
	if v.Level() == ByteLevel { // unreachable: byte parts are always ascii
		return fmt.Errorf("%w: byte-level part without byte offsets", ErrConfig)
	}
	r0, start := t.start(off)
	skip := int(off - r0)
	buf := make([]byte, min(int64(utf8.UTFMax*(skip+len(dst))), t.hi-start))
	if err := t.readAt(buf, start); err != nil {
		return err
	}
	pos := start
	for i := -skip; i < len(dst); i++ {
		if i == len(dst)-1 {
			t.hint(off+int64(i), pos)
		}
		r, n := utf8.DecodeRune(buf)
		buf = buf[n:]
		pos += int64(n)
		if i >= 0 {
			dst[i] = v.ID(r)
		}
	}
	t.hint(off+int64(len(dst)), pos)
	return nil
}

func (t *TextTokens) readAt(buf []byte, off int64) error {
	n, err := t.c.r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	return fmt.Errorf("shard: read %s at byte %d: %w", t.c.name, off, err)
}
