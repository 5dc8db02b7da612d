// Package jobs owns jobs beyond their replicated state (package fsm): the
// plan of a run (what a new spec changes), and the leader-only deployment
// loop that brings each job to its version and count, replacing at most
// max_parallel instances at a time and waiting for each to be healthy.
package jobs
