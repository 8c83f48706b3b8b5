package checkpoint

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Report says which checkpoints a read skipped because they were damaged.
type Report struct {
	// Skipped lists them in the order they were tried (newest first for
	// Latest).
	Skipped []Damaged
}

// Damaged is a checkpoint a read skipped.
type Damaged struct {
	Step uint64 // the skipped checkpoint's step
	Err  error  // a *DamagedError naming the file, the step and the reason
}

// String is "" for an empty report, else it names every skipped step and
// why, for a log line.
func (r Report) String() string {
	if len(r.Skipped) == 0 {
		return ""
	}
	parts := make([]string, len(r.Skipped))
	for i, d := range r.Skipped {
		parts[i] = d.Err.Error()
	}
	return fmt.Sprintf("skipped %d damaged checkpoint(s): %s", len(r.Skipped), strings.Join(parts, "; "))
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
// ErrDamaged, with the full report, when every checkpoint is damaged.
func (s *Store) Latest(ctx context.Context) (*Checkpoint, Report, error) {
	var (
		rep Report
		out *Checkpoint
	)
	if err := s.begin(ctx, "latest"); err != nil {
		return nil, rep, err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(k) != 8 {
				continue // not a checkpoint's key
			}
			cp, derr := s.load(tx, k, v)
			if derr != nil {
				rep.skip(derr)
				continue
			}
			out = cp
			return nil
		}
		return nil
	})
	return s.result(out, rep, err, "latest")
}

// At returns the checkpoint of step, verified: ErrNoCheckpoint when the
// store has none of that step, a *DamagedError when it is damaged.
func (s *Store) At(ctx context.Context, step uint64) (*Checkpoint, error) {
	if err := s.begin(ctx, "read"); err != nil {
		return nil, err
	}
	var out *Checkpoint
	err := s.db.View(func(tx *bolt.Tx) error {
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
		return nil, fmt.Errorf("checkpoint: read %s: %w", s.path, err)
	}
	return out, nil
}

// result turns a read's outcome into Latest's or Best's return values.
func (s *Store) result(out *Checkpoint, rep Report, err error, op string) (*Checkpoint, Report, error) {
	switch {
	case err != nil:
		return nil, rep, fmt.Errorf("checkpoint: %s %s: %w", op, s.path, err)
	case out != nil:
		return out, rep, nil
	case len(rep.Skipped) > 0:
		return nil, rep, fmt.Errorf("checkpoint: %s %s: all %d checkpoint(s) are damaged, newest: %w",
			op, s.path, len(rep.Skipped), rep.Skipped[0].Err)
	}
	return nil, rep, fmt.Errorf("checkpoint: %s %s: %w", op, s.path, ErrNoCheckpoint)
}

// Best returns the good checkpoint with the lowest Options.BestMetric (the
// earliest of equals). Damaged candidates that would have been better are
// listed in the Report. It returns ErrNoCheckpoint when no checkpoint has the
// metric, and an error wrapping ErrDamaged when every one that has it is
// damaged.
func (s *Store) Best(ctx context.Context) (*Checkpoint, Report, error) {
	var (
		rep Report
		out *Checkpoint
	)
	if err := s.begin(ctx, "best"); err != nil {
		return nil, rep, err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		best, ok, skipped := s.best(tx)
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

// best finds the good checkpoint with the lowest best metric. It reads the
// heads of every record and verifies candidates in order of their metric
// until one passes, so a damaged record never becomes the best. skipped
// lists the damaged records met on the way.
func (s *Store) best(tx *bolt.Tx) (best candidate, ok bool, skipped []Damaged) {
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
			rep.skip(&DamagedError{Path: s.path, Step: step, Err: err})
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
	err := s.db.View(func(tx *bolt.Tx) error {
		best, hasBest, _ := s.best(tx)
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
		return nil, fmt.Errorf("checkpoint: list %s: %w", s.path, err)
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
		return &DamagedError{Path: s.path, Step: step, Err: fmt.Errorf("checksum entry has %d bytes, want 4", len(want))}
	case string(want) != string(sum(v)):
		return &DamagedError{Path: s.path, Step: step, Err: fmt.Errorf(
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
		return &DamagedError{Path: s.path, Step: step, Err: err}
	}
	if h.step != step {
		return &DamagedError{Path: s.path, Step: step, Err: fmt.Errorf("record holds step %d", h.step)}
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
		return nil, &DamagedError{Path: s.path, Step: binary.BigEndian.Uint64(k), Err: err}
	}
	return cp, nil
}
