package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// checkBolt reads a bbolt file with plain reads, before bbolt maps it, and
// fails when bbolt could not use it safely. bbolt trusts its file: a page
// id past the end of a truncated file makes it touch memory beyond the
// file (SIGBUS, SIGSEGV), and a damaged freelist or tree page makes it
// panic. The check follows bbolt's on-disk format, version 2
// (go.etcd.io/bbolt/internal/common), in the machine's byte order, as
// bbolt writes it:
//
//	page      id uint64, flags uint16, count uint16, overflow uint32, then
//	          count elements; a page spans overflow+1 page-size units
//	meta      pages 0 and 1, after the page header: magic, version, page
//	          size, flags uint32; the root bucket (root page, sequence
//	          uint64); freelist page, high-water mark (pages in use), txid
//	          and the FNV-64a of the fields before it, uint64
//	branch    element: pos, ksize uint32, child page uint64; the key lies
//	          pos bytes after the element
//	leaf      element: flags, pos, ksize, vsize uint32; the key, then the
//	          value, pos bytes after the element; flag 1 marks a bucket,
//	          whose value is its root page and sequence (uint64) followed,
//	          when the root is 0, by an inline leaf page
//	freelist  count page ids uint64; when count is 0xFFFF the first
//	          uint64 holds the count
//
// It checks what bbolt relies on when it opens the file and reads or
// writes through it: a valid meta page (the one bbolt picks), the page
// size, a file long enough for every page below the high-water mark, a
// freelist of distinct pages in range, and a tree whose every page is in
// range, of the right type, referenced once and not free, and whose
// elements, keys and values lie inside their page, with non-empty keys in
// order, as bbolt's own Tx.Check demands. Pages that are neither reachable
// nor free are a leak, harmless to bbolt, and not reported.
func checkBolt(r io.ReaderAt, size int64) error {
	if size == 0 {
		return errors.New("the file is empty")
	}
	ps, err := boltPageSize(r, size)
	if err != nil {
		return err
	}
	m, err := pickMeta(r, ps, size)
	if err != nil {
		return err
	}
	c := &boltChecker{r: r, ps: uint64(ps), hwm: m.hwm, seen: newBitset(m.hwm), freed: newBitset(m.hwm)}
	c.seen.set(0)
	c.seen.set(1)
	if m.freelist != noFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.checkTree(m.root, nil, nil, 0)
}

// Constants of bbolt's format, version 2.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16 // id, flags, count, overflow
	elementSize    = 16 // a branch or leaf element
	bucketHeader   = 16 // root page, sequence
	metaSumLen     = 56 // the meta fields the checksum covers
	metaLen        = metaSumLen + 8
	branchFlag     = 0x01
	leafFlag       = 0x02
	freelistFlag   = 0x10
	bucketFlag     = 0x01 // of a leaf element
	noFreelist     = ^uint64(0)
	minPageSize    = 1024    // the smallest bbolt probes for
	maxPageSize    = 1 << 16 // the largest page of any platform Go runs on
	maxTreeDepth   = 64      // far beyond any real tree: a deeper one loops
	maxKeySize     = 32768   // bbolt.MaxKeySize
)

var ne = binary.NativeEndian

// boltMeta holds the fields of a meta page that the check uses.
type boltMeta struct {
	pageSize uint32
	root     uint64 // the root bucket's root page
	freelist uint64
	hwm      uint64 // pages in use: every page id is below it
	txid     uint64
}

// parseMeta reads the meta of the page that starts b.
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHeaderSize+metaLen {
		return boltMeta{}, fmt.Errorf("meta page cut short at %d bytes", len(b))
	}
	f := b[pageHeaderSize : pageHeaderSize+metaLen]
	if magic := ne.Uint32(f); magic != boltMagic {
		return boltMeta{}, fmt.Errorf("not a bbolt meta page (magic %#x)", magic)
	}
	if v := ne.Uint32(f[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(f[:metaSumLen])
	if got, want := h.Sum64(), ne.Uint64(f[metaSumLen:]); got != want {
		return boltMeta{}, fmt.Errorf("meta checksum mismatch: stored %#x, computed %#x", want, got)
	}
	return boltMeta{pageSize: ne.Uint32(f[8:]), root: ne.Uint64(f[16:]), freelist: ne.Uint64(f[32:]),
		hwm: ne.Uint64(f[40:]), txid: ne.Uint64(f[48:])}, nil
}

// boltPageSize finds the page size as bbolt does: from meta page 0, else
// from the first valid meta page at 1 KiB, 2 KiB, ... (page 1 of a file
// whose page 0 is damaged).
func boltPageSize(r io.ReaderAt, size int64) (int, error) {
	buf := make([]byte, 4096)
	n, _ := r.ReadAt(buf, 0)
	m, err0 := parseMeta(buf[:n])
	if err0 == nil {
		return checkPageSize(m.pageSize)
	}
	for pos := int64(minPageSize); pos < size-minPageSize && pos <= 1<<24; pos <<= 1 {
		n, _ := r.ReadAt(buf, pos)
		if m, err := parseMeta(buf[:n]); err == nil {
			return checkPageSize(m.pageSize)
		}
	}
	return 0, fmt.Errorf("no valid meta page (page 0: %w)", err0)
}

func checkPageSize(ps uint32) (int, error) {
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return 0, fmt.Errorf("page size %d is not a power of two from %d to %d", ps, minPageSize, maxPageSize)
	}
	return int(ps), nil
}

// pickMeta returns the meta page bbolt uses, the valid one of pages 0
// and 1 with the higher txid, after checking it against the file.
func pickMeta(r io.ReaderAt, ps int, size int64) (boltMeta, error) {
	if size < 2*int64(ps) {
		return boltMeta{}, fmt.Errorf("file of %d bytes is shorter than its two meta pages of %d bytes", size, ps)
	}
	var metas [2]boltMeta
	var errs [2]error
	buf := make([]byte, pageHeaderSize+metaLen)
	for i := range metas {
		if _, err := r.ReadAt(buf, int64(i*ps)); err != nil {
			return boltMeta{}, fmt.Errorf("meta page %d: %w", i, err)
		}
		metas[i], errs[i] = parseMeta(buf)
	}
	a, b := 0, 1
	if metas[1].txid > metas[0].txid {
		a, b = 1, 0
	}
	if errs[a] != nil {
		a = b
	}
	if errs[a] != nil {
		return boltMeta{}, fmt.Errorf("both meta pages are invalid: %w; %w", errs[0], errs[1])
	}
	m := metas[a]
	switch pages := uint64(size) / uint64(ps); {
	case m.pageSize != uint32(ps):
		return m, fmt.Errorf("meta page %d gives page size %d, the file has %d", a, m.pageSize, ps)
	case m.hwm > pages:
		return m, fmt.Errorf("file of %d bytes holds %d pages of %d bytes, its meta page counts %d in use: truncated",
			size, pages, ps, m.hwm)
	case m.root < 2 || m.root >= m.hwm:
		return m, fmt.Errorf("root page %d is not between 2 and the high-water mark %d", m.root, m.hwm)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm):
		return m, fmt.Errorf("freelist page %d is not between 2 and the high-water mark %d", m.freelist, m.hwm)
	}
	return m, nil
}

// bitset is a set of page ids.
type bitset []uint64

func newBitset(n uint64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }

// boltChecker walks the pages of one file.
type boltChecker struct {
	r     io.ReaderAt
	ps    uint64
	hwm   uint64
	seen  bitset // pages reached: meta, freelist, tree
	freed bitset // pages the freelist holds
}

// pageHead is a page's header.
type pageHead struct {
	flags    uint16
	count    uint16
	overflow uint32
}

// span is the page's length in bytes, overflow pages included.
func (h pageHead) span(ps uint64) uint64 { return (uint64(h.overflow) + 1) * ps }

// readPage reads the first page-size unit of page id, checks its header
// and claims the pages it spans.
func (c *boltChecker) readPage(id uint64, what string) (pageHead, []byte, error) {
	if id < 2 || id >= c.hwm {
		return pageHead{}, nil, fmt.Errorf("%s page %d is outside pages 2 to %d", what, id, c.hwm-1)
	}
	buf := make([]byte, c.ps)
	if _, err := c.r.ReadAt(buf, int64(id*c.ps)); err != nil {
		return pageHead{}, nil, fmt.Errorf("%s page %d: %w", what, id, err)
	}
	h := pageHead{flags: ne.Uint16(buf[8:]), count: ne.Uint16(buf[10:]), overflow: ne.Uint32(buf[12:])}
	if self := ne.Uint64(buf); self != id {
		return h, nil, fmt.Errorf("%s page %d identifies itself as page %d", what, id, self)
	}
	if id+uint64(h.overflow) >= c.hwm {
		return h, nil, fmt.Errorf("%s page %d: its %d overflow pages run past the high-water mark %d", what, id, h.overflow, c.hwm)
	}
	for p := id; p <= id+uint64(h.overflow); p++ {
		switch {
		case c.seen.has(p):
			return h, nil, fmt.Errorf("%s page %d: page %d is referenced twice", what, id, p)
		case c.freed.has(p):
			return h, nil, fmt.Errorf("%s page %d: page %d is in use and free", what, id, p)
		}
		c.seen.set(p)
	}
	return h, buf, nil
}

// bytesAt returns n bytes at off of page id, whose first unit is buf.
func (c *boltChecker) bytesAt(id uint64, buf []byte, off, n uint64) ([]byte, error) {
	if off+n <= uint64(len(buf)) {
		return buf[off : off+n], nil
	}
	b := make([]byte, n)
	if _, err := c.r.ReadAt(b, int64(id*c.ps+off)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return b, nil
}

func (c *boltChecker) checkFreelist(id uint64) error {
	h, buf, err := c.readPage(id, "freelist")
	if err != nil {
		return err
	}
	if h.flags != freelistFlag {
		return fmt.Errorf("freelist page %d has page type %#x", id, h.flags)
	}
	span, start, count := h.span(c.ps), uint64(pageHeaderSize), uint64(h.count)
	if h.count == 0xFFFF {
		count, start = ne.Uint64(buf[pageHeaderSize:]), start+8
	}
	if count > (span-start)/8 || count > c.hwm {
		return fmt.Errorf("freelist page %d lists %d pages: more than fit in its %d bytes, or than the %d pages in use", id, count, span, c.hwm)
	}
	ids, err := c.bytesAt(id, buf, start, count*8)
	if err != nil {
		return fmt.Errorf("freelist %w", err)
	}
	for i := range count {
		p := ne.Uint64(ids[i*8:])
		switch {
		case p < 2 || p >= c.hwm:
			return fmt.Errorf("freelist page %d lists page %d, outside pages 2 to %d", id, p, c.hwm-1)
		case c.freed.has(p):
			return fmt.Errorf("freelist page %d lists page %d twice", id, p)
		case c.seen.has(p):
			return fmt.Errorf("freelist page %d lists page %d, which holds the freelist", id, p)
		}
		c.freed.set(p)
	}
	return nil
}

// checkTree checks the subtree at page id, whose keys must lie in
// [lo, hi) (nil: unbounded), and the buckets it holds.
func (c *boltChecker) checkTree(id uint64, lo, hi []byte, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page %d: the tree is more than %d levels deep", id, maxTreeDepth)
	}
	h, buf, err := c.readPage(id, "tree")
	if err != nil {
		return err
	}
	span := h.span(c.ps)
	if pageHeaderSize+uint64(h.count)*elementSize > span {
		return fmt.Errorf("page %d: %d elements overrun its %d bytes", id, h.count, span)
	}
	switch h.flags {
	case branchFlag:
		return c.checkBranch(id, h, buf, lo, hi, depth)
	case leafFlag:
		return c.checkLeaf(id, h, buf, lo, hi, depth)
	}
	return fmt.Errorf("page %d has page type %#x, want branch or leaf", id, h.flags)
}

// elementKey reads the key of element i of a page: ksize bytes, pos bytes
// after the element, that must end, with extra bytes after it, in span.
func (c *boltChecker) elementKey(id uint64, buf []byte, i int, pos, ksize, extra, span uint64) ([]byte, error) {
	off := pageHeaderSize + uint64(i)*elementSize + pos
	if ksize == 0 || ksize > maxKeySize {
		return nil, fmt.Errorf("page %d: element %d has a key of %d bytes", id, i, ksize)
	}
	if off+ksize+extra > span {
		return nil, fmt.Errorf("page %d: element %d (%d+%d bytes at %d) runs past the page's %d bytes", id, i, ksize, extra, off, span)
	}
	return c.bytesAt(id, buf, off, ksize)
}

// checkOrder checks key i of a page against the previous key (or lo) and
// hi.
func checkOrder(id uint64, i int, key, prev, hi []byte) error {
	if prev != nil && (bytes.Compare(key, prev) < 0 || i > 0 && bytes.Equal(key, prev)) {
		return fmt.Errorf("page %d: key %d (%x) is out of order after %x", id, i, key, prev)
	}
	if hi != nil && bytes.Compare(key, hi) >= 0 {
		return fmt.Errorf("page %d: key %d (%x) is not below its parent's next key %x", id, i, key, hi)
	}
	return nil
}

func (c *boltChecker) checkBranch(id uint64, h pageHead, buf []byte, lo, hi []byte, depth int) error {
	if h.count == 0 {
		return fmt.Errorf("branch page %d has no elements", id)
	}
	span := h.span(c.ps)
	keys := make([][]byte, h.count)
	children := make([]uint64, h.count)
	prev := lo
	for i := range keys {
		e, err := c.bytesAt(id, buf, pageHeaderSize+uint64(i)*elementSize, elementSize)
		if err != nil {
			return err
		}
		key, err := c.elementKey(id, buf, i, uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), 0, span)
		if err != nil {
			return err
		}
		if err := checkOrder(id, i, key, prev, hi); err != nil {
			return err
		}
		keys[i], children[i], prev = key, ne.Uint64(e[8:]), key
	}
	for i, child := range children {
		next := hi
		if i+1 < len(keys) {
			next = keys[i+1]
		}
		if err := c.checkTree(child, keys[i], next, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leafElement is a leaf page's element.
type leafElement struct {
	flags, pos, ksize, vsize uint64
}

func (c *boltChecker) checkLeaf(id uint64, h pageHead, buf []byte, lo, hi []byte, depth int) error {
	span := h.span(c.ps)
	prev := lo
	for i := range int(h.count) {
		e, err := c.bytesAt(id, buf, pageHeaderSize+uint64(i)*elementSize, elementSize)
		if err != nil {
			return err
		}
		el := leafElement{uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))}
		if el.flags&^bucketFlag != 0 {
			return fmt.Errorf("page %d: element %d has flags %#x", id, i, el.flags)
		}
		key, err := c.elementKey(id, buf, i, el.pos, el.ksize, el.vsize, span)
		if err != nil {
			return err
		}
		if err := checkOrder(id, i, key, prev, hi); err != nil {
			return err
		}
		prev = key
		if el.flags&bucketFlag == 0 {
			continue
		}
		voff := pageHeaderSize + uint64(i)*elementSize + el.pos + el.ksize
		if err := c.checkBucket(id, buf, voff, el.vsize, depth); err != nil {
			return fmt.Errorf("bucket %q: %w", key, err)
		}
	}
	return nil
}

// checkBucket checks the bucket whose value, vsize bytes, lies at voff
// of page id.
func (c *boltChecker) checkBucket(id uint64, buf []byte, voff, vsize uint64, depth int) error {
	if vsize < bucketHeader {
		return fmt.Errorf("page %d: bucket value of %d bytes", id, vsize)
	}
	hdr, err := c.bytesAt(id, buf, voff, bucketHeader)
	if err != nil {
		return err
	}
	if root := ne.Uint64(hdr); root != 0 {
		return c.checkTree(root, nil, nil, depth+1)
	}
	if vsize < bucketHeader+pageHeaderSize || vsize > c.ps { // bbolt inlines buckets under a quarter page
		return fmt.Errorf("page %d: inline bucket value of %d bytes", id, vsize)
	}
	v, err := c.bytesAt(id, buf, voff, vsize)
	if err != nil {
		return err
	}
	return checkInline(id, v[bucketHeader:])
}

// checkInline checks an inline bucket's page p, held in a value of page
// id. bbolt inlines only leaves without buckets.
func checkInline(id uint64, p []byte) error {
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if flags != leafFlag {
		return fmt.Errorf("page %d: inline page of type %#x, want leaf", id, flags)
	}
	if pageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("page %d: inline page's %d elements overrun its %d bytes", id, count, len(p))
	}
	var prev []byte
	for i := range count {
		e := p[pageHeaderSize+i*elementSize:]
		flags, pos, ksize, vsize := ne.Uint32(e), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		off := uint64(pageHeaderSize+i*elementSize) + pos
		switch {
		case flags != 0:
			return fmt.Errorf("page %d: inline element %d has flags %#x", id, i, flags)
		case ksize == 0:
			return fmt.Errorf("page %d: inline element %d has an empty key", id, i)
		case off+ksize+vsize > uint64(len(p)):
			return fmt.Errorf("page %d: inline element %d runs past its %d bytes", id, i, len(p))
		}
		key := p[off : off+ksize]
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("page %d: inline key %d (%x) is out of order after %x", id, i, key, prev)
		}
		prev = key
	}
	return nil
}
