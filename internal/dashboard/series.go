package dashboard

import "math"

// Point is one point of a curve: [step, value, lowest, highest]. A point
// stands for a bucket of consecutive samples once a long run has been
// downsampled: step is the middle of the bucket's steps, value the
// (weighted) mean of its samples, lowest and highest their extremes.
type Point [4]float64

// series is one curve of a run by step, bounded in memory whatever the
// run's length: at most maxPoints buckets are kept. When they are all
// full, neighbouring buckets merge in pairs and each new bucket takes
// twice as many samples, so the curve keeps the shape of the whole run at
// a resolution that halves as the run doubles.
type series struct {
	max     int // buckets kept before a merge (even)
	per     int // samples per closed bucket
	buckets []bucket
	open    bucket // the bucket filling now (n < per)
}

// bucket sums the samples of consecutive steps.
type bucket struct {
	x0, x1 int64   // first and last step
	n      int     // samples
	sw     float64 // sum of weights
	swy    float64 // sum of weight * value
	lo, hi float64
}

func newSeries(maxPoints int) series { return series{max: maxPoints &^ 1, per: 1} }

// add takes the value y at step x with weight w (>0). A step not after
// the newest one (a run that resumed from an older state repeats steps)
// first drops the samples from that step on: see truncate.
func (s *series) add(x int64, y, w float64) {
	if math.IsNaN(y) || math.IsInf(y, 0) || !(w > 0) || math.IsInf(w, 0) {
		return
	}
	if last, ok := s.last(); ok && x <= last {
		s.truncate(x)
	}
	b := &s.open
	if b.n == 0 {
		*b = bucket{x0: x, lo: y, hi: y}
	}
	b.x1 = max(b.x1, x)
	b.n++
	b.sw += w
	b.swy += w * y
	b.lo, b.hi = min(b.lo, y), max(b.hi, y)
	if b.n < s.per {
		return
	}
	s.buckets = append(s.buckets, *b)
	s.open = bucket{}
	if len(s.buckets) >= s.max {
		s.halve()
	}
}

// halve merges the closed buckets in pairs and doubles the samples a
// bucket takes.
func (s *series) halve() {
	out := s.buckets[:0]
	for i := 0; i+1 < len(s.buckets); i += 2 {
		out = append(out, merge(s.buckets[i], s.buckets[i+1]))
	}
	if len(s.buckets)%2 == 1 {
		out = append(out, s.buckets[len(s.buckets)-1])
	}
	s.buckets = out
	s.per *= 2
}

func merge(a, b bucket) bucket {
	return bucket{x0: a.x0, x1: max(a.x1, b.x1), n: a.n + b.n, sw: a.sw + b.sw, swy: a.swy + b.swy, lo: min(a.lo, b.lo), hi: max(a.hi, b.hi)}
}

// last is the newest step held.
func (s *series) last() (int64, bool) {
	switch {
	case s.open.n > 0:
		return s.open.x1, true
	case len(s.buckets) > 0:
		return s.buckets[len(s.buckets)-1].x1, true
	}
	return 0, false
}

// truncate drops the buckets that start at step x or later. A bucket
// that straddles x keeps its samples: after downsampling the curve is
// approximate there anyway.
func (s *series) truncate(x int64) {
	if s.open.n > 0 && s.open.x0 >= x {
		s.open = bucket{}
	}
	i := len(s.buckets)
	for i > 0 && s.buckets[i-1].x0 >= x {
		i--
	}
	s.buckets = s.buckets[:i]
}

// points is the curve, oldest first; never nil.
func (s *series) points() []Point {
	out := make([]Point, 0, len(s.buckets)+1)
	for _, b := range s.buckets {
		out = append(out, b.point())
	}
	if s.open.n > 0 {
		out = append(out, s.open.point())
	}
	return out
}

func (b bucket) point() Point {
	mean := b.swy / b.sw
	if math.IsNaN(mean) || math.IsInf(mean, 0) {
		mean = b.lo/2 + b.hi/2 // weights too large to sum: still a value in range
	}
	return Point{float64(b.x0+b.x1) / 2, mean, b.lo, b.hi}
}
