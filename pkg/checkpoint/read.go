package checkpoint

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report says which checkpoints a read skipped because they were damaged,
// and whether the checkpoint came from the store's backup.
type Report struct {
	// Skipped lists them in the order they were tried (newest first for
	// Latest); after a fallback to the backup, the store's own come
	// first.
	Skipped []Damaged
	// Recovery is non-nil when the checkpoint came from the backup: a
	// reader was opened on it (see Store.Recovery), or this read fell
	// back to it because the store's file faulted or every checkpoint in
	// it was damaged.
	Recovery *Recovery
}

// Damaged is a checkpoint a read skipped.
type Damaged struct {
	Step uint64 // the skipped checkpoint's step
	Err  error  // a *DamagedError naming the file, the step and the reason
}

// String is "" for an empty report, else it says where the checkpoint
// came from if not from the store's file, and names every skipped step and
// why, for a log line.
func (r Report) String() string {
	var parts []string
	if r.Recovery != nil {
		parts = append(parts, r.Recovery.String())
	}
	if len(r.Skipped) > 0 {
		errs := make([]string, len(r.Skipped))
		for i, d := range r.Skipped {
			errs[i] = d.Err.Error()
		}
		parts = append(parts, fmt.Sprintf("skipped %d damaged checkpoint(s): %s", len(r.Skipped), strings.Join(errs, "; ")))
	}
	return strings.Join(parts, "; ")
}

func (r *Report) skip(err *DamagedError) {
	r.Skipped = append(r.Skipped, Damaged{Step: err.Step, Err: err})
}

// Info describes a stored checkpoint, for listing.
type Info struct {
	Step     uint64             // the checkpoint's step (its key)
	WallTime time.Time          // zero when the record's head does not decode
	Size     int                // bytes of the encoded record
	Metrics  map[string]float64 // nil when the record's head does not decode
	OK       bool               // the checksum matches and the record decodes
	Err      error              // why not OK: a *DamagedError
	Best     bool               // the checkpoint Best returns
}

// Latest returns the newest good checkpoint. Newer ones that are damaged
// are skipped and listed in the Report, so the caller can say it fell back.
// It returns ErrNoCheckpoint when the store is empty, and an error wrapping
// ErrDamaged, with the full report, when every checkpoint is damaged or
// the file is (a *FileDamagedError) and the backup has no good checkpoint
// either; when the backup has one, Latest returns that, and
// Report.Recovery says so.
func (s *Store) Latest(ctx context.Context) (*Checkpoint, Report, error) {
	return s.withBackup(ctx, (*Store).latest)
}

// Best returns the good checkpoint with the lowest Options.BestMetric (the
// earliest of equals). Damaged candidates that would have been better are
// listed in the Report. It returns ErrNoCheckpoint when no checkpoint has the
// metric, and an error wrapping ErrDamaged when every one that has it is
// damaged or the file is; then, like Latest, it reads the backup's best.
func (s *Store) Best(ctx context.Context) (*Checkpoint, Report, error) {
	return s.withBackup(ctx, (*Store).best)
}

// withBackup runs read on s and, when it finds only damage, on the
// backup. It is not done for a store open on its backup already.
func (s *Store) withBackup(ctx context.Context, read func(*Store, context.Context) (*Checkpoint, Report, error)) (*Checkpoint, Report, error) {
	cp, rep, err := read(s, ctx)
	if s.file != s.path {
		rep.Recovery = s.recovery
	}
	if err == nil || !errors.Is(err, ErrDamaged) || s.file != s.path || ctx.Err() != nil {
		return cp, rep, err
	}
	b, _, berr := openBackup(s.path, s.opts)
	if berr != nil {
		return cp, rep, err
	}
	defer closeQuietly(b)
	bcp, brep, berr := read(b, ctx)
	if berr != nil {
		return cp, rep, err
	}
	brep.Skipped = append(rep.Skipped, brep.Skipped...)
	brep.Recovery = &Recovery{Reason: err, Backup: b.file, Step: bcp.Step}
	return bcp, brep, nil
}

func (s *Store) latest(ctx context.Context) (*Checkpoint, Report, error) {
	var (
		rep Report
		out *Checkpoint
	)
	if err := s.begin(ctx, "latest"); err != nil {
		return nil, rep, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		k, v, err := s.newestGood(ctx, tx, &rep)
		if k == nil {
			return err
		}
		cp, derr := s.load(tx, k, v)
		if derr != nil { // cannot happen: newestGood checked it
			rep.skip(derr)
			return nil
		}
		out = cp
		return nil
	})
	return s.result(out, rep, err, "latest")
}

// newestGood returns the newest record that passes check, and lists the
// newer ones, damaged, in rep.
func (s *Store) newestGood(ctx context.Context, tx *bolt.Tx, rep *Report) (k, v []byte, err error) {
	c := tx.Bucket(bucketRecords).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if len(k) != 8 {
			continue // not a checkpoint's key
		}
		if derr := s.check(tx, k, v); derr != nil {
			rep.skip(derr)
			continue
		}
		return k, v, nil
	}
	return nil, nil, nil
}

// probe returns the step of the newest good checkpoint, as Latest would
// return it, with Latest's report and errors, but without decoding it.
func (s *Store) probe() (uint64, Report, error) {
	var (
		rep  Report
		step uint64
		out  *Checkpoint
	)
	ctx := context.Background()
	if err := s.begin(ctx, "latest"); err != nil {
		return 0, rep, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		k, _, err := s.newestGood(ctx, tx, &rep)
		if k != nil {
			step, out = binary.BigEndian.Uint64(k), &Checkpoint{}
		}
		return err
	})
	_, rep, err = s.result(out, rep, err, "latest")
	return step, rep, err
}

// At returns the checkpoint of step, verified: ErrNoCheckpoint when the
// store has none of that step, a *DamagedError when it is damaged.
func (s *Store) At(ctx context.Context, step uint64) (*Checkpoint, error) {
	if err := s.begin(ctx, "read"); err != nil {
		return nil, err
	}
	var out *Checkpoint
	err := s.view(func(tx *bolt.Tx) error {
		k := key(step)
		v := tx.Bucket(bucketRecords).Get(k)
		if v == nil {
			return fmt.Errorf("step %d: %w", step, ErrNoCheckpoint)
		}
		cp, derr := s.load(tx, k, v)
		if derr != nil {
			return derr
		}
		out = cp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read %s: %w", s.file, err)
	}
	return out, nil
}

// result turns a read's outcome into Latest's or Best's return values.
func (s *Store) result(out *Checkpoint, rep Report, err error, op string) (*Checkpoint, Report, error) {
	switch {
	case err != nil:
		return nil, rep, fmt.Errorf("checkpoint: %s %s: %w", op, s.file, err)
	case out != nil:
		return out, rep, nil
	case len(rep.Skipped) > 0:
		return nil, rep, fmt.Errorf("checkpoint: %s %s: all %d checkpoint(s) are damaged, newest: %w",
			op, s.file, len(rep.Skipped), rep.Skipped[0].Err)
	}
	return nil, rep, fmt.Errorf("checkpoint: %s %s: %w", op, s.file, ErrNoCheckpoint)
}

func (s *Store) best(ctx context.Context) (*Checkpoint, Report, error) {
	var (
		rep Report
		out *Checkpoint
	)
	if err := s.begin(ctx, "best"); err != nil {
		return nil, rep, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		best, ok, skipped := s.findBest(tx)
		rep.Skipped = skipped
		if !ok {
			return ctx.Err()
		}
		v := tx.Bucket(bucketRecords).Get(key(best.step))
		cp, derr := s.load(tx, key(best.step), v)
		if derr != nil { // cannot happen: best verified it in this tx
			rep.skip(derr)
			return nil
		}
		out = cp
		return nil
	})
	return s.result(out, rep, err, "best")
}

// candidate is a checkpoint that has the best metric.
type candidate struct {
	step uint64
	loss float64
}

// findBest finds the good checkpoint with the lowest best metric. It reads the
// heads of every record and verifies candidates in order of their metric
// until one passes, so a damaged record never becomes the best. skipped
// lists the damaged records met on the way.
func (s *Store) findBest(tx *bolt.Tx) (best candidate, ok bool, skipped []Damaged) {
	var rep Report
	var cands []candidate
	c := tx.Bucket(bucketRecords).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			continue
		}
		step := binary.BigEndian.Uint64(k)
		h, err := decodeHead(v)
		if err != nil {
			rep.skip(&DamagedError{Path: s.file, Step: step, Err: err})
			continue
		}
		if loss, has := h.metrics[s.opts.BestMetric]; has {
			cands = append(cands, candidate{step, loss})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.loss, b.loss), cmp.Compare(a.step, b.step))
	})
	for _, cand := range cands {
		k := key(cand.step)
		if err := s.check(tx, k, tx.Bucket(bucketRecords).Get(k)); err != nil {
			rep.skip(err)
			continue
		}
		return cand, true, rep.Skipped
	}
	return candidate{}, false, rep.Skipped
}

// List describes every stored checkpoint, oldest first, verifying each.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	var infos []Info
	if err := s.begin(ctx, "list"); err != nil {
		return nil, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		best, hasBest, _ := s.findBest(tx)
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(k) != 8 {
				continue
			}
			infos = append(infos, s.info(tx, k, v, hasBest && best.step == binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", s.file, err)
	}
	return infos, nil
}

func (s *Store) info(tx *bolt.Tx, k, v []byte, best bool) Info {
	in := Info{Step: binary.BigEndian.Uint64(k), Size: len(v), Best: best}
	if h, err := decodeHead(v); err == nil {
		in.WallTime, in.Metrics = h.wall, h.metrics
	}
	if err := s.check(tx, k, v); err != nil {
		in.Err = err
		return in
	}
	in.OK = true
	return in
}

// verify checks the record v of key k against its stored checksum.
func (s *Store) verify(tx *bolt.Tx, k, v []byte) *DamagedError {
	step := binary.BigEndian.Uint64(k)
	want := tx.Bucket(bucketSums).Get(k)
	switch {
	case len(want) != 4:
		return &DamagedError{Path: s.file, Step: step, Err: fmt.Errorf("checksum entry has %d bytes, want 4", len(want))}
	case string(want) != string(sum(v)):
		return &DamagedError{Path: s.file, Step: step, Err: fmt.Errorf(
			"checksum mismatch: stored %#08x, computed %#08x over %d bytes",
			binary.BigEndian.Uint32(want), binary.BigEndian.Uint32(sum(v)), len(v))}
	}
	return nil
}

// check verifies the record v of key k: its checksum, its decoding, and
// that it holds the step of its key.
func (s *Store) check(tx *bolt.Tx, k, v []byte) *DamagedError {
	if err := s.verify(tx, k, v); err != nil {
		return err
	}
	step := binary.BigEndian.Uint64(k)
	h, _, err := decodeRecord(v)
	if err != nil {
		return &DamagedError{Path: s.file, Step: step, Err: err}
	}
	if h.step != step {
		return &DamagedError{Path: s.file, Step: step, Err: fmt.Errorf("record holds step %d", h.step)}
	}
	return nil
}

// load checks and decodes the record v of key k, copying it out of tx.
func (s *Store) load(tx *bolt.Tx, k, v []byte) (*Checkpoint, *DamagedError) {
	if err := s.check(tx, k, v); err != nil {
		return nil, err
	}
	cp := new(Checkpoint)
	if err := cp.UnmarshalBinary(v); err != nil { // cannot fail after check
		return nil, &DamagedError{Path: s.file, Step: binary.BigEndian.Uint64(k), Err: err}
	}
	return cp, nil
}
