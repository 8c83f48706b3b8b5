package cli

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/recur-ml/recur/pkg/rnn"
)

func TestVersionFromBuildInfo(t *testing.T) {
	info := func(main string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: main}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, c := range []struct {
		name                  string
		read                  func() (*debug.BuildInfo, bool)
		wantVersion, wantComm string
	}{
		{"git checkout", info("(devel)", rev), "devel-0123456789ab", "0123456789abcdef0123"},
		{"modified", info("(devel)", rev, dirty), "devel-0123456789ab-dirty", "0123456789abcdef0123 (modified)"},
		{"go install", info("v1.2.3"), "v1.2.3", "unknown"},
		{"no build info", func() (*debug.BuildInfo, bool) { return nil, false }, "devel", "unknown"},
	} {
		b := currentBuild(c.read)
		if b.Version != c.wantVersion || b.Commit != c.wantComm {
			t.Errorf("%s: version %q commit %q, want %q %q", c.name, b.Version, b.Commit, c.wantVersion, c.wantComm)
		}
		if b.BLAS != rnn.BLASBackend || b.Kernels == "" || !strings.HasPrefix(b.GoVersion, "go") {
			t.Errorf("%s: %+v", c.name, b)
		}
	}
	version, commit = "v9.9.9", "feedface"
	defer func() { version, commit = "", "" }()
	if b := currentBuild(info("(devel)", rev, dirty)); b.Version != "v9.9.9" || b.Commit != "feedface" {
		t.Errorf("the link-time values (-ldflags -X) lost: %+v", b)
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if code := Recur([]string{"version"}, &out, &out); code != ExitOK {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, want := range []string{"recur ", "commit:", "go:", "blas:    " + rnn.BLASBackend} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("recur version lacks %q:\n%s", want, out.String())
		}
	}
}
