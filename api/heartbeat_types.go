package api

// Heartbeat is the body of POST /nodes/{id}/heartbeat, which every agent
// sends to every replica it knows about once a HeartbeatInterval. Seq grows
// by one with each round (and across restarts of the agent), so that an
// acknowledgement names the round it answers; Term is the highest leader
// term the agent has obeyed (a replica leading an older term does not
// acknowledge it); LeaseMillis is the longest lease the agent has been
// granted, so that a leader configured with a shorter one waits that long.
type Heartbeat struct {
	NodeID      string `json:"node_id"`
	Seq         uint64 `json:"seq"`
	Term        uint64 `json:"term"`
	LeaseMillis int64  `json:"lease_ms,omitempty"`
}

// HeartbeatAck is the answer to a heartbeat. AckSeq is the newest heartbeat
// of this node that the leader of term Term has recorded (0 when none yet):
// the leader itself acknowledges the heartbeat it answers, a follower passes
// on the leader's latest acknowledgement of the heartbeats it relayed. The
// agent holds a lease of LeaseMillis from the moment it sent heartbeat
// AckSeq. Replicas lists the replicas' HTTP addresses, so that the agent
// reaches replicas that joined after it started.
type HeartbeatAck struct {
	Leader      string   `json:"leader,omitempty"`
	IsLeader    bool     `json:"is_leader"`
	Term        uint64   `json:"term"`
	AckSeq      uint64   `json:"ack_seq"`
	LeaseMillis int64    `json:"lease_ms"`
	Replicas    []string `json:"replicas,omitempty"`
}

// HeartbeatRelay is the body of POST /cluster/heartbeats: a follower passes
// on to the leader the newest heartbeat it received from each node since
// its last relay.
type HeartbeatRelay struct {
	From  string            `json:"from"`
	Beats map[string]uint64 `json:"beats"`
	// LeaseMillis is the longest lease those agents reported holding.
	LeaseMillis int64 `json:"lease_ms,omitempty"`
}

// HeartbeatRelayAck is the leader's answer to a relay: the heartbeats it
// recorded, by node, for the follower to pass on.
type HeartbeatRelayAck struct {
	Term        uint64            `json:"term"`
	Leader      string            `json:"leader"`
	LeaseMillis int64             `json:"lease_ms"`
	Acks        map[string]uint64 `json:"acks"`
}
