package recovery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// maxDrainMoves bounds the start-first moves under way at once, over every
// draining node.
const maxDrainMoves = 32

// EventNodeDrained is the event of a drain that finished.
const EventNodeDrained = "node_drained"

// drainMoves returns the running workloads to move off draining nodes now,
// start first: not exclusive ones (they stop first, see drainStep), not
// batch ones (they may finish until the deadline), at most a job's
// max_parallel instances of one job at a time. The caller holds the read.
func (e *Engine) drainMoves(s *fsm.State) []work {
	draining := map[string]bool{}
	for id, n := range s.Nodes {
		if n.Draining && n.Status != api.NodeOffline {
			draining[id] = true
		}
	}
	if len(draining) == 0 {
		return nil
	}
	moving, total := map[string]int{}, 0
	for _, w := range s.Workloads {
		if w.MoveFrom != nil && fsm.IsLive(w) {
			total++
			if w.Job != "" {
				moving[w.Job]++
			}
		}
	}
	var out []work
	for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
		if total >= maxDrainMoves {
			break
		}
		w := s.Workloads[id]
		if !draining[w.Node] || w.State != api.StateRunning || w.MoveFrom != nil || w.Exclusive || w.Spec.Type == api.TypeBatch || e.isInflight(id) {
			continue
		}
		if w.Job != "" {
			if moving[w.Job] >= jobParallel(s, w.Job) {
				continue
			}
			moving[w.Job]++
		}
		total++
		out = append(out, work{w: fsm.CopyWorkload(w), migrate: true})
	}
	return out
}

// jobParallel is the max_parallel of job name's current version (1 when
// unknown).
func jobParallel(s *fsm.State, name string) int {
	if j, ok := s.Jobs[name]; ok {
		if cur := j.Current(); cur != nil {
			return cur.Spec.Update.Parallel()
		}
	}
	return api.DefaultMaxParallel
}

// drainStep drives the drains: it ends the moves whose new instance is up
// (healthy, where it has a check) and stops their old instances, stops
// exclusive workloads on draining nodes before they move (never two at
// once), moves off whatever is left once a drain's deadline passed, and
// records the drains that are done.
func (e *Engine) drainStep(ctx context.Context) {
	now := time.Now().UTC()
	var finish []string
	var stops []stray
	var evict []fsm.RecoveryRequest
	var done []string
	waitingHealth := false
	e.store.Read(func(s *fsm.State) {
		addr := func(node string) string {
			if n, ok := s.Nodes[node]; ok && n.Status != api.NodeOffline {
				return n.Address
			}
			return ""
		}
		for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
			w := s.Workloads[id]
			m := w.MoveFrom
			if m == nil || !fsm.IsLive(w) || e.isInflight(id) {
				continue
			}
			n := s.Nodes[m.Node]
			pastDeadline := n != nil && n.Drain != nil && !now.Before(n.Drain.Deadline)
			if w.State == api.StateRunning && w.Spec.Check != nil && w.Health != api.HealthHealthy {
				waitingHealth = true
			}
			if (w.State == api.StateRunning && (w.Spec.Check == nil || w.Health == api.HealthHealthy)) || pastDeadline {
				finish = append(finish, id)
				if a := addr(m.Node); a != "" {
					stops = append(stops, stray{node: m.Node, addr: a, id: id, generation: m.Generation, why: "moved off draining node " + m.Node})
				}
			}
		}
		for _, nid := range slices.Sorted(maps.Keys(s.Nodes)) {
			n := s.Nodes[nid]
			if !n.Draining {
				continue
			}
			pastDeadline := n.Drain != nil && !now.Before(n.Drain.Deadline)
			busy := false
			for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
				w := s.Workloads[id]
				if w.MoveFrom != nil && w.MoveFrom.Node == nid {
					busy = true
				}
				if w.Node != nid || !fsm.IsLive(w) {
					continue
				}
				busy = true
				if n.Status == api.NodeOffline || e.isInflight(id) || w.State != api.StateRunning || w.MoveFrom != nil {
					continue
				}
				reason := ""
				switch {
				case pastDeadline:
					reason = fmt.Sprintf("drain deadline of node %s passed", nid)
				case w.Exclusive:
					reason = "node " + nid + " draining (exclusive: stopped before it moves)"
				default:
					continue
				}
				evict = append(evict, fsm.RecoveryRequest{ID: id, Reason: reason})
				stops = append(stops, stray{node: nid, addr: n.Address, id: id, generation: w.Generation, why: reason})
			}
			if !busy {
				done = append(done, nid)
			}
		}
	})
	if len(finish) > 0 {
		if err := e.store.Apply(&fsm.FinishMoves{At: now, IDs: finish}); err != nil {
			e.log.Warn("recording finished moves failed", "error", err)
			return
		}
	}
	if len(evict) > 0 {
		if err := e.store.Apply(&fsm.EnqueueRecovery{At: now, MaxAttempts: e.cfg.MaxAttempts, Requests: evict}); err != nil {
			e.log.Warn("queueing workloads off draining nodes failed", "error", err)
			return
		}
	}
	for _, st := range stops {
		e.stopStray(ctx, st)
	}
	if len(finish) > 0 || len(evict) > 0 {
		e.Kick() // the drain may be done now, or its next moves may start
	}
	if waitingHealth && time.Since(e.lastRefresh) >= time.Second {
		// A move waits for its new instance's check: ask for fresh
		// reports rather than wait for the next health round.
		e.lastRefresh = time.Now()
		e.cfg.Refresh()
	}
	for _, nid := range done {
		if err := e.store.Apply(&fsm.SetDrain{At: now, ID: nid, Done: true}); err != nil {
			e.log.Warn("recording a finished drain failed", "node", nid, "error", err)
			continue
		}
		e.log.Info("drain finished; the node stays ineligible", "node", nid)
		e.cfg.OnEvent(EventNodeDrained, "", nid, "drain of "+nid+" finished; it takes no new work until its eligibility is enabled")
	}
}
