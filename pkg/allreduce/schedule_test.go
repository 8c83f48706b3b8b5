package allreduce

import (
	"math/rand/v2"
	"testing"
)

// simulate runs every rank's schedule in lock step on exact integer data
// and returns each rank's final buffer; it checks the schedule's internal
// consistency (what r sends at t is what r+1 receives at t) on the way.
func simulate(t *testing.T, ranks, n, seg int) [][]int64 {
	t.Helper()
	bufs := make([][]int64, ranks)
	scheds := make([]schedule, ranks)
	for r := range bufs {
		bufs[r] = make([]int64, n)
		for i := range bufs[r] {
			bufs[r][i] = int64(1) << (r % 60) * int64(i+1)
		}
		scheds[r] = newSchedule(ranks, r, n, seg)
	}
	slots := scheds[0].slots()
	for ts := 0; ts < slots; ts++ {
		msgs := make([][]int64, ranks)
		for r, s := range scheds {
			if d := s.dependsOn(ts); d >= ts {
				t.Fatalf("slot %d depends on future slot %d", ts, d)
			}
			lo, hi := s.sendRange(ts)
			msgs[r] = append([]int64(nil), bufs[r][lo:hi]...)
		}
		for r, s := range scheds {
			left := (r - 1 + ranks) % ranks
			lo, hi := s.recvRange(ts)
			slo, shi := scheds[left].sendRange(ts)
			if lo != slo || hi != shi {
				t.Fatalf("N=%d n=%d slot %d: rank %d receives [%d,%d) but left sends [%d,%d)", ranks, n, ts, r, lo, hi, slo, shi)
			}
			for i, v := range msgs[left] {
				if s.reduces(ts) {
					bufs[r][lo+i] += v
				} else {
					bufs[r][lo+i] = v
				}
			}
		}
	}
	return bufs
}

func TestScheduleComputesSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][3]int{{1, 0, 1}, {1, 5, 2}, {2, 0, 4}, {2, 1, 4}, {3, 2, 1}, {4, 3, 1}, {8, 7, 3}, {5, 101, 4}, {7, 1000, 33}}
	for range 40 {
		cases = append(cases, [3]int{1 + rng.IntN(9), rng.IntN(300), 1 + rng.IntN(40)})
	}
	for _, c := range cases {
		ranks, n, seg := c[0], c[1], c[2]
		bufs := simulate(t, ranks, n, seg)
		for i := 0; i < n; i++ {
			var want int64
			for r := 0; r < ranks; r++ {
				want += int64(1) << (r % 60) * int64(i+1)
			}
			for r := range bufs {
				if bufs[r][i] != want {
					t.Fatalf("N=%d n=%d seg=%d: rank %d elem %d = %d, want %d", ranks, n, seg, r, i, bufs[r][i], want)
				}
			}
		}
	}
}

func TestScheduleChunksCoverBuffer(t *testing.T) {
	for ranks := 1; ranks <= 9; ranks++ {
		for n := 0; n < 40; n++ {
			s := newSchedule(ranks, 0, n, 3)
			next := 0
			for c := 0; c < ranks; c++ {
				lo, hi := s.chunk(c)
				if lo != next || hi < lo || hi-lo > (n+ranks-1)/ranks {
					t.Fatalf("N=%d n=%d chunk %d = [%d,%d)", ranks, n, c, lo, hi)
				}
				covered := lo
				for j := 0; j < s.segs; j++ {
					slo, shi := s.segment(c, j)
					if slo != covered || shi-slo > 3 {
						t.Fatalf("N=%d n=%d chunk %d seg %d = [%d,%d)", ranks, n, c, j, slo, shi)
					}
					covered = shi
				}
				if ranks > 1 && covered != hi {
					t.Fatalf("N=%d n=%d chunk %d segments end at %d, chunk at %d", ranks, n, c, covered, hi)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("N=%d n=%d chunks end at %d", ranks, n, next)
			}
		}
	}
}

func TestScheduleSendsBandwidthOptimalShare(t *testing.T) {
	// Each rank sends 2(N-1)/N of the buffer (up to rounding of chunks).
	for ranks := 2; ranks <= 8; ranks++ {
		n := 1000 * ranks
		for r := 0; r < ranks; r++ {
			s := newSchedule(ranks, r, n, 64)
			sent := 0
			for ts := 0; ts < s.slots(); ts++ {
				lo, hi := s.sendRange(ts)
				sent += hi - lo
			}
			if want := 2 * (ranks - 1) * n / ranks; sent != want {
				t.Fatalf("N=%d rank %d sends %d elements, want %d", ranks, r, sent, want)
			}
		}
	}
}

// The sender hands gRPC views of the buffer, so a receive must not write
// elements of a send that may still be in flight, other than the one send
// overwrites names (which the ring waits for).
func TestScheduleOverwritesNamesEveryEarlierSend(t *testing.T) {
	for ranks := 2; ranks <= 7; ranks++ {
		for _, n := range []int{0, 1, ranks + 1, 50, 97} {
			for r := 0; r < ranks; r++ {
				s := newSchedule(ranks, r, n, 4)
				for ts := 0; ts < s.slots(); ts++ {
					lo, hi := s.recvRange(ts)
					want := s.overwrites(ts)
					for u := 0; u < s.slots() && s.dependsOn(u) < ts; u++ {
						slo, shi := s.sendRange(u)
						if max(lo, slo) < min(hi, shi) && u != want {
							t.Fatalf("N=%d n=%d rank %d: receive %d [%d,%d) overlaps send %d [%d,%d), overwrites says %d", ranks, n, r, ts, lo, hi, u, slo, shi, want)
						}
					}
					if want >= 0 {
						if slo, shi := s.sendRange(want); slo != lo || shi != hi {
							t.Fatalf("N=%d n=%d rank %d: receive %d [%d,%d) but send %d was [%d,%d)", ranks, n, r, ts, lo, hi, want, slo, shi)
						}
					}
				}
			}
		}
	}
}
