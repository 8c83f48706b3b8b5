//go:build !unix

package testenv

import "testing"

// RaiseFileLimit skips the test: it needs setrlimit.
func RaiseFileLimit(t testing.TB, need uint64) {
	t.Helper()
	t.Skipf("this test needs %d open files and setrlimit", need)
}
