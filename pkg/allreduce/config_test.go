package allreduce

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ms := []Member{{ID: "a", Addr: "x:1"}, {ID: "b", Addr: "x:2"}}
	ok := Config{Rank: 1, Members: ms}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, c := range map[string]Config{
		"no members":     {},
		"rank too big":   {Rank: 2, Members: ms},
		"negative rank":  {Rank: -1, Members: ms},
		"duplicate id":   {Members: []Member{{ID: "a", Addr: "1"}, {ID: "a", Addr: "2"}}},
		"empty id":       {Members: []Member{{Addr: "1"}}},
		"missing addr":   {Members: []Member{{ID: "a", Addr: "1"}, {ID: "b"}}},
		"tiny segment":   {Members: ms, SegmentBytes: 4},
		"huge segment":   {Members: ms, SegmentBytes: 1 << 30},
		"slow heartbeat": {Members: ms, Timeout: time.Second, HeartbeatInterval: time.Second},
		"zero window":    {Members: ms, Window: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
	d := Config{}
	d.EnsureDefaults()
	if d.Timeout != DefaultTimeout || d.HeartbeatInterval != DefaultTimeout/8 || d.SegmentBytes != DefaultSegmentBytes || d.Window != DefaultWindow {
		t.Fatalf("defaults: %+v", d)
	}
	for _, g := range []GRPCConfig{
		{ListenAddr: ":0", Secret: []byte("short")},
		{ListenAddr: ":0", Secret: testSecret, HelloTimeout: -1},
		{ListenAddr: ":0", Secret: testSecret, MaxPendingHellos: -1},
		{ListenAddr: ":0", Secret: testSecret, MaxPendingHellosPerSource: -1},
	} {
		if err := g.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v accepted: %v", g, err)
		}
	}
	g := GRPCConfig{}
	g.EnsureDefaults()
	tc := TCPConfig{}
	tc.EnsureDefaults()
	for _, a := range [][3]any{
		{g.HelloTimeout, g.MaxPendingHellos, g.MaxPendingHellosPerSource},
		{tc.HelloTimeout, tc.MaxPendingHellos, tc.MaxPendingHellosPerSource},
	} {
		if a != [3]any{DefaultHelloTimeout, DefaultMaxPendingHellos, DefaultMaxPendingHellosPerSource} {
			t.Errorf("admission defaults %v", a)
		}
	}
}
