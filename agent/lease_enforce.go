package agent

import (
	"context"
	"errors"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Refusals of exclusive starts (503).
var (
	errNoLease   = errors.New("this node holds no lease from the leader (its heartbeats are not acknowledged): an exclusive workload cannot start here")
	errOldLease  = errors.New("this node's lease comes from a newer leader than the one asking: an exclusive workload is not started for it")
	errNoGuard   = errors.New("this agent has no working guard process, which must kill exclusive workloads if the agent hangs: an exclusive workload cannot start here")
	errLateStart = errors.New("this exclusive start came too long after the heartbeat it names (the leader has given up on it): not started")
)

// leaseAdmits checks, for an exclusive start, that the lease holds and was
// granted by the asking leader's term or an older one, and that the guard
// can enforce it; for a restart in place of run in, that the lease has held
// since its previous run. The caller holds the workload's slot.
func (s *supervisor) leaseAdmits(in *instance, req api.StartRequest) error {
	if s.cfg.lease == nil || !s.guard.working() {
		return errNoGuard
	}
	if in.run > 0 {
		return s.leaseHeldThrough(in.life)
	}
	until, term := s.cfg.lease.grant()
	now := boottime()
	sent, known := s.cfg.lease.sentAt(req.HeartbeatSeq)
	switch {
	case now+leaseKillWindow >= until:
		return errNoLease
	case req.Term < term:
		return errOldLease
	case !known || now-sent > api.ExclusiveStartWindow:
		return errLateStart
	}
	return nil
}

// leaseLapsedMsg is the error shown on an exclusive instance stopped for its lease.
const leaseLapsedMsg = "stopped: the node's lease from the leader lapsed"

// leaseCheckEvery is how often the agent looks at its lease.
const leaseCheckEvery = 100 * time.Millisecond

// leaseAwait is how long a start of an exclusive workload waits for a lease
// (the leader may place it between recording a heartbeat and its answer
// reaching the agent).
const leaseAwait = 2 * time.Second

// awaitLease reports whether the node holds a lease, waiting up to leaseAwait for one.
func (s *supervisor) awaitLease() bool {
	if s.cfg.lease == nil {
		return false
	}
	deadline := time.Now().Add(leaseAwait)
	for !s.cfg.lease.valid(boottime()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// enforceLease stops the exclusive instances once the lease is about to
// lapse, until ctx is done: SIGTERM leaseKillWindow before it lapses, SIGKILL
// when it does. The guard process kills them at that moment too, should the
// agent itself be paused. They are not started again when the lease comes
// back: the leader decides where they run next.
func (s *supervisor) enforceLease(ctx context.Context, l *lease) {
	t := time.NewTicker(leaseCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		exp := l.expiry()
		if boottime() < exp-leaseKillWindow {
			continue
		}
		for _, in := range s.runningExclusive() {
			go s.expire(in, exp)
		}
	}
}

// runningExclusive returns the exclusive instances running and not being stopped.
func (s *supervisor) runningExclusive() []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*instance
	for _, sl := range s.slots {
		if in := sl.inst; in != nil && in.exclusive && in.state == api.InstanceRunning && !in.stopping && !in.leaseStop {
			in.leaseStop = true
			out = append(out, in)
		}
	}
	return out
}

// expire stops one exclusive instance whose lease lapses at exp (boottime).
func (s *supervisor) expire(in *instance, exp time.Duration) {
	sl, err := s.acquire(in.id, false)
	if err != nil {
		return
	}
	defer s.release(in.id, sl)
	s.mu.Lock()
	current := sl.inst == in
	s.mu.Unlock()
	if !current {
		return
	}
	left := max(exp-boottime(), 0)
	s.log.Warn("lease from the leader lapsing: stopping an exclusive workload", "id", in.id, "generation", in.gen, "lapses_in", left.Round(time.Millisecond))
	if err := s.stopInstanceWithin(in, "lease lapsed", left); err != nil {
		s.log.Error("stopping an exclusive workload at the end of the lease", "id", in.id, "error", err)
	}
}
