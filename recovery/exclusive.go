package recovery

import (
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// leaseMargin is how much longer than the lease the leader waits before it
// takes an agent's lease for lapsed: a fixed part for scheduling and a part
// for clocks that run at slightly different rates.
func leaseMargin(lease time.Duration) time.Duration {
	return 500*time.Millisecond + lease/20
}

// lease returns the lease to count with: this leader's, or a longer one that
// agents reported holding (a replica configured otherwise granted it).
func (e *Engine) lease() time.Duration {
	if e.cfg.ReportedLease != nil {
		return max(e.cfg.Lease, e.cfg.ReportedLease())
	}
	return e.cfg.Lease
}

// leaseLapse returns when the lease of a node has surely lapsed: the latest
// heartbeat this leader recorded (or, if later, the moment it started
// leading, since an earlier leader may have acknowledged one just before),
// plus the lease and the margin.
func (e *Engine) leaseLapse(node string) time.Time {
	anchor := e.started
	if v, ok := e.health.NodeView(node); ok && v.LastHeard.After(anchor) {
		anchor = v.LastHeard
	}
	l := e.lease()
	return anchor.Add(l + leaseMargin(l))
}

// startBound is, for an exclusive start this leader sent, the moment after
// which that generation can no longer start on its node: the agent refuses
// a start more than api.ExclusiveStartWindow after the heartbeat the request
// names, and this leader heard that heartbeat at or after it was sent.
type startBound struct {
	gen   uint64
	after time.Time
}

// exclusiveWait tells whether an exclusive workload must wait before it is
// started anywhere, and until when: while the node it was last placed on may
// still run an instance, or start one. That node may not, once it is gone
// from the state, once its report shows the placed generation (or a later
// one) ended (a generation runs at most once), once a report from a check
// that began after this leader's start of that generation could no longer
// land shows no instance running, or once its lease has surely lapsed (its
// agent has killed it, and starts nothing so late).
func (e *Engine) exclusiveWait(s *fsm.State, w *api.Workload, observed map[string]observation, now time.Time) (bool, time.Time) {
	if !w.Exclusive || w.Node == "" {
		return false, time.Time{}
	}
	if _, ok := s.Nodes[w.Node]; !ok {
		return false, time.Time{}
	}
	obs, seen := observed[w.Node]
	var inst api.AgentWorkload
	found := false
	if seen {
		inst, found = findInstance(obs.status, w.ID)
		if found && !present(inst.State) && inst.Generation >= w.Generation {
			return false, time.Time{}
		}
	}
	e.mu.Lock()
	b, bounded := e.bounds[w.ID]
	e.mu.Unlock()
	if bounded && b.gen == w.Generation {
		// A report counts from a check that began after the bound: it
		// answered at obs.at, at most MissingGrace after it began.
		if seen && obs.at.After(b.after.Add(e.cfg.MissingGrace)) && !(found && present(inst.State)) {
			return false, time.Time{}
		}
	}
	lapse := e.leaseLapse(w.Node)
	if !now.Before(lapse) {
		return false, time.Time{}
	}
	return true, lapse
}

// noteStart records the bound of an exclusive start about to be sent.
func (e *Engine) noteStart(id string, gen uint64, heard time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bounds[id] = startBound{gen: gen, after: heard.Add(api.ExclusiveStartWindow)}
}

// leased reports whether a node can hold a lease for exclusive workloads:
// its heartbeats reach this leader.
func (e *Engine) leased(node string, now time.Time) bool {
	v, ok := e.health.NodeView(node)
	return ok && !v.LastHeard.IsZero() && now.Sub(v.LastHeard) < e.lease()/2
}

// wakeAt asks for a pass at t; one timer serves, set to the earliest time asked.
func (e *Engine) wakeAt(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.nextWake.IsZero() && !t.Before(e.nextWake) && e.nextWake.After(time.Now()) {
		return
	}
	e.nextWake = t
	d := time.Until(t) + 10*time.Millisecond
	if e.wakeTimer == nil {
		e.wakeTimer = time.AfterFunc(d, e.Kick)
	} else {
		e.wakeTimer.Reset(d)
	}
}

// stopWake stops the wake-up timer (when leadership ends).
func (e *Engine) stopWake() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wakeTimer != nil {
		e.wakeTimer.Stop()
	}
}

// InstanceGone reports whether the instance of stopped workload w is surely
// no longer running: it was never placed, its node's latest report (after
// the stop) shows it ended or absent, or the node's lease has lapsed since
// its node was last heard.
func (e *Engine) InstanceGone(w *api.Workload) bool {
	if w.Node == "" {
		return true
	}
	e.mu.Lock()
	obs, seen := e.observed[w.Node]
	e.mu.Unlock()
	if seen && obs.at.After(w.UpdatedAt.Add(e.cfg.MissingGrace)) {
		inst, found := findInstance(obs.status, w.ID)
		if !found || inst.Generation != w.Generation || !present(inst.State) {
			return true
		}
	}
	return !time.Now().Before(e.leaseLapse(w.Node))
}
