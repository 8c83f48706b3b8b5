package shard

import (
	"errors"
	"slices"
	"testing"
)

func TestCollateSeq2Seq(t *testing.T) {
	exs := []Example{
		{Input: Seq{Tokens: []int32{1, 2, 3}}, Label: NoLabel, Output: Seq{Tokens: []int32{7, 9}}},
		{Input: Seq{Tokens: []int32{4}}, Label: NoLabel, Output: Seq{Tokens: []int32{8, 8, 9}}},
	}
	b, err := Collate(exs)
	if err != nil {
		t.Fatal(err)
	}
	if b.T != 3 || b.OutT != 3 || !slices.Equal(b.Tokens, []int32{1, 4, 2, 0, 3, 0}) || !slices.Equal(b.Targets, []int32{7, 8, 9, 8, 0, 9}) {
		t.Fatalf("batch %+v", b)
	}
	if !slices.Equal(b.OutLengths, []int{2, 3}) || b.Labels != nil {
		t.Fatalf("out lengths %v labels %v", b.OutLengths, b.Labels)
	}
	if got := b.DecoderInputs(5); !slices.Equal(got, []int32{5, 5, 7, 8, 9, 8}) {
		t.Fatalf("decoder inputs %v", got)
	}
	if p, n := b.Padding(); p != 2 || n != 6 {
		t.Fatalf("padding %d of %d", p, n)
	}
}

func TestCollateMixedShapes(t *testing.T) {
	tok := Example{Input: Seq{Tokens: []int32{1}}, Label: 0}
	for name, other := range map[string]Example{
		"features":   {Input: Seq{Values: []float32{1}, Dim: 1}, Label: 0},
		"no label":   {Input: Seq{Tokens: []int32{1}}, Label: NoLabel},
		"has output": {Input: Seq{Tokens: []int32{1}}, Label: 0, Output: Seq{Tokens: []int32{2}}},
	} {
		if _, err := Collate([]Example{tok, other}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
