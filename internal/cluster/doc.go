// Package cluster is what the coordinator (internal/coordinator) and the
// workers (internal/worker) share: the control protocol's wire types
// (controlpb), authentication with the cluster key, the membership layer
// (memberlist gossip, or an in-process one for tests), the state that
// moves between processes and the service that serves it, and the client
// of the status stream (Watch).
package cluster
