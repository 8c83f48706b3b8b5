package affinity

import (
	"reflect"
	"runtime"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for in, want := range map[string][]int{
		"0": {0}, "0,2": {0, 2}, "0-3,8": {0, 1, 2, 3, 8}, " 1 , 1-2": {1, 2},
	} {
		got, err := Parse(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := Parse(Format(got)); !reflect.DeepEqual(back, got) {
			t.Errorf("Format(%v) = %q does not parse back", got, Format(got))
		}
	}
	for _, bad := range []string{"", "a", "-1", "3-1", "1-", "0-99999"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	avail := []int{2, 3, 5, 7}
	if got := Split(avail, 2, 2); !reflect.DeepEqual(got, [][]int{{2, 3}, {5, 7}}) {
		t.Errorf("Split 2x2 = %v", got)
	}
	if got := Split(avail, 4, 1); len(got) != 4 || got[3][0] != 7 {
		t.Errorf("Split 4x1 = %v", got)
	}
	if got := Split(avail, 3, 2); got != nil {
		t.Errorf("Split 3x2 of 4 CPUs = %v, want nil (not enough)", got)
	}
	got := Split(avail, 2, 1)
	got[0] = append(got[0], 99) // must not spill into the next set
	if got[1][0] != 3 {
		t.Errorf("sets share storage: %v", got)
	}
}

// Pinning reaches threads that exist already and threads started later.
func TestPin(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	avail, err := Available()
	if err != nil || len(avail) == 0 {
		t.Fatalf("Available: %v %v", avail, err)
	}
	defer Pin(avail)
	one := avail[len(avail)-1:]
	if err := Pin(one); err != nil {
		t.Fatal(err)
	}
	done := make(chan []int)
	go func() { // a goroutine locked to a thread of its own
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		got, _ := Available()
		done <- got
	}()
	if got := <-done; !reflect.DeepEqual(got, one) {
		t.Errorf("a new thread runs on %v, want %v", got, one)
	}
	if got, _ := Available(); !reflect.DeepEqual(got, one) {
		t.Errorf("this thread runs on %v, want %v", got, one)
	}
	if err := Pin([]int{1 << 20}); err == nil {
		t.Error("pinned to a CPU that cannot exist")
	}
}
