package coordinator

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must stop what it started: coordinators, workers, rings,
// gossip, status watchers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
