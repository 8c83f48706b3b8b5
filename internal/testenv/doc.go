// Package testenv holds what tests of several packages need from the
// machine they run on.
package testenv
