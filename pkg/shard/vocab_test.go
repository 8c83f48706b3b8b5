package shard

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestVocabIDs(t *testing.T) {
	v := NewCharVocab([]rune("hello, wörld"))
	// <unk>, then ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w', 'ö' in rune order.
	if v.Size() != 11 || v.ID(' ') != 1 || v.ID('ö') != 10 || v.ID('z') != Unk {
		t.Fatalf("size %d, ids %d %d %d", v.Size(), v.ID(' '), v.ID('ö'), v.ID('z'))
	}
	ids := v.Encode("hölz")
	if !slices.Equal(ids, []int32{5, 10, 6, Unk}) {
		t.Fatalf("Encode = %v", ids)
	}
	if got := v.Decode(ids); got != "höl\uFFFD" {
		t.Fatalf("Decode = %q", got)
	}
	b := NewByteVocab()
	if got := b.Decode(b.Encode("hö")); got != "hö" || b.Size() != 256 {
		t.Fatalf("byte round trip %q", got)
	}
}

func TestVocabSerialise(t *testing.T) {
	for _, v := range []*Vocab{NewCharVocab([]rune("abc\u00e9\U0001F600")), NewByteVocab(), NewCharVocab(nil)} {
		bin, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var a Vocab
		if err := a.UnmarshalBinary(bin); err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var j Vocab
		if err := json.Unmarshal(js, &j); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		for _, got := range []*Vocab{&a, &j} {
			if got.Level() != v.Level() || !slices.Equal(got.Runes(), v.Runes()) || got.ID('\u00e9') != v.ID('\u00e9') {
				t.Fatalf("round trip of %s differs", js)
			}
		}
	}
	bin, _ := NewCharVocab([]rune("ab")).MarshalBinary()
	for i := range bin {
		bad := slices.Clone(bin)
		bad[i] ^= 0x10
		var v Vocab
		if err := v.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip byte %d: err %v", i, err)
		}
	}
	var v Vocab
	for _, js := range []string{`{"level":"char","runes":[98,97]}`, `{"level":"word"}`, `{"level":"byte","runes":[1]}`} {
		if err := json.Unmarshal([]byte(js), &v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v", js, err)
		}
	}
}

func FuzzVocabUnmarshal(f *testing.F) {
	good, _ := NewCharVocab([]rune("xyz")).MarshalBinary()
	f.Add(good)
	f.Add([]byte("RVOC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Vocab
		if err := v.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, _ := v.MarshalBinary()
		if !slices.Equal(again, b) {
			t.Fatal("accepted vocabulary does not re-encode to its bytes")
		}
	})
}
