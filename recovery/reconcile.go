package recovery

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// stray is an instance an agent runs that the desired state does not place there.
type stray struct {
	node, addr, id string
	generation     uint64
	// why, when set, says why the leader stops an instance that is not a
	// stray (the old instance of a finished move, a drained one): it is
	// logged instead of counted and reported as a stray.
	why string
}

// reconcile compares each newly reported agent status with the desired
// state: strays are stopped, instances that exited are queued for a restart
// (counting an attempt) unless a batch workload exited 0 (then it is
// completed), instances that vanished or were stopped are queued again (not
// counted), running instances whose start outcome was never recorded are
// adopted, and changes of a running instance's health, restarts in place,
// ports or pid are recorded. An instance that is restarting in place counts
// as present. It reports whether it changed the state.
func (e *Engine) reconcile(ctx context.Context) bool {
	e.mu.Lock()
	var nodes []string
	obs := map[string]observation{}
	for n := range e.dirty {
		nodes = append(nodes, n)
		obs[n] = e.observed[n]
	}
	e.dirty = map[string]bool{}
	e.mu.Unlock()
	if len(nodes) == 0 {
		return false
	}
	sort.Strings(nodes)
	var reqs []fsm.RecoveryRequest
	var outcomes []fsm.Outcome
	var reports []fsm.InstanceReport
	var completed []completion
	var strays []stray
	e.store.Read(func(s *fsm.State) {
		// The running workloads of the reported nodes, found in one scan.
		placed := map[string][]*api.Workload{}
		for _, n := range nodes {
			placed[n] = nil
		}
		for _, w := range s.Workloads {
			if _, ok := placed[w.Node]; ok && w.State == api.StateRunning {
				placed[w.Node] = append(placed[w.Node], w)
			}
		}
		for _, nodeID := range nodes {
			n, ok := s.Nodes[nodeID]
			if !ok {
				continue
			}
			o := obs[nodeID]
			seen := map[string]bool{}
			for _, inst := range o.status.Workloads {
				w := s.Workloads[inst.ID]
				here := w != nil && w.Node == nodeID && w.Generation == inst.Generation &&
					w.State != api.StateStopped && w.State != api.StatePermanentlyFailed && w.State != api.StateCompleted
				if w != nil && w.MoveFrom != nil && w.MoveFrom.Node == nodeID && w.MoveFrom.Generation == inst.Generation && fsm.IsLive(w) {
					continue // the old instance of a move: it runs until the new one is up
				}
				if !here {
					if present(inst.State) {
						// Stop exactly the reported generation: the agent refuses
						// it once it runs a newer one, so a late report can never
						// stop the current instance.
						strays = append(strays, stray{node: nodeID, addr: n.Address, id: inst.ID, generation: inst.Generation})
					}
					continue
				}
				if n.Status == api.NodeOffline || e.isInflight(inst.ID) {
					seen[inst.ID] = true
					continue // its workloads are being moved, or a start is under way
				}
				switch inst.State {
				case api.InstanceRunning, api.InstanceRestarting:
					// A restarting instance waits out its restart delay and
					// runs again on its node: present, neither lost nor failed.
					seen[inst.ID] = true
					switch {
					case w.State != api.StateRunning:
						outcomes = append(outcomes, fsm.Outcome{ID: w.ID, Generation: w.Generation, Running: true, PID: inst.PID})
					case inst.State == api.InstanceRunning && w.Attempts > 0 && o.at.Sub(w.UpdatedAt) > e.cfg.StableAfter &&
						o.at.Sub(inst.StartedAt) > e.cfg.StableAfter: // this run too: restarts in place do not update the workload
						// Running steadily again: earlier failures stop counting.
						outcomes = append(outcomes, fsm.Outcome{ID: w.ID, Generation: w.Generation, Running: true, PID: inst.PID, Stable: true})
					}
					if r, changed := instanceReport(w, inst); changed {
						reports = append(reports, r)
					}
				case api.InstanceExited, api.InstanceFailed:
					seen[inst.ID] = true
					if w.State != api.StateRunning {
						break
					}
					if completedExit(w, inst) {
						outcomes = append(outcomes, completedOutcome(w, inst))
						completed = append(completed, completion{id: w.ID, node: nodeID})
						break
					}
					// Its restarts in place ran out, or it has none: the
					// leader moves it, counting an attempt. The restarts it
					// had stay readable beside the reason.
					if r := max(inst.Restarts, 0); r != w.Restarts {
						reports = append(reports, fsm.InstanceReport{ID: w.ID, Generation: w.Generation, Health: w.Health, Restarts: r, Ports: maps.Clone(w.Ports)})
					}
					reqs = append(reqs, fsm.RecoveryRequest{ID: w.ID, Reason: exitReason(inst, nodeID), CountAttempt: true})
				}
				// An instance reported stopped counts as absent below.
			}
			if n.Status == api.NodeOffline {
				continue
			}
			for _, w := range placed[nodeID] {
				if !seen[w.ID] && !e.isInflight(w.ID) && w.UpdatedAt.Before(o.at.Add(-e.cfg.MissingGrace)) && e.started.Before(o.at.Add(-e.cfg.MissingGrace)) {
					reqs = append(reqs, fsm.RecoveryRequest{ID: w.ID, Reason: "instance no longer running on node " + nodeID})
				}
			}
		}
	})
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].ID < reqs[j].ID })
	now := time.Now().UTC()
	changed := false
	if len(outcomes) > 0 {
		if err := e.store.Apply(&fsm.RecordOutcomes{At: now, MaxAttempts: e.cfg.MaxAttempts, Outcomes: outcomes}); err != nil {
			e.log.Warn("recording reported instances failed", "error", err)
		} else {
			for _, c := range completed {
				e.noteCompleted(c.id, c.node)
			}
		}
		changed = true
	}
	// Before the queueing below: a report applies to running instances only.
	if len(reports) > 0 {
		if err := e.store.Apply(&fsm.UpdateInstances{Reports: reports}); err != nil {
			e.log.Warn("recording reported health, restarts and ports failed", "error", err)
		}
	}
	if len(reqs) > 0 {
		for _, r := range reqs {
			e.log.Info("workload no longer running; queued for restart", "workload", r.ID, "reason", r.Reason)
			e.cfg.OnEvent("workload_failed", r.ID, "", r.Reason)
		}
		if err := e.store.Apply(&fsm.EnqueueRecovery{At: now, MaxAttempts: e.cfg.MaxAttempts, Requests: reqs}); err != nil {
			e.log.Warn("queueing exited workloads failed", "error", err)
		}
		e.notePermanent(reqs)
		changed = true
	}
	for _, st := range strays {
		e.stopStray(ctx, st)
	}
	return changed
}

// notePermanent counts and reports workloads that just became permanently failed.
func (e *Engine) notePermanent(reqs []fsm.RecoveryRequest) {
	var ids []string
	e.store.Read(func(s *fsm.State) {
		for _, r := range reqs {
			if w, ok := s.Workloads[r.ID]; ok && w.State == api.StatePermanentlyFailed {
				ids = append(ids, r.ID)
			}
		}
	})
	e.mu.Lock()
	e.stats.Permanent += uint64(len(ids))
	e.mu.Unlock()
	for _, id := range ids {
		e.log.Error("workload permanently failed", "workload", id)
		e.cfg.OnEvent("workload_permanently_failed", id, "", "gave up after the maximum attempts")
	}
}

// exitReason says how an instance ended, with what its agent adds (for
// example "OOM killed", or that its restarts in place ran out).
func exitReason(inst api.AgentWorkload, node string) string {
	var reason string
	switch {
	case inst.Error != "":
		reason = "failed on " + node + ": " + inst.Error
	case inst.ExitCode != nil:
		reason = fmt.Sprintf("exited with code %d on %s", *inst.ExitCode, node)
	default:
		reason = "exited on " + node
	}
	if inst.Reason != "" && !strings.Contains(inst.Error, inst.Reason) { // "OOM killed" is often in Error already
		reason += ": " + inst.Reason
	}
	if inst.Restarts > 0 {
		reason += fmt.Sprintf(" (after %d restarts in place)", inst.Restarts)
	}
	return reason
}

// present reports whether an instance in this agent-side state is there:
// running, or restarting in place after its restart delay.
func present(state string) bool {
	return state == api.InstanceRunning || state == api.InstanceRestarting
}

// completedExit reports whether a reported instance of w ran to its end: a
// batch workload whose process exited 0.
func completedExit(w *api.Workload, inst api.AgentWorkload) bool {
	return w.Spec.Type == api.TypeBatch && inst.State == api.InstanceExited && inst.Error == "" &&
		inst.ExitCode != nil && *inst.ExitCode == 0
}

// completedOutcome is the outcome that makes w completed.
func completedOutcome(w *api.Workload, inst api.AgentWorkload) fsm.Outcome {
	return fsm.Outcome{ID: w.ID, Generation: w.Generation, ExitCode: new(int), Completed: true, Reason: inst.Reason}
}

// completion is a workload recorded completed, for its event.
type completion struct{ id, node string }

// noteCompleted logs and reports a workload that ran to its end.
func (e *Engine) noteCompleted(id, node string) {
	e.log.Info("workload completed", "workload", id, "node", node)
	e.cfg.OnEvent(api.EventWorkloadCompleted, id, node, "exited 0 on "+node+"; completed")
}

// instanceReport returns what the state should hold of a running instance
// as its agent reported it (health, restarts in place, ports, pid), and
// whether that differs from what it holds. Ports are kept only for the
// spec's labels, and health only as healthy or unhealthy (empty is unknown).
func instanceReport(w *api.Workload, inst api.AgentWorkload) (fsm.InstanceReport, bool) {
	r := fsm.InstanceReport{ID: w.ID, Generation: w.Generation, Restarts: max(inst.Restarts, 0), PID: w.PID}
	switch inst.Health {
	case api.HealthHealthy, api.HealthUnhealthy:
		r.Health = inst.Health
	}
	if inst.PID > 0 {
		r.PID = inst.PID
	}
	for _, label := range w.Spec.Ports {
		if p, ok := inst.Ports[label]; ok && p > 0 && p <= 65535 {
			if r.Ports == nil {
				r.Ports = map[string]int{}
			}
			r.Ports[label] = p
		}
	}
	changed := r.Health != w.Health || r.Restarts != w.Restarts || r.PID != w.PID || !maps.Equal(r.Ports, w.Ports)
	return r, changed
}

// stopStray stops an instance the desired state does not place on its node,
// in the background, once at a time per instance.
func (e *Engine) stopStray(ctx context.Context, st stray) {
	key := st.node + "/" + st.id
	e.mu.Lock()
	if e.stopping[key] {
		e.mu.Unlock()
		return
	}
	e.stopping[key] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() { e.mu.Lock(); delete(e.stopping, key); e.mu.Unlock() }()
		select {
		case e.stopSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-e.stopSem }()
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := e.agents.Stop(cctx, st.addr, st.id, e.cfg.Term, st.generation); err != nil {
			e.log.Warn("stopping a stray instance failed; will retry on the next report", "workload", st.id, "node", st.node, "error", err)
			return
		}
		if st.why != "" {
			e.log.Info("instance stopped", "workload", st.id, "node", st.node, "generation", st.generation, "why", st.why)
			return
		}
		e.mu.Lock()
		e.stats.StraysStopped++
		e.mu.Unlock()
		e.log.Info("stray instance stopped", "workload", st.id, "node", st.node)
		e.cfg.OnEvent("stray_stopped", st.id, st.node, "stopped an instance the desired state no longer places on "+st.node)
	}()
}

func findInstance(st api.AgentStatus, id string) (api.AgentWorkload, bool) {
	for _, w := range st.Workloads {
		if w.ID == id {
			return w, true
		}
	}
	return api.AgentWorkload{}, false
}
