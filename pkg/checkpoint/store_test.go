package checkpoint

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sample returns a checkpoint of step with recognizable bytes and the
// given val_loss (none when loss < 0).
func sample(step uint64, loss float64) *Checkpoint {
	c := &Checkpoint{
		Step:       step,
		Params:     slices.Repeat([]byte{byte(step)}, 1000),
		Optimizer:  []byte{1, 2, 3, byte(step)},
		Schedule:   []byte("schedule"),
		Hidden:     slices.Repeat([]byte{0xAB}, 64),
		ConfigHash: "sha256:abc",
		Metrics:    map[string]float64{"train_loss": 2.5},
		WallTime:   time.Date(2025, 1, 2, 3, 4, 5, int(step), time.UTC),
	}
	if loss >= 0 {
		c.Metrics["val_loss"] = loss
	}
	return c
}

func mustSave(t *testing.T, s *Store, cps ...*Checkpoint) {
	t.Helper()
	for _, c := range cps {
		if err := s.Save(testCtx(t), c); err != nil {
			t.Fatal(err)
		}
	}
}

func steps(t *testing.T, s *Store) (all []uint64, best uint64) {
	t.Helper()
	infos, err := s.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		all = append(all, in.Step)
		if in.Best {
			best = in.Step
		}
	}
	return all, best
}

func TestSaveLatestRoundTrip(t *testing.T) {
	s := openTest(t, Options{})
	want := sample(120, 1.5)
	orig := *want
	mustSave(t, s, sample(110, 2), want)
	got, rep, err := s.Latest(testCtx(t))
	if err != nil || len(rep.Skipped) != 0 {
		t.Fatalf("Latest: %v %v", err, rep)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Latest = %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(*want, orig) {
		t.Fatal("Save modified its argument")
	}
	// The store survives a reopen.
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, _, err = s2.Latest(testCtx(t))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %v %+v", err, got)
	}
}

func TestSaveFillsWallTime(t *testing.T) {
	s := openTest(t, Options{})
	c := sample(1, 1)
	c.WallTime = time.Time{}
	before := time.Now()
	mustSave(t, s, c)
	got, _, err := s.Latest(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.WallTime.Before(before.Add(-time.Second)) || !c.WallTime.IsZero() {
		t.Fatalf("wall time %v (argument %v)", got.WallTime, c.WallTime)
	}
}

func TestEmpty(t *testing.T) {
	s := openTest(t, Options{})
	if _, _, err := s.Latest(testCtx(t)); !errors.Is(err, ErrNoCheckpoint) || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("Latest = %v, want ErrNoCheckpoint naming the file", err)
	}
	if _, _, err := s.Best(testCtx(t)); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Best = %v, want ErrNoCheckpoint", err)
	}
	mustSave(t, s, sample(1, -1))
	if _, _, err := s.Best(testCtx(t)); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Best without val_loss = %v, want ErrNoCheckpoint", err)
	}
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name     string
		keep     int
		losses   []float64 // step i+1 gets losses[i]; < 0 means no val_loss
		wantAll  []uint64
		wantBest uint64
	}{
		{"default keep", 0, []float64{5, 4, 3, 2, 1}, []uint64{3, 4, 5}, 5},
		{"best kept", 3, []float64{5, 1, 3, 4, 6, 7, 8}, []uint64{2, 5, 6, 7}, 2},
		{"best replaced", 2, []float64{5, 1, 3, 4, 0.5}, []uint64{4, 5}, 5},
		{"tie keeps earliest", 1, []float64{1, 1, 1}, []uint64{1, 3}, 1},
		{"no val_loss", 2, []float64{-1, -1, -1}, []uint64{2, 3}, 0},
		{"keep one", 1, []float64{3, 2, 9}, []uint64{2, 3}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{Keep: tt.keep})
			for i, l := range tt.losses {
				mustSave(t, s, sample(uint64(i+1), l))
			}
			all, best := steps(t, s)
			if !slices.Equal(all, tt.wantAll) || best != tt.wantBest {
				t.Fatalf("kept %v best %d, want %v best %d", all, best, tt.wantAll, tt.wantBest)
			}
			if tt.wantBest != 0 {
				b, _, err := s.Best(testCtx(t))
				if err != nil || b.Step != tt.wantBest {
					t.Fatalf("Best = %v, %v", b, err)
				}
			}
		})
	}
}

// TestTimeline checks that saving an earlier step drops the later ones,
// and that saving a step again replaces it.
func TestTimeline(t *testing.T) {
	s := openTest(t, Options{Keep: 10})
	for i := uint64(1); i <= 5; i++ {
		mustSave(t, s, sample(i, float64(10-i)))
	}
	again := sample(3, 9)
	again.Params = []byte("rerun")
	mustSave(t, s, again)
	all, best := steps(t, s)
	if !slices.Equal(all, []uint64{1, 2, 3}) || best != 2 {
		t.Fatalf("kept %v best %d, want [1 2 3] best 2", all, best)
	}
	got, _, err := s.Latest(testCtx(t))
	if err != nil || string(got.Params) != "rerun" {
		t.Fatalf("Latest = %v, %v", got, err)
	}
}

// damage edits the stored record or checksum of step directly through
// bbolt, as a torn or bit-rotted write would leave it.
type damage func(rec, sum []byte) (newRec, newSum []byte)

func damageStore(t *testing.T, s *Store, step uint64, f damage) {
	t.Helper()
	damagedOnPurpose.Store(s, true)
	err := s.db.Update(func(tx *bolt.Tx) error {
		recs, sums := tx.Bucket(bucketRecords), tx.Bucket(bucketSums)
		rec, sm := f(slices.Clone(recs.Get(key(step))), slices.Clone(sums.Get(key(step))))
		if err := recs.Put(key(step), rec); err != nil {
			return err
		}
		if sm == nil {
			return sums.Delete(key(step))
		}
		return sums.Put(key(step), sm)
	})
	if err != nil {
		t.Fatal(err)
	}
}

var damages = []struct {
	name string
	f    damage
	want string // in the error
}{
	{"flipped byte", func(r, s []byte) ([]byte, []byte) { r[len(r)/2] ^= 0x10; return r, s }, "checksum mismatch"},
	{"torn tail", func(r, s []byte) ([]byte, []byte) { return r[:len(r)-100], s }, "checksum mismatch"},
	{"torn, checksum of the torn bytes", func(r, s []byte) ([]byte, []byte) {
		r = r[:len(r)-100]
		return r, sum(r)
	}, "params: length 1000 exceeds"},
	{"zeroed", func(r, s []byte) ([]byte, []byte) { clear(r); return r, sum(r) }, "magic"},
	{"no checksum", func(r, s []byte) ([]byte, []byte) { return r, nil }, "checksum entry has 0 bytes"},
	{"bad checksum", func(r, s []byte) ([]byte, []byte) { s[0] ^= 1; return r, s }, "checksum mismatch"},
	{"other step inside", func(r, s []byte) ([]byte, []byte) {
		var c Checkpoint
		if err := c.UnmarshalBinary(r); err != nil {
			panic(err)
		}
		c.Step++
		r, _ = c.MarshalBinary()
		return r, sum(r)
	}, "record holds step 4"},
}

// TestTornFallback damages the newest checkpoint and checks that Latest
// falls back to the previous one and says so.
func TestTornFallback(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			s := openTest(t, Options{})
			mustSave(t, s, sample(1, 3), sample(2, 2), sample(3, 1))
			damageStore(t, s, 3, d.f)
			got, rep, err := s.Latest(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if got.Step != 2 || len(rep.Skipped) != 1 || rep.Skipped[0].Step != 3 {
				t.Fatalf("Latest = step %d, report %v; want step 2 skipping 3", got.Step, rep)
			}
			err = rep.Skipped[0].Err
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), d.want) ||
				!strings.Contains(err.Error(), s.Path()+": step 3") {
				t.Fatalf("skip reason %q, want ErrDamaged naming file, step and %q", err, d.want)
			}
			if !strings.Contains(rep.String(), "skipped 1 damaged") {
				t.Fatalf("report %q", rep)
			}
			// The damaged checkpoint had the best val_loss: Best falls back too.
			b, brep, err := s.Best(testCtx(t))
			if err != nil || b.Step != 2 || len(brep.Skipped) == 0 {
				t.Fatalf("Best = %v %v %v", b, brep, err)
			}
			infos, err := s.List(testCtx(t))
			if err != nil || len(infos) != 3 || infos[2].OK || infos[2].Err == nil || !infos[1].OK || !infos[1].Best {
				t.Fatalf("List = %+v, %v", infos, err)
			}
		})
	}
}

// TestAllDamaged runs without a backup, which Latest and Best would
// otherwise fall back to (see TestReadFallsBackToBackup).
func TestAllDamaged(t *testing.T) {
	s := openTest(t, Options{NoBackup: true})
	mustSave(t, s, sample(1, 1), sample(2, 1))
	for _, st := range []uint64{1, 2} {
		damageStore(t, s, st, damages[0].f)
	}
	_, rep, err := s.Latest(testCtx(t))
	if !errors.Is(err, ErrDamaged) || errors.Is(err, ErrNoCheckpoint) || len(rep.Skipped) != 2 {
		t.Fatalf("Latest = %v, %v; want ErrDamaged (not ErrNoCheckpoint) skipping 2", err, rep)
	}
	if _, _, err := s.Best(testCtx(t)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Best = %v, want ErrDamaged", err)
	}
	// A new save prunes the damaged ones as they age out, and never
	// keeps one as the best.
	mustSave(t, s, sample(3, 5), sample(4, 5), sample(5, 5))
	all, best := steps(t, s)
	if !slices.Equal(all, []uint64{3, 4, 5}) || best != 3 {
		t.Fatalf("kept %v best %d", all, best)
	}
	damagedOnPurpose.Delete(s)
}

func TestLockSameProcess(t *testing.T) {
	s := openTest(t, Options{})
	start := time.Now()
	_, err := Open(s.Path(), Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("second Open = %v, want ErrLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

// TestLockOtherProcess runs this test binary again as a second process
// (see TestMain) while this one holds the store.
func TestLockOtherProcess(t *testing.T) {
	s := openTest(t, Options{})
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+s.Path())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), "locked=true") {
		t.Fatalf("second process: %v: %s", err, out)
	}
	// Once the first store closes, the second process gets in.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+s.Path())
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "opened") {
		t.Fatalf("after Close: %v: %s", err, out)
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	errs := []error{s.Save(ctx, sample(1, 1)), s.Close()}
	_, _, err := s.Latest(ctx)
	errs = append(errs, err)
	_, _, err = s.Best(ctx)
	errs = append(errs, err)
	_, err = s.List(ctx)
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("call %d: %v, want ErrClosed", i, err)
		}
	}
}

func TestCanceled(t *testing.T) {
	s := openTest(t, Options{})
	mustSave(t, s, sample(1, 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Save(ctx, sample(2, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save = %v", err)
	}
	if _, _, err := s.Latest(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Latest = %v", err)
	}
	if all, _ := steps(t, s); !slices.Equal(all, []uint64{1}) {
		t.Fatalf("canceled Save wrote: %v", all)
	}
}

func TestSaveInvalid(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.Save(testCtx(t), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil: %v", err)
	}
	c := sample(7, 1)
	c.Metrics["val_loss"] = nan()
	if err := s.Save(testCtx(t), c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "step 7") {
		t.Fatalf("NaN loss: %v, want ErrInvalid naming step 7", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir+"/x.db", Options{Keep: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Keep -1: %v", err)
	}
	if _, err := Open(dir+"/x.db", Options{Timeout: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Timeout -1: %v", err)
	}
	junk := dir + "/junk.db"
	if err := os.WriteFile(junk, slices.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, Options{}); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk file: %v, want an error naming it", err)
	}
	// A store of a future format is refused, not misread.
	path := dir + "/future.db"
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyFormat, []byte{2})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("format 2: %v, want ErrFormat", err)
	}
}

func TestConcurrent(t *testing.T) {
	s := openTest(t, Options{Keep: 2})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := uint64(1); i <= 30; i++ {
			if err := s.Save(ctx, sample(i, float64(i%7))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 30 {
				_, rep, err := s.Latest(ctx)
				if err != nil && !errors.Is(err, ErrNoCheckpoint) || len(rep.Skipped) > 0 {
					t.Error(err, rep)
					return
				}
			}
		})
	}
	wg.Wait()
	if all, best := steps(t, s); !slices.Equal(all, []uint64{7, 29, 30}) || best != 7 {
		t.Fatalf("kept %v best %d", all, best)
	}
}
