// Package netns builds a network of hosts on one Linux machine, for tests
// and benchmarks that need a multi-host cluster: every node is a network
// namespace with one veth into a bridge (which lives in a namespace of its
// own), each node's egress shaped with tc tbf to a given rate, so every
// path between two nodes crosses one shaped link. A node's link can be cut
// and restored, a process started inside a node, and a connection dialled
// from one. It drives iproute2 (ip, tc) and needs root.
//
// Names are unique per run (a prefix carrying the process id), so two
// runs never share a namespace; Close removes what a run created, and
// Sweep what runs whose process is gone left behind.
package netns
