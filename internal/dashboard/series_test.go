package dashboard

import (
	"math"
	"testing"
)

func TestSeriesKeepsShortCurvesExact(t *testing.T) {
	s := newSeries(8)
	for x := int64(1); x <= 7; x++ {
		s.add(x, float64(10*x), 1)
	}
	pts := s.points()
	if len(pts) != 7 {
		t.Fatalf("%d points, want 7", len(pts))
	}
	for i, p := range pts {
		x := float64(i + 1)
		if p != (Point{x, 10 * x, 10 * x, 10 * x}) {
			t.Fatalf("point %d = %v", i, p)
		}
	}
}

// A long curve stays within its bound and keeps the whole run's shape:
// for y = x, every bucket's mean is its middle step, and the curve spans
// the first step to the last.
func TestSeriesDownsamplesLongCurves(t *testing.T) {
	s := newSeries(MaxPoints)
	const n = 1_000_003
	for x := int64(1); x <= n; x++ {
		s.add(x, float64(x), 1)
	}
	pts := s.points()
	if len(pts) > MaxPoints || len(pts) < MaxPoints/4 {
		t.Fatalf("%d points of %d samples, want between %d and %d", len(pts), n, MaxPoints/4, MaxPoints)
	}
	if pts[0][2] != 1 || pts[len(pts)-1][3] != n {
		t.Fatalf("the curve spans %v..%v, want 1..%d", pts[0][2], pts[len(pts)-1][3], n)
	}
	for i, p := range pts {
		if math.Abs(p[1]-p[0]) > 1e-6*p[0] || p[2] > p[1] || p[1] > p[3] {
			t.Fatalf("point %d = %v: the mean of y = x is the bucket's middle step, within [lo, hi]", i, p)
		}
		if i > 0 && p[2] != pts[i-1][3]+1 {
			t.Fatalf("points %d and %d leave a gap: %v then %v", i-1, i, pts[i-1], p)
		}
	}
}

func TestSeriesWeightedMean(t *testing.T) {
	s := newSeries(4)
	for x := int64(1); x <= 4; x++ { // 4 samples: the buckets halve to 2 of 2 samples
		s.add(x, float64(x), float64(x))
	}
	pts := s.points()
	if len(pts) != 2 {
		t.Fatalf("%d points, want 2", len(pts))
	}
	if want := (1*1 + 2*2) / 3.0; math.Abs(pts[0][1]-want) > 1e-12 {
		t.Fatalf("weighted mean %v, want %v", pts[0][1], want)
	}
}

// Steps repeated after a resume from an older state replace the old ones.
func TestSeriesRepeatedStepsReplaceTheOldOnes(t *testing.T) {
	s := newSeries(16)
	for x := int64(1); x <= 10; x++ {
		s.add(x, 1, 1)
	}
	for x := int64(6); x <= 8; x++ {
		s.add(x, 2, 1)
	}
	pts := s.points()
	if len(pts) != 8 {
		t.Fatalf("%d points, want 8: %v", len(pts), pts)
	}
	for i, p := range pts {
		want := 1.0
		if i >= 5 {
			want = 2
		}
		if p[0] != float64(i+1) || p[1] != want {
			t.Fatalf("point %d = %v, want step %d value %v", i, p, i+1, want)
		}
	}
}

func TestSeriesIgnoresNonFinite(t *testing.T) {
	s := newSeries(8)
	s.add(1, math.NaN(), 1)
	s.add(2, math.Inf(1), 1)
	s.add(3, 1, math.Inf(1))
	s.add(4, 1, 0)
	if pts := s.points(); len(pts) != 0 {
		t.Fatalf("points %v from non-finite samples", pts)
	}
}
