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

// leaseLapse returns when the lease of a node has surely lapsed: the latest
// heartbeat this leader acknowledged (or, if later, the moment it started
// leading, since an earlier leader may have acknowledged one just before),
// plus the lease and the margin.
func (e *Engine) leaseLapse(node string) time.Time {
	anchor := e.started
	if v, ok := e.health.NodeView(node); ok && v.LastHeard.After(anchor) {
		anchor = v.LastHeard
	}
	return anchor.Add(e.cfg.Lease + leaseMargin(e.cfg.Lease))
}

// exclusiveWait tells whether an exclusive workload must wait before it is
// started anywhere, and until when: while the node it was last placed on may
// still run an instance. That node may not, once it is gone from the state,
// once its latest report shows the placed generation ended (a generation
// runs at most once), once a report well after the last change shows no
// instance at all, or once its lease has surely lapsed (its agent has then
// killed it).
func (e *Engine) exclusiveWait(s *fsm.State, w *api.Workload, observed map[string]observation, now time.Time) (bool, time.Time) {
	if !w.Exclusive || w.Node == "" {
		return false, time.Time{}
	}
	if _, ok := s.Nodes[w.Node]; !ok {
		return false, time.Time{}
	}
	if obs, ok := observed[w.Node]; ok && obs.at.After(w.UpdatedAt) {
		inst, found := findInstance(obs.status, w.ID)
		switch {
		case found && inst.State != api.InstanceRunning && inst.Generation >= w.Generation:
			return false, time.Time{}
		case !found && obs.at.After(w.UpdatedAt.Add(e.cfg.MissingGrace)):
			return false, time.Time{}
		}
	}
	lapse := e.leaseLapse(w.Node)
	if !now.Before(lapse) {
		return false, time.Time{}
	}
	return true, lapse
}

// leased reports whether a node can hold a lease for exclusive workloads:
// its heartbeats reach this leader.
func (e *Engine) leased(node string, now time.Time) bool {
	v, ok := e.health.NodeView(node)
	return ok && !v.LastHeard.IsZero() && now.Sub(v.LastHeard) < e.cfg.Lease/2
}

// wakeAt asks for a pass at t (the earliest of those asked for wins).
func (e *Engine) wakeAt(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.nextWake.IsZero() && !t.Before(e.nextWake) && e.nextWake.After(time.Now()) {
		return
	}
	e.nextWake = t
	time.AfterFunc(time.Until(t)+10*time.Millisecond, e.Kick)
}
