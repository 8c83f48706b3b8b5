package schedule

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

func plateauSchedule(t testing.TB) *Schedule {
	c := DefaultConfig()
	c.Kind, c.Plateau.Patience, c.Plateau.Cooldown = KindPlateau, 1, 2
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStateResume checks that a schedule restored at any point continues
// exactly as the original does.
func TestStateResume(t *testing.T) {
	losses := []float64{3, 2.5, 2.5, 2.6, 2.4, 2.4, 2.4, 2.4, 2.4, 1, 1, 1, 1, 1, 1}
	ref := plateauSchedule(t)
	var want []float64
	for i, l := range losses {
		mustObserve(t, ref, i, l)
		want = append(want, ref.LR(i+1, 1))
	}
	for cut := range losses {
		s := plateauSchedule(t)
		for i, l := range losses {
			if i == cut {
				s = restart(t, s)
			}
			mustObserve(t, s, i, l)
			if got := s.LR(i+1, 1); got != want[i] {
				t.Fatalf("restart before %d: observation %d: LR %v, want %v (bit-exact)", cut, i, got, want[i])
			}
		}
	}
	// The restored schedule also rejects a replayed observation.
	s := restart(t, ref)
	if _, err := s.Observe(len(losses)-1, 1); !errors.Is(err, ErrStep) {
		t.Fatalf("replayed observation: %v, want ErrStep", err)
	}
}

// reseal recomputes the checksum of a state record after an edit.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[33:], crc32.Checksum(b[:33], castagnoli))
	return b
}

func TestUnmarshalBinaryRejects(t *testing.T) {
	s := plateauSchedule(t)
	mustObserve(t, s, 0, 2)
	mustObserve(t, s, 1, 2)
	mustObserve(t, s, 2, 2)
	good, _ := s.MarshalBinary()
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	putF := func(off int, v float64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], math.Float64bits(v)); reseal(b) }
	}
	fresh, _ := plateauSchedule(t).MarshalBinary()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", good[:36]},
		{"long", append(bytes.Clone(good), 0)},
		{"version", edit(func(b []byte) { b[0] = 2; reseal(b) })},
		{"flipped bit", edit(func(b []byte) { b[20] ^= 1 })},
		{"checksum", edit(func(b []byte) { b[36] ^= 0x80 })},
		{"nan best", edit(putF(1, math.NaN()))},
		{"-inf best", edit(putF(1, math.Inf(-1)))},
		{"zero factor", edit(putF(17, 0))},
		{"factor > 1", edit(putF(17, 1.5))},
		{"nan factor", edit(putF(17, math.NaN()))},
		{"last < -1", edit(func(b []byte) { binary.LittleEndian.PutUint64(b[25:], uint64(1<<64-2)); reseal(b) })},
		{"best before observation", func() []byte {
			b := bytes.Clone(fresh)
			binary.LittleEndian.PutUint64(b[1:], math.Float64bits(1))
			return reseal(b)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plateauSchedule(t)
			before, _ := r.MarshalBinary()
			if err := r.UnmarshalBinary(tt.data); !errors.Is(err, ErrState) {
				t.Fatalf("UnmarshalBinary = %v, want ErrState", err)
			}
			if after, _ := r.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatal("rejected state changed the schedule")
			}
		})
	}
	if err := plateauSchedule(t).UnmarshalBinary(good); err != nil {
		t.Fatalf("good state: %v", err)
	}
}

// FuzzUnmarshalBinary checks that no input panics and that every accepted
// state encodes back to the same bytes and yields a usable schedule.
func FuzzUnmarshalBinary(f *testing.F) {
	s := plateauSchedule(f)
	b, _ := s.MarshalBinary()
	f.Add(b)
	for i, l := range []float64{2, 2, 2, 1} {
		if _, err := s.Observe(i, l); err != nil {
			f.Fatal(err)
		}
	}
	b, _ = s.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkState(t, data)
		if len(data) == stateLen {
			// Past the checksum, to reach the field checks.
			checkState(t, reseal(bytes.Clone(data)))
		}
	})
}

func checkState(t *testing.T, data []byte) {
	{
		s := plateauSchedule(t)
		if err := s.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		out, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("round trip: %x, %v; want %x", out, err, data)
		}
		if lr := s.LR(1<<20, 1); !(lr >= 0) || math.IsInf(lr, 0) {
			t.Fatalf("LR %v from accepted state", lr)
		}
		_, _ = s.Observe(math.MaxInt, 1)
	}
}
