package cluster

import (
	"errors"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	s := State{Step: 42, Params: []byte("params"), Optim: []byte{1, 2, 3}, Carry: []float32{1.5, -2, 0}}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Step != 42 || string(got.Params) != "params" || len(got.Optim) != 3 || got.Carry[1] != -2 {
		t.Fatalf("round trip: %+v", got)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if err := got.UnmarshalBinary(c); !errors.Is(err, ErrBadState) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for n := 0; n < len(b); n++ {
		if err := got.UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("truncation to %d bytes accepted", n)
		}
	}
}

func FuzzStateUnmarshal(f *testing.F) {
	s := State{Step: 1, Params: []byte("p"), Carry: []float32{1}}
	b, _ := s.MarshalBinary()
	f.Add(b)
	f.Add([]byte("RSTA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		_ = s.UnmarshalBinary(data) // must not panic
	})
}
