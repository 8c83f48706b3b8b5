package shard

import (
	"strings"
	"testing"
)

// BenchmarkOpenFirstBatch measures opening tinyshakespeare (mmap, UTF-8 and
// vocabulary pass, rune index) and producing the first 64x128 batch.
func BenchmarkOpenFirstBatch(b *testing.B) {
	path := tinyShakespeare(b)
	for b.Loop() {
		c, err := OpenText(path, TextConfig{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewStreams(c.Train(), StreamConfig{Streams: 64, Steps: 128})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Next(); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/open+batch")
}

// BenchmarkStreams measures TBPTT batches of 64 streams x 128 steps read
// from the memory-mapped tinyshakespeare, for the char and byte levels.
func BenchmarkStreams(b *testing.B) {
	path := tinyShakespeare(b)
	for _, level := range []Level{CharLevel, ByteLevel} {
		b.Run(level.String(), func(b *testing.B) {
			c, err := OpenText(path, TextConfig{Level: level})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := NewStreams(c.Train(), StreamConfig{Streams: 64, Steps: 128, RandomOffset: true})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Next(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
			b.ReportMetric(float64(b.N*64*128)/b.Elapsed().Seconds()/1e6, "Mtokens/s")
		})
	}
}

// BenchmarkStreamsNonASCII exercises the rune-index path (multi-byte text).
func BenchmarkStreamsNonASCII(b *testing.B) {
	text := strings.Repeat("Съешь же ещё этих мягких французских булок, да выпей чаю. ", 10000)
	c := openString(b, text, TextConfig{})
	s, err := NewStreams(c.Train(), StreamConfig{Streams: 64, Steps: 128})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
}
