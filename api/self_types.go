package api

import "time"

// ReplicaSelf is the answer of GET /cluster/self: one replica's own raft
// view, answered by that replica itself (never forwarded), with or without
// a leader.
type ReplicaSelf struct {
	ID           string `json:"id"`
	State        string `json:"state"` // leader, follower, candidate or shutdown
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Leader       string `json:"leader"` // the leader's id as this replica knows it, or ""
	Version      string `json:"version,omitempty"`
	// TLSCertExpires is when this replica's TLS certificate expires; absent
	// when TLS is off.
	TLSCertExpires *time.Time `json:"tls_cert_expires,omitempty"`
	// Voters are the voters of the raft configuration this replica holds,
	// each with its HTTP address where known.
	Voters []ReplicaInfo `json:"voters,omitempty"`
}
