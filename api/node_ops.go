package api

import (
	"encoding/json"
	"time"
)

// DefaultDrainDeadline is how long a drain may take before what is left
// on the node is moved off without waiting (1h).
const DefaultDrainDeadline = time.Hour

// DrainStatus is a drain under way.
type DrainStatus struct {
	StartedAt time.Time `json:"started_at"`
	// Deadline is when the workloads still on the node are moved off
	// without waiting for their replacements.
	Deadline time.Time `json:"deadline"`
	// Remaining is how many live workloads are still on the node (shown by
	// the API, not stored).
	Remaining int `json:"remaining"`
}

// MoveFrom is the instance a workload is moving away from: while its
// replacement starts on its new node, the old instance keeps running on
// its old node (a drain's start-first move).
type MoveFrom struct {
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	// PID, Health and Ports are the old instance's, restored if the move
	// is given up (its replacement failed to start).
	PID    int            `json:"pid,omitempty"`
	Health string         `json:"health,omitempty"`
	Ports  map[string]int `json:"ports,omitempty"`
}

// UnmarshalJSON implements json.Unmarshaler: a node stored before
// eligibility existed is eligible.
func (n *Node) UnmarshalJSON(b []byte) error {
	type plain Node
	p := plain{Eligible: true}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*n = Node(p)
	return nil
}

// DrainRequest is the body of POST /nodes/{id}/drain.
type DrainRequest struct {
	Enable bool `json:"enable"`
	// Deadline is how long the drain may take (default 1h).
	Deadline Duration `json:"deadline,omitempty"`
}

// EligibilityRequest is the body of POST /nodes/{id}/eligibility.
type EligibilityRequest struct {
	Eligible *bool `json:"eligible"`
}

// RestartingRequest is the body of POST /nodes/{id}/restarting, sent by an
// agent about to restart: the leader does not mark the node offline for
// GraceMS.
type RestartingRequest struct {
	GraceMS int64 `json:"grace_ms"`
}

// MaxRestartGrace bounds the restart grace an agent may ask for.
const MaxRestartGrace = 10 * time.Minute

// GCResponse is the answer to POST /gc: what a garbage collection removed.
type GCResponse struct {
	Workloads int `json:"workloads"`
	Nodes     int `json:"nodes"`
	Jobs      int `json:"jobs"`
}
