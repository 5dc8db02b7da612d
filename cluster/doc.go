// Package cluster owns a scheduler replica: the raft node (bootstrap, join,
// remove), the leadership watch that starts and stops the leader-only loops,
// the HTTP API, and the forwarding of API calls from followers to the leader.
package cluster
