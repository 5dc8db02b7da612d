// Package alerts owns the leader's monitoring state that is not replicated:
// the log of recent events (Log: a ring buffer with sequence numbers that
// readers can wait on), the set of active alerts and their evaluation from
// the current state (Set, Evaluate, Manager: fire, resolve, log them as
// structured events), and the delivery of every fire and resolve to an
// operator's webhook (Webhook: a bounded queue, retries with backoff, never
// blocking the caller).
//
// Nothing here is written through raft: a replica that becomes leader starts
// with an empty alert set and re-derives the alerts from the replicated state
// at its first evaluation, so an alert still true then fires again under the
// new leader. The package has no clock of its own in its decisions: callers
// pass the time, which keeps the tests free of sleeps.
package alerts
