package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestAddDigits(t *testing.T) {
	for _, c := range []struct{ a, b, want []int }{
		{[]int{9, 9}, []int{1}, []int{1, 0, 0}},
		{[]int{0, 0, 7}, []int{0}, []int{7}},
		{[]int{1, 2, 3}, []int{8, 7, 7}, []int{1, 0, 0, 0}},
	} {
		if got := addDigits(c.a, c.b); !slices.Equal(got, c.want) {
			t.Errorf("%v + %v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestGenDataKinds(t *testing.T) {
	for _, kind := range []string{"reverse", "sort", "add", "seasonal"} {
		var out bytes.Buffer
		if err := GenData([]string{kind, "-n", "5", "-max", "4"}, &out, &out); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if lines := strings.Count(out.String(), "\n"); lines < 5 {
			t.Fatalf("%s: %d lines", kind, lines)
		}
	}
	if err := GenData([]string{"nope"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}
