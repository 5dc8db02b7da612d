package api

import "time"

// Workload states, as stored in the desired state and shown by the API.
const (
	StatePending           = "pending"
	StateRunning           = "running"
	StateFailed            = "failed"
	StatePermanentlyFailed = "permanently_failed"
	StateStopped           = "stopped"
)

// Node statuses, as decided by the leader's health monitor.
const (
	NodeOnline   = "online"
	NodeDegraded = "degraded"
	NodeOffline  = "offline"
)

// Placement is one entry of a workload's placement history.
type Placement struct {
	Node       string    `json:"node"`
	Generation uint64    `json:"generation"`
	Term       uint64    `json:"term"`
	At         time.Time `json:"at"`
}

// Workload is the desired state of one workload instance.
type Workload struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Command    string            `json:"command"`
	Args       []string          `json:"args"`
	Env        map[string]string `json:"env,omitempty"`
	Exclusive  bool              `json:"exclusive,omitempty"`
	Node       string            `json:"node"`
	State      string            `json:"state"`
	Attempts   int               `json:"attempts"`
	Generation uint64            `json:"generation"`
	PID        int               `json:"pid,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	History    []Placement       `json:"history,omitempty"`
	// Spec is the lifecycle asked for at submission (type, port labels,
	// check, restart, resources), with defaults filled in.
	Spec Spec `json:"spec,omitzero"`
	// Health, Restarts and Ports are what the instance's agent last
	// reported: the check's verdict (unknown without a check), the restarts
	// in place of this generation, and the port picked for each label.
	Health   string         `json:"health,omitempty"`
	Restarts int            `json:"restarts,omitempty"`
	Ports    map[string]int `json:"ports,omitempty"`
	// Job and JobVersion name the job and version an instance belongs to
	// (absent for a workload submitted on its own).
	Job        string  `json:"job,omitempty"`
	JobVersion *uint64 `json:"version,omitempty"`
	// MoveFrom is set while the workload moves off a draining node: its
	// old instance still runs there until the new one is up.
	MoveFrom *MoveFrom `json:"move_from,omitempty"`
}

// Node is a registered node agent.
type Node struct {
	ID           string    `json:"id"`
	Address      string    `json:"address"`
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registered_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Capacity is what the node offers to placement, as it registered it.
	Capacity *Capacity `json:"capacity,omitempty"`
	// Eligible is false for a node that takes no new work (eligibility
	// disabled, or a drain under way or finished); what runs there stays.
	Eligible bool `json:"eligible"`
	// Draining is true while a drain moves its workloads off; Drain says
	// since when and until when.
	Draining bool         `json:"draining"`
	Drain    *DrainStatus `json:"drain,omitempty"`
	// RestartingUntil is set while its agent restarts: the leader does not
	// mark the node offline before then.
	RestartingUntil *time.Time `json:"restarting_until,omitempty"`
	// Allocated is the sum of the resources of its live workloads (shown by
	// the API, not stored).
	Allocated *Capacity `json:"allocated,omitempty"`
}

// SubmitRequest is the body of POST /workloads on the scheduler.
type SubmitRequest struct {
	Name    string            `json:"name"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Count   *int              `json:"count"`
	// Exclusive asks that at most one instance runs at any moment, even
	// while its node is cut off (see Lease in the agent's heartbeats).
	Exclusive bool `json:"exclusive"`
	// Spec adds the lifecycle: type, ports, check, restart, resources.
	Spec
}

// SubmitResponse is the answer to POST /workloads.
type SubmitResponse struct {
	IDs []string `json:"ids"`
}

// WorkloadList is the answer to GET /workloads.
type WorkloadList struct {
	Workloads []Workload `json:"workloads"`
}

// NodeList is the answer to GET /nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// RegisterRequest is the body of POST /nodes, sent by an agent.
type RegisterRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Capacity is what the node offers to placement (detected, or set by
	// the agent's flags); absent from agents older than it.
	Capacity *Capacity `json:"capacity,omitempty"`
}

// Capacity is what a node offers to placement: CPU in millicores (1000 a
// core) and memory in MiB.
type Capacity struct {
	CPUMillicores int `json:"cpu_millicores"`
	MemoryMB      int `json:"memory_mb"`
}

// ReplicaInfo describes one scheduler replica.
type ReplicaInfo struct {
	ID    string `json:"id"`
	HTTP  string `json:"http"`
	Raft  string `json:"raft"`
	State string `json:"state,omitempty"`
	Voter bool   `json:"voter"`
	// Version is the replica's build, as it reports it (GET /cluster/status).
	Version string `json:"version,omitempty"`
	// TLSCertExpires is when the replica's TLS certificate expires, as it
	// reports it; absent when TLS is off or the replica did not answer.
	TLSCertExpires *time.Time `json:"tls_cert_expires,omitempty"`
}

// ClusterStatus is the answer to GET /cluster/status.
type ClusterStatus struct {
	Leader      ReplicaInfo   `json:"leader"`
	Replicas    []ReplicaInfo `json:"replicas"`
	Term        uint64        `json:"term"`
	CommitIndex uint64        `json:"commit_index"`
	// Version is the build of the replica that answered.
	Version string `json:"version,omitempty"`
}

// JoinRequest is the body of POST /cluster/join.
type JoinRequest struct {
	ID   string `json:"id"`
	HTTP string `json:"http"`
	Raft string `json:"raft"`
}

// RemoveRequest is the body of POST /cluster/remove.
type RemoveRequest struct {
	ID string `json:"id"`
}

// Error is the JSON body of every error answer.
type Error struct {
	Error string `json:"error"`
}
