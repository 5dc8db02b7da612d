package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// CommandType tags each log entry; one type per kind of change.
type CommandType uint8

// The command types. Their numbers are stored in the raft log: never reuse one.
const (
	CmdSubmitWorkloads CommandType = 1
	CmdStopWorkload    CommandType = 2
	CmdRegisterNode    CommandType = 3
	CmdSetNodeStatus   CommandType = 4
	CmdEnqueueRecovery CommandType = 5
	CmdPlaceWorkloads  CommandType = 6
	CmdRecordOutcomes  CommandType = 7
	CmdSetReplica      CommandType = 8
	CmdRemoveReplica   CommandType = 9
	CmdLoadState       CommandType = 10
	CmdSetAlerts       CommandType = 11
	CmdUpdateInstances CommandType = 12
	CmdSetWaitReasons  CommandType = 13
	// 14 to 17 are the job commands (jobs_commands.go), 18 to 24 the node
	// operations (node_ops.go).
)

// Command is one typed change to the state.
type Command interface {
	Type() CommandType
}

// Errors returned by Apply; the API maps them to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid command")
)

// SubmitWorkloads adds new pending workloads. IDs and the time are chosen by
// the leader and travel in the command.
type SubmitWorkloads struct {
	At        time.Time      `json:"at"`
	Seq       uint64         `json:"seq"`
	Workloads []api.Workload `json:"workloads"`
}

// StopWorkload marks a workload stopped.
type StopWorkload struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// RegisterNode adds a node or updates its address and capacity.
type RegisterNode struct {
	At      time.Time `json:"at"`
	ID      string    `json:"id"`
	Address string    `json:"address"`
	// Capacity is what the node offers to placement; nil from an agent that
	// does not declare one (it then takes only workloads without resources).
	Capacity *api.Capacity `json:"capacity,omitempty"`
}

// NodeStatusChange is one node's new status.
type NodeStatusChange struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Evict, when the node goes offline, moves its workloads to the recovery queue.
	Evict bool `json:"evict,omitempty"`
}

// SetNodeStatus records status changes decided by the leader's health monitor.
type SetNodeStatus struct {
	At      time.Time          `json:"at"`
	Changes []NodeStatusChange `json:"changes"`
}

// RecoveryRequest names one workload to put in the recovery queue.
type RecoveryRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
	// CountAttempt counts a failed attempt (the workload exited by itself).
	CountAttempt bool `json:"count_attempt,omitempty"`
}

// EnqueueRecovery marks workloads failed and queues them for recovery.
type EnqueueRecovery struct {
	At          time.Time         `json:"at"`
	MaxAttempts int               `json:"max_attempts"`
	Requests    []RecoveryRequest `json:"requests"`
}

// Placement is the leader's intent to run a workload on a node under a new
// placement generation, recorded before the agent is called.
type Placement struct {
	ID         string `json:"id"`
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	Term       uint64 `json:"term"`
	// Migrate keeps the running instance on its old node until the new
	// one is up (a drain's start-first move): the workload's MoveFrom.
	Migrate bool `json:"migrate,omitempty"`
}

// PlaceWorkloads records placement intents.
type PlaceWorkloads struct {
	At         time.Time   `json:"at"`
	Placements []Placement `json:"placements"`
}

// Outcome is the result of a start on an agent, or of a status seen there.
type Outcome struct {
	ID         string `json:"id"`
	Generation uint64 `json:"generation"`
	Running    bool   `json:"running"`
	PID        int    `json:"pid,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Uncounted, for a failure, re-queues the workload without counting an
	// attempt (the leader abandoned the start, e.g. the node went away).
	Uncounted bool `json:"uncounted,omitempty"`
	// Stable, for a running instance, clears the failed attempts: it has run
	// long enough that earlier failures no longer count towards giving up.
	Stable bool `json:"stable,omitempty"`
	// Completed, for an instance that ended, makes the workload completed
	// instead of failed: the leader sets it for a batch workload that exited
	// 0. It is never restarted and counts no attempt.
	Completed bool `json:"completed,omitempty"`
}

// RecordOutcomes records start outcomes. A failed outcome counts an attempt.
type RecordOutcomes struct {
	At          time.Time `json:"at"`
	MaxAttempts int       `json:"max_attempts"`
	Outcomes    []Outcome `json:"outcomes"`
}

// SetReplica records a replica's HTTP address.
type SetReplica struct {
	ID   string `json:"id"`
	HTTP string `json:"http"`
}

// RemoveReplica forgets a replica's HTTP address.
type RemoveReplica struct {
	ID string `json:"id"`
}

// LoadState replaces the whole state (seeding a cluster from a state file).
type LoadState struct {
	State *State `json:"state"`
}

// Type implements Command.
func (SubmitWorkloads) Type() CommandType { return CmdSubmitWorkloads }

// Type implements Command.
func (StopWorkload) Type() CommandType { return CmdStopWorkload }

// Type implements Command.
func (RegisterNode) Type() CommandType { return CmdRegisterNode }

// Type implements Command.
func (SetNodeStatus) Type() CommandType { return CmdSetNodeStatus }

// Type implements Command.
func (EnqueueRecovery) Type() CommandType { return CmdEnqueueRecovery }

// Type implements Command.
func (PlaceWorkloads) Type() CommandType { return CmdPlaceWorkloads }

// Type implements Command.
func (RecordOutcomes) Type() CommandType { return CmdRecordOutcomes }

// Type implements Command.
func (SetReplica) Type() CommandType { return CmdSetReplica }

// Type implements Command.
func (RemoveReplica) Type() CommandType { return CmdRemoveReplica }

// Type implements Command.
func (LoadState) Type() CommandType { return CmdLoadState }

// SetAlerts records the leader's active alerts, so that a new leader takes
// them over: it resolves those that cleared meanwhile instead of forgetting
// them, and does not fire again those still true.
type SetAlerts struct {
	Alerts []api.Alert `json:"alerts"`
}

// Type implements Command.
func (SetAlerts) Type() CommandType { return CmdSetAlerts }

// InstanceReport is what an agent last reported of a running instance
// beyond its state: the check's verdict, its restarts in place, its ports
// and its pid. The leader sends one only when it differs from the state.
type InstanceReport struct {
	ID         string `json:"id"`
	Generation uint64 `json:"generation"`
	// Health is healthy or unhealthy; empty is unknown (no check, or not
	// checked yet).
	Health   string         `json:"health,omitempty"`
	Restarts int            `json:"restarts,omitempty"`
	Ports    map[string]int `json:"ports,omitempty"`
	// PID, when set, is the instance's process now (a restart in place
	// starts a new one).
	PID int `json:"pid,omitempty"`
}

// UpdateInstances records the reported health, restarts and ports of
// running instances, in one write per reconciliation that saw a change.
type UpdateInstances struct {
	Reports []InstanceReport `json:"reports"`
}

// Type implements Command.
func (UpdateInstances) Type() CommandType { return CmdUpdateInstances }

// WaitReason says why a workload waiting for a node has none yet (for
// example "no node has 2000 millicores free (n2 has 1500)").
type WaitReason struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// SetWaitReasons records why waiting workloads were not placed: a pending
// workload without a node, or a failed one in the recovery queue. The
// leader writes one only when a reason changes.
type SetWaitReasons struct {
	Reasons []WaitReason `json:"reasons"`
}

// Type implements Command.
func (SetWaitReasons) Type() CommandType { return CmdSetWaitReasons }

// Encode serialises a command as one type byte followed by its JSON.
func Encode(c Command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(c.Type())}, b...), nil
}

// Decode parses a log entry written by Encode.
func Decode(data []byte) (Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty log entry", ErrInvalid)
	}
	var c Command
	switch CommandType(data[0]) {
	case CmdSubmitWorkloads:
		c = &SubmitWorkloads{}
	case CmdStopWorkload:
		c = &StopWorkload{}
	case CmdRegisterNode:
		c = &RegisterNode{}
	case CmdSetNodeStatus:
		c = &SetNodeStatus{}
	case CmdEnqueueRecovery:
		c = &EnqueueRecovery{}
	case CmdPlaceWorkloads:
		c = &PlaceWorkloads{}
	case CmdRecordOutcomes:
		c = &RecordOutcomes{}
	case CmdSetReplica:
		c = &SetReplica{}
	case CmdRemoveReplica:
		c = &RemoveReplica{}
	case CmdLoadState:
		c = &LoadState{}
	case CmdSetAlerts:
		c = &SetAlerts{}
	case CmdUpdateInstances:
		c = &UpdateInstances{}
	case CmdSetWaitReasons:
		c = &SetWaitReasons{}
	case CmdRegisterJob:
		c = &RegisterJob{}
	case CmdScaleJob:
		c = &ScaleJob{}
	case CmdStopJob:
		c = &StopJob{}
	case CmdJobStep:
		c = &JobStep{}
	case CmdSetEligibility:
		c = &SetEligibility{}
	case CmdSetDrain:
		c = &SetDrain{}
	case CmdPurgeNode:
		c = &PurgeNode{}
	case CmdNodeRestarting:
		c = &NodeRestarting{}
	case CmdCollectGarbage:
		c = &CollectGarbage{}
	case CmdFinishMoves:
		c = &FinishMoves{}
	case CmdAbandonMoves:
		c = &AbandonMoves{}
	default:
		return nil, fmt.Errorf("%w: unknown command type %d", ErrInvalid, data[0])
	}
	if err := json.Unmarshal(data[1:], c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}
