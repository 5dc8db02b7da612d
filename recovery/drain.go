package recovery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Drain limits.
const (
	// maxDrainMoves bounds the moves (and exclusive stops) under way at
	// once, over every draining node.
	maxDrainMoves = 32
	// moveTimeout is how long a move waits for its new instance to be up
	// (healthy, with a check) before it is given up, unless the workload's
	// job sets a healthy_deadline.
	moveTimeout = 2 * time.Minute
	// moveBackoff is how long a workload whose move was given up waits
	// before it is moved again (to another node).
	moveBackoff = 10 * time.Second
)

// EventNodeDrained is the event of a drain that finished.
const EventNodeDrained = "node_drained"

// lastPlacement returns w's newest placement, if any.
func lastPlacement(w *api.Workload) (api.Placement, bool) {
	if len(w.History) == 0 {
		return api.Placement{}, false
	}
	return w.History[len(w.History)-1], true
}

// abandonedMove returns the node of w's last placement when that was a move
// given up (its generation above the workload's), and when.
func abandonedMove(w *api.Workload) (string, time.Time, bool) {
	p, ok := lastPlacement(w)
	if !ok || p.Generation <= w.Generation {
		return "", time.Time{}, false
	}
	return p.Node, p.At, true
}

// drainMoves returns the running workloads to move off draining nodes now,
// start first: not exclusive ones (they stop first, see drainStep), not
// batch ones (they may finish until the deadline), at most a job's
// max_parallel instances of one job at a time, and not a workload whose
// last move was given up less than moveBackoff ago. The caller holds the
// read.
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
	moving, total := e.movesUnderWay(s)
	now := time.Now()
	var out []work
	for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
		if total >= maxDrainMoves {
			break
		}
		w := s.Workloads[id]
		if !draining[w.Node] || w.State != api.StateRunning || w.MoveFrom != nil || w.Exclusive || w.Spec.Type == api.TypeBatch || e.isInflight(id) {
			continue
		}
		if _, at, ok := abandonedMove(w); ok && now.Sub(at) < moveBackoff {
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

// movesUnderWay counts the moves under way, by job and in all, with the
// exclusive workloads this leader is stopping for a drain.
func (e *Engine) movesUnderWay(s *fsm.State) (map[string]int, int) {
	moving, total := map[string]int{}, 0
	for _, w := range s.Workloads {
		if w.MoveFrom != nil && fsm.IsLive(w) {
			total++
			if w.Job != "" {
				moving[w.Job]++
			}
		}
	}
	e.mu.Lock()
	for key := range e.stopping {
		if node, id, ok := strings.Cut(key, "/"); ok {
			if w := s.Workloads[id]; w != nil && w.Exclusive && w.Node == node && fsm.IsLive(w) {
				total++
				if w.Job != "" {
					moving[w.Job]++
				}
			}
		}
	}
	e.mu.Unlock()
	return moving, total
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

// timeoutOfMove is how long w's move may wait for its new instance.
func timeoutOfMove(s *fsm.State, w *api.Workload) time.Duration {
	if j, ok := s.Jobs[w.Job]; ok {
		if cur := j.Current(); cur != nil && cur.Spec.Update != nil && cur.Spec.Update.HealthyDeadline > 0 {
			return cur.Spec.Update.HealthyDeadline.D()
		}
	}
	return moveTimeout
}

func moveRef(w *api.Workload) fsm.MoveRef {
	return fsm.MoveRef{ID: w.ID, Generation: w.Generation, FromNode: w.MoveFrom.Node, FromGeneration: w.MoveFrom.Generation}
}

// drainStep drives the drains: it ends the moves whose new instance is up
// (healthy, where it has a check) and then stops their old instances, gives
// up the moves whose new instance did not come up in time (stopping that
// one), stops exclusive workloads on draining nodes before they move (the
// reconciliation then queues them, and placement starts them elsewhere once
// their node reports them gone: never two at once), stops what is left
// once a drain's deadline passed (it is then placed elsewhere the same
// way), and records the drains that are done.
func (e *Engine) drainStep(ctx context.Context) {
	// Most passes have neither a drain nor a move: find out in one scan
	// without sorting (this runs at every pass, over every workload).
	// Moves only start on a draining node: once a scan found neither, none
	// can appear until a node drains again (movesClear; only Run's
	// goroutine touches it).
	idle := true
	e.store.Read(func(s *fsm.State) {
		for _, n := range s.Nodes {
			if n.Draining {
				idle = false
				e.movesClear = false
				return
			}
		}
		if e.movesClear {
			return
		}
		for _, w := range s.Workloads {
			if w.MoveFrom != nil {
				idle = false
				return
			}
		}
		e.movesClear = true
	})
	if idle {
		return
	}
	now := time.Now().UTC()
	var finish, abandon []fsm.MoveRef
	var stops []stray
	var done []string
	waitingHealth := false
	e.store.Read(func(s *fsm.State) {
		moving, total := e.movesUnderWay(s)
		for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
			w := s.Workloads[id]
			m := w.MoveFrom
			if m == nil || !fsm.IsLive(w) || e.isInflight(id) {
				continue
			}
			n := s.Nodes[m.Node]
			pastDeadline := n != nil && n.Drain != nil && !now.Before(n.Drain.Deadline)
			up := w.State == api.StateRunning && (w.Spec.Check == nil || w.Health == api.HealthHealthy)
			switch p, _ := lastPlacement(w); {
			case up || pastDeadline:
				finish = append(finish, moveRef(w))
			case now.Sub(p.At) > timeoutOfMove(s, w):
				abandon = append(abandon, moveRef(w))
			case w.State == api.StateRunning:
				waitingHealth = true
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
				if w.MoveFrom != nil && w.MoveFrom.Node == nid && fsm.IsLive(w) {
					busy = true
				}
				if w.Node != nid || !fsm.IsLive(w) {
					continue
				}
				busy = true
				if n.Status == api.NodeOffline || e.isInflight(id) || w.State != api.StateRunning || w.MoveFrom != nil {
					continue
				}
				var why string
				switch {
				case pastDeadline:
					why = fmt.Sprintf("drain deadline of node %s passed", nid)
				case w.Exclusive:
					if total >= maxDrainMoves || (w.Job != "" && moving[w.Job] >= jobParallel(s, w.Job)) {
						continue
					}
					total++
					if w.Job != "" {
						moving[w.Job]++
					}
					why = "node " + nid + " draining (an exclusive workload stops before it moves)"
				default:
					continue
				}
				stops = append(stops, stray{node: nid, addr: n.Address, id: id, generation: w.Generation, why: why})
			}
			if !busy {
				done = append(done, nid)
			}
		}
	})
	changed := false
	if len(finish) > 0 {
		if err := e.store.Apply(&fsm.FinishMoves{At: now, Moves: finish}); err != nil {
			e.log.Warn("recording finished moves failed", "error", err)
			return
		}
		changed = true
	}
	if len(abandon) > 0 {
		if err := e.store.Apply(&fsm.AbandonMoves{At: now, Moves: abandon}); err != nil {
			e.log.Warn("recording abandoned moves failed", "error", err)
			return
		}
		changed = true
	}
	// Stop only what the state now says: the old instance of a move that
	// ended (not one given up meanwhile, say because its new node died),
	// and the new instance of a move given up.
	e.store.Read(func(s *fsm.State) {
		addr := func(node string) string {
			if n, ok := s.Nodes[node]; ok && n.Status != api.NodeOffline {
				return n.Address
			}
			return ""
		}
		for _, ref := range finish {
			if w, ok := s.Workloads[ref.ID]; ok && w.MoveFrom == nil && w.Generation == ref.Generation && w.Node != ref.FromNode {
				if a := addr(ref.FromNode); a != "" {
					stops = append(stops, stray{node: ref.FromNode, addr: a, id: ref.ID, generation: ref.FromGeneration, why: "moved off node " + ref.FromNode})
				}
			}
		}
		for _, ref := range abandon {
			if w, ok := s.Workloads[ref.ID]; ok && w.MoveFrom == nil && w.Generation == ref.FromGeneration {
				if p, ok := lastPlacement(w); ok && p.Generation == ref.Generation {
					if a := addr(p.Node); a != "" {
						e.log.Warn("move given up: its new instance did not come up in time", "workload", ref.ID, "node", p.Node)
						stops = append(stops, stray{node: p.Node, addr: a, id: ref.ID, generation: ref.Generation, why: "move given up"})
					}
				}
			}
		}
	})
	for _, st := range stops {
		e.stopStray(ctx, st)
	}
	if changed {
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
