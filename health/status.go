package health

import (
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// NodeHealth is the leader's in-memory view of one node.
type NodeHealth struct {
	// NodeID and Address identify the agent, as registered.
	NodeID  string
	Address string
	// Status is the node's replicated status (online, degraded or offline).
	Status string
	// PendingStatus is a status decided but not yet committed through raft; "" when none.
	PendingStatus string
	// EvictionHeld is set while the node is offline but AllowEvict held back the eviction of its workloads.
	EvictionHeld bool
	// CPU and Memory are the usage percentages of the last answer.
	CPU, Memory float64
	// LastCheck is when the last check ended; zero before the first one.
	LastCheck time.Time
	// LastAnswer is when the last good check ended; zero before the first one.
	LastAnswer time.Time
	// ConsecutiveFailures and ConsecutiveSuccesses count the current run of failed or good checks.
	ConsecutiveFailures, ConsecutiveSuccesses int
	// ResponseTime is the duration of the last answered check.
	ResponseTime time.Duration
	// Checked is set once a check of the node has ended under this leadership.
	Checked bool
	// Answered is set once the node has answered a check under this leadership.
	Answered bool
	// LastError is the error of the last check; "" after a good one.
	LastError string
	// LastHeard is when the latest heartbeat of the node reached this
	// leader, directly or relayed by HeardVia; zero before the first one.
	LastHeard time.Time
	// HeardVia is the replica that relayed the latest heartbeat; "" when the
	// agent reached this leader itself.
	HeardVia string
	// LastHeardDirect is when the latest heartbeat that the agent sent to
	// this leader itself arrived; zero if none did.
	LastHeardDirect time.Time
	// LastSeq is the newest heartbeat seq recorded, first heard at SeqHeard.
	LastSeq  uint64
	SeqHeard time.Time
	// HeldAlive is set while failed checks would make the node offline but
	// its heartbeats show it alive.
	HeldAlive bool
}

// thresholds are the counts that drive status transitions.
type thresholds struct {
	failure, recovery int
}

// nextStatus returns a node's status after one check, given its status before
// it, its run of consecutive failures or successes including this check, and
// whether the check succeeded and was slow.
//
//   - A failure makes a node offline once failures reach the failure
//     threshold, keeps an offline node offline, and otherwise degrades it.
//   - A success keeps an offline node offline until successes reach the
//     recovery threshold; then, or for a node that was not offline, the node
//     is degraded if the answer was slow and online otherwise.
//
// alive (a recent heartbeat) keeps a failing node that is not offline yet
// degraded instead.
func nextStatus(cur string, failures, successes int, ok, slow, alive bool, th thresholds) string {
	if !ok {
		if cur == api.NodeOffline || (failures >= th.failure && !alive) {
			return api.NodeOffline
		}
		return api.NodeDegraded
	}
	if cur == api.NodeOffline && successes < th.recovery {
		return api.NodeOffline
	}
	if slow {
		return api.NodeDegraded
	}
	return api.NodeOnline
}

// normStatus maps a replicated status to a known one; anything unknown
// (an empty status from an old state file) counts as online.
func normStatus(s string) string {
	switch s {
	case api.NodeOnline, api.NodeDegraded, api.NodeOffline:
		return s
	default:
		return api.NodeOnline
	}
}
