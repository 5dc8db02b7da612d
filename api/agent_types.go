package api

import "time"

// Agent-side instance states reported in GET /status.
const (
	InstanceRunning = "running"
	InstanceExited  = "exited"
	InstanceFailed  = "failed" // could not start
	InstanceStopped = "stopped"
)

// AgentStatus is the answer to GET /status on an agent.
type AgentStatus struct {
	NodeID      string          `json:"node_id"`
	CPUUsage    float64         `json:"cpu_usage"`
	MemoryUsage float64         `json:"memory_usage"`
	Workloads   []AgentWorkload `json:"workloads"`
}

// AgentWorkload is one workload instance as an agent sees it.
type AgentWorkload struct {
	ID         string     `json:"id"`
	PID        int        `json:"pid"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	ExitCode   *int       `json:"exit_code"`
	Generation uint64     `json:"generation"`
	Error      string     `json:"error,omitempty"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	Exclusive  bool       `json:"exclusive,omitempty"`
	// Health is the check's verdict: healthy, unhealthy, or unknown (no
	// check, or not yet past its grace).
	Health string `json:"health,omitempty"`
	// Restarts counts the restarts in place of this generation.
	Restarts int `json:"restarts,omitempty"`
	// Ports are the ports picked for the instance, by label.
	Ports map[string]int `json:"ports,omitempty"`
	// Reason says why an ended instance ended, when there is more to say
	// than its exit code (for example "OOM killed").
	Reason string `json:"reason,omitempty"`
}

// InstanceRestarting is an instance waiting out its restart delay before
// the agent starts it again in place (restart policy); the leader counts
// it as present.
const InstanceRestarting = "restarting"

// StartRequest is the body of POST /workloads on an agent. Term is the
// leader's raft term and Generation the workload's placement generation; the
// agent refuses a call older than one it has already obeyed.
type StartRequest struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Command    string            `json:"command"`
	Args       []string          `json:"args"`
	Env        map[string]string `json:"env"`
	Generation uint64            `json:"generation"`
	Term       uint64            `json:"term"`
	// Exclusive instances run only while the agent holds a lease from the
	// leader: the agent kills them when the lease lapses.
	Exclusive bool `json:"exclusive,omitempty"`
	// HeartbeatSeq, for an exclusive start, is the newest heartbeat of the
	// node the leader had recorded: the agent starts nothing later than
	// ExclusiveStartWindow after it sent that heartbeat, so a start that
	// arrives late (the leader gave up on it) never runs.
	HeartbeatSeq uint64 `json:"heartbeat_seq,omitempty"`
	// Spec is the lifecycle: type, ports, check, restart and resources,
	// normalized by the leader (defaults filled in).
	Spec
}

// ExclusiveStartWindow bounds how long after the heartbeat named in a start
// request an agent may still start an exclusive instance for it.
const ExclusiveStartWindow = 4 * time.Second

// StartResponse is the answer to a start request.
type StartResponse struct {
	ID         string `json:"id"`
	PID        int    `json:"pid"`
	State      string `json:"state"`
	Generation uint64 `json:"generation"`
	Error      string `json:"error,omitempty"`
}

// Query parameters carried by DELETE /workloads/{id} on an agent.
const (
	ParamTerm       = "term"
	ParamGeneration = "generation"
)
