package fsm

import (
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// The job command types (see the list in commands.go; never reuse a number).
const (
	CmdRegisterJob CommandType = 14
	CmdScaleJob    CommandType = 15
	CmdStopJob     CommandType = 16
	CmdJobStep     CommandType = 17
)

// RegisterJob creates a job or changes it: a run of a job file, or a
// revert. The leader plans it from the job as it saw it (Exists, Modify);
// a job changed meanwhile refuses it (ErrConflict) and the leader plans
// again.
type RegisterJob struct {
	At time.Time `json:"at"`
	// Spec is the job's new spec, normalized; its Count is the count the
	// file asked for.
	Spec   api.JobSpec `json:"spec"`
	Count  int         `json:"count"`
	Exists bool        `json:"exists"`
	Modify uint64      `json:"modify"`
	// NewVersion makes a new version (and a deployment of it); without it
	// only the count changes (or a stopped job runs again).
	NewVersion bool `json:"new_version"`
	// RevertOf, for a revert, is the version whose spec this is; the
	// count the last file asked for is kept.
	RevertOf *uint64 `json:"revert_of,omitempty"`
}

// ScaleJob changes a job's count without a new version.
type ScaleJob struct {
	At    time.Time `json:"at"`
	Name  string    `json:"name"`
	Count int       `json:"count"`
}

// StopJob stops a job and every instance of it.
type StopJob struct {
	At   time.Time `json:"at"`
	Name string    `json:"name"`
}

// InstanceStop is one instance a job step stops, and why.
type InstanceStop struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// JobStep is one step of the leader's deployment loop for a job, decided
// from the job at Modify: instances to create (of the current version,
// their IDs chosen by the leader), to stop, to move to the current version
// in place (their spec is the same), instances newly counted healthy by the
// deployment, and the deployment's end.
type JobStep struct {
	At      time.Time      `json:"at"`
	Seq     uint64         `json:"seq"`
	Name    string         `json:"name"`
	Modify  uint64         `json:"modify"`
	Create  []string       `json:"create,omitempty"`
	Stop    []InstanceStop `json:"stop,omitempty"`
	Relabel []string       `json:"relabel,omitempty"`
	Counted []string       `json:"counted,omitempty"`
	// Status, when set, ends the deployment: successful or failed, with
	// Description saying why.
	Status      string `json:"status,omitempty"`
	Description string `json:"description,omitempty"`
	// Revert, with a failed status, rolls version RevertTo out again as a
	// new version (the deployment ends reverted).
	Revert   bool   `json:"revert,omitempty"`
	RevertTo uint64 `json:"revert_to,omitempty"`
}

// Type implements Command.
func (RegisterJob) Type() CommandType { return CmdRegisterJob }

// Type implements Command.
func (ScaleJob) Type() CommandType { return CmdScaleJob }

// Type implements Command.
func (StopJob) Type() CommandType { return CmdStopJob }

// Type implements Command.
func (JobStep) Type() CommandType { return CmdJobStep }
