// Package health is the leader-only health monitor of the scheduler.
//
// While its replica leads, Run checks every registered agent with GET /status
// (Checker, HTTPChecker) every Interval, on a bounded pool of goroutines, and
// keeps each node's result in memory: status, CPU, memory, last check, the run
// of consecutive failures or successes and the response time. Raw results are
// never replicated; only a change of status is written through raft, one
// SetNodeStatus per round or confirm step batching every pending change.
//
// Statuses follow the guide: online; degraded after a failed check below
// FailureThreshold or an answer slower than SlowResponse; offline once
// FailureThreshold checks in a row have failed. An offline node is online
// again only after RecoveryThreshold good checks in a row. A failed check of a
// node that is not offline is re-checked ConfirmDelay later instead of a whole
// Interval later, so that a dead agent is offline within about
// Interval+ConfirmDelay.
//
// One goroutine (the loop) owns scheduling: the round ticker, the confirm
// timer, the queue of checks and forced rounds (CheckNow). A node is never
// checked twice at once: a round skips the nodes whose previous check is still
// queued or running, so slow rounds never pile up. Status writes go through a
// single writer goroutine, so they never overlap and never reorder. A write
// that fails (this replica is no longer leader) is logged once and retried at
// the end of the next round: NodeHealth.Status is only ever the replicated
// status, and a decided but unwritten status shows as PendingStatus.
//
// Run starts from the replicated statuses (an offline node stays offline
// until RecoveryThreshold good checks) and stops, cancelling every check in
// flight, as soon as its context is cancelled: the replica's leadership watch
// runs it with a context cancelled on loss of leadership.
package health
