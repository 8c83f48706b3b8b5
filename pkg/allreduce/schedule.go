package allreduce

// schedule is the pure ring allreduce plan of one rank: which elements it
// sends and receives at each slot. It does no I/O and holds no buffers.
//
// The buffer of n elements is cut into N chunks, chunk c covering
// [c*n/N, (c+1)*n/N), so sizes differ by at most one and chunks may be
// empty when n < N. Each chunk is cut into S segments of at most seg
// elements (S is the same for every chunk and at least 1; trailing segments may
// be empty).
// A step moves one chunk per link; slot t = step*S + segment. Steps
// 0..N-2 are the reduce-scatter (rank r sends chunk r-k, receives chunk
// r-k-1 and adds it in), after which rank r owns the reduced chunk r+1;
// steps N-1..2N-3 are the allgather (send chunk r+1-a, receive chunk r-a
// and overwrite). Sending slot t needs only receive slot t-S applied,
// which is what lets segments stream through the ring back to back.
type schedule struct {
	ranks int // N
	rank  int // r
	n     int // elements in the buffer
	seg   int // max elements per segment
	segs  int // S, segments per chunk
}

// newSchedule plans an allreduce of n elements; seg must be >= 1.
func newSchedule(ranks, rank, n, seg int) schedule {
	s := schedule{ranks: ranks, rank: rank, n: n, seg: seg}
	if ranks > 1 {
		// At least one segment, so even an empty buffer exchanges frames
		// and with them the health flags and the length check.
		maxChunk := (n + ranks - 1) / ranks
		s.segs = max(1, (maxChunk+seg-1)/seg)
	}
	return s
}

// slots is the number of data frames this rank sends (and receives).
func (s schedule) slots() int { return 2 * (s.ranks - 1) * s.segs }

// mod returns a mod N in [0, N).
func (s schedule) mod(a int) int { return ((a % s.ranks) + s.ranks) % s.ranks }

// chunk returns the element range [lo, hi) of chunk c.
func (s schedule) chunk(c int) (lo, hi int) {
	return c * s.n / s.ranks, (c + 1) * s.n / s.ranks
}

// segment returns the element range of segment j of chunk c.
func (s schedule) segment(c, j int) (lo, hi int) {
	clo, chi := s.chunk(c)
	lo = min(clo+j*s.seg, chi)
	hi = min(lo+s.seg, chi)
	return lo, hi
}

// split returns the step and segment of slot t.
func (s schedule) split(t int) (step, seg int) { return t / s.segs, t % s.segs }

// reduces reports whether receive slot t is added in (reduce-scatter)
// rather than copied (allgather).
func (s schedule) reduces(t int) bool { step, _ := s.split(t); return step < s.ranks-1 }

// final reports whether receive slot t completes a reduced segment that
// this rank owns, the moment to apply mean and wire rounding.
func (s schedule) final(t int) bool { step, _ := s.split(t); return step == s.ranks-2 }

// sendChunk is the chunk this rank sends at slot t.
func (s schedule) sendChunk(t int) int {
	step, _ := s.split(t)
	if step < s.ranks-1 {
		return s.mod(s.rank - step)
	}
	return s.mod(s.rank + 1 - (step - (s.ranks - 1)))
}

// recvChunk is the chunk this rank receives at slot t.
func (s schedule) recvChunk(t int) int {
	step, _ := s.split(t)
	if step < s.ranks-1 {
		return s.mod(s.rank - step - 1)
	}
	return s.mod(s.rank - (step - (s.ranks - 1)))
}

// sendRange returns the elements sent at slot t.
func (s schedule) sendRange(t int) (lo, hi int) {
	_, j := s.split(t)
	return s.segment(s.sendChunk(t), j)
}

// recvRange returns the elements received at slot t.
func (s schedule) recvRange(t int) (lo, hi int) {
	_, j := s.split(t)
	return s.segment(s.recvChunk(t), j)
}

// dependsOn is the receive slot that must be applied before slot t can be
// sent, or -1 when slot t sends this rank's own input.
func (s schedule) dependsOn(t int) int {
	if t < s.segs {
		return -1
	}
	return t - s.segs
}

// ownedChunk is the chunk this rank holds fully reduced after the
// reduce-scatter.
func (s schedule) ownedChunk() int { return s.mod(s.rank + 1) }

// overwrites is the earlier send slot whose elements receive slot t
// overwrites, or -1 when no slot that may already be sent covers them:
// an allgather step brings back, fully reduced, the chunk this rank sent
// in the same-numbered reduce-scatter step. (Every other send of those
// elements waits for slot t itself.)
func (s schedule) overwrites(t int) int {
	if s.reduces(t) {
		return -1
	}
	return t - (s.ranks-1)*s.segs
}
