package fsm

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// apply dispatches one decoded command to its apply function. It returns an
// error for a command that cannot apply; the state is then unchanged.
func (s *State) apply(c Command) error {
	switch c := c.(type) {
	case *SubmitWorkloads:
		return s.applySubmit(c)
	case *StopWorkload:
		return s.applyStop(c)
	case *RegisterNode:
		return s.applyRegister(c)
	case *SetNodeStatus:
		return s.applyNodeStatus(c)
	case *EnqueueRecovery:
		return s.applyEnqueue(c)
	case *PlaceWorkloads:
		return s.applyPlace(c)
	case *RecordOutcomes:
		return s.applyOutcomes(c)
	case *SetReplica:
		return s.applySetReplica(c)
	case *RemoveReplica:
		return s.applyRemoveReplica(c)
	case *LoadState:
		return s.applyLoad(c)
	case *SetAlerts:
		s.ActiveAlerts = append([]api.Alert(nil), c.Alerts...)
		return nil
	case *UpdateInstances:
		return s.applyUpdateInstances(c)
	case *SetWaitReasons:
		return s.applyWaitReasons(c)
	case *RegisterJob:
		return s.applyRegisterJob(c)
	case *ScaleJob:
		return s.applyScaleJob(c)
	case *StopJob:
		return s.applyStopJob(c)
	case *JobStep:
		return s.applyJobStep(c)
	case *SetEligibility:
		return s.applySetEligibility(c)
	case *SetDrain:
		return s.applySetDrain(c)
	case *PurgeNode:
		return s.applyPurgeNode(c)
	case *NodeRestarting:
		return s.applyNodeRestarting(c)
	case *CollectGarbage:
		return s.applyCollectGarbage(c)
	case *FinishMoves:
		return s.applyFinishMoves(c)
	case *AbandonMoves:
		return s.applyAbandonMoves(c)
	default:
		return fmt.Errorf("%w: unhandled command %T", ErrInvalid, c)
	}
}

func (s *State) applySubmit(c *SubmitWorkloads) error {
	seen := map[string]bool{}
	for _, w := range c.Workloads {
		if w.ID == "" || w.Command == "" {
			return fmt.Errorf("%w: workload without id or command", ErrInvalid)
		}
		if _, ok := s.Workloads[w.ID]; ok || seen[w.ID] {
			return fmt.Errorf("%w: workload %s already exists", ErrConflict, w.ID)
		}
		seen[w.ID] = true
	}
	for i := range c.Workloads {
		w := CopyWorkload(&c.Workloads[i])
		w.State = api.StatePending
		w.Node = ""
		w.Attempts = 0
		w.Generation = 0
		w.PID = 0
		w.ExitCode = nil
		w.History = nil
		w.Health, w.Restarts, w.Ports = "", 0, nil
		w.CreatedAt = c.At
		w.UpdatedAt = c.At
		s.Workloads[w.ID] = w
		s.notePending(w.ID, true)
	}
	if c.Seq > s.LastSeq {
		s.LastSeq = c.Seq
	}
	return nil
}

func (s *State) applyStop(c *StopWorkload) error {
	w, ok := s.Workloads[c.ID]
	if !ok {
		return fmt.Errorf("%w: workload %s", ErrNotFound, c.ID)
	}
	s.stopWorkload(w, "stopped by request", c.At)
	return nil
}

// restoreMove gives up the move of w: its old instance, still running on
// its old node, is the workload's again.
func (s *State) restoreMove(w *api.Workload, at time.Time) {
	m := w.MoveFrom
	w.Node, w.Generation = m.Node, m.Generation
	w.State = api.StateRunning
	w.PID, w.Health, w.Ports = m.PID, m.Health, maps.Clone(m.Ports)
	w.ExitCode = nil
	w.MoveFrom = nil
	w.UpdatedAt = at
	s.dequeue(w.ID)
}

// ended clears what only a live instance has: its pid, the check's verdict
// and its ports. The restarts in place stay, to tell how it ended.
func ended(w *api.Workload) {
	w.PID = 0
	w.Health = ""
	w.Ports = nil
}

// isFinal reports whether a workload's state is final: nothing but a stop
// changes it any more.
func isFinal(w *api.Workload) bool {
	switch w.State {
	case api.StateStopped, api.StatePermanentlyFailed, api.StateCompleted:
		return true
	}
	return false
}

func (s *State) applyRegister(c *RegisterNode) error {
	if c.ID == "" || c.Address == "" {
		return fmt.Errorf("%w: node without id or address", ErrInvalid)
	}
	if cp := c.Capacity; cp != nil && (cp.CPUMillicores < 0 || cp.MemoryMB < 0) {
		return fmt.Errorf("%w: node %s with a negative capacity", ErrInvalid, c.ID)
	}
	// A registration says what the agent offers now: an agent restarted
	// with other flags (or an older build, without any) replaces it.
	capacity := copyCapacity(c.Capacity)
	if n, ok := s.Nodes[c.ID]; ok {
		n.Address = c.Address
		n.Capacity = capacity
		n.RestartingUntil = nil // its agent is back
		n.UpdatedAt = c.At
		return nil
	}
	s.Nodes[c.ID] = &api.Node{ID: c.ID, Address: c.Address, Status: api.NodeOnline, RegisteredAt: c.At, UpdatedAt: c.At, Capacity: capacity, Eligible: true}
	return nil
}

func (s *State) applyNodeStatus(c *SetNodeStatus) error {
	for _, ch := range c.Changes {
		switch ch.Status {
		case api.NodeOnline, api.NodeDegraded, api.NodeOffline:
		default:
			return fmt.Errorf("%w: node status %q", ErrInvalid, ch.Status)
		}
		if _, ok := s.Nodes[ch.ID]; !ok {
			return fmt.Errorf("%w: node %s", ErrNotFound, ch.ID)
		}
	}
	for _, ch := range c.Changes {
		n := s.Nodes[ch.ID]
		n.Status = ch.Status
		n.UpdatedAt = c.At
		if ch.Status == api.NodeOffline && ch.Evict {
			s.evictNode(ch.ID, c.At)
		}
	}
	return nil
}

// evictNode fails every live workload placed on the node and queues it.
func (s *State) evictNode(node string, at time.Time) {
	for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
		w := s.Workloads[id]
		if w.MoveFrom != nil && w.MoveFrom.Node == node {
			w.MoveFrom = nil // the old instance of a move died with its node
		}
		if w.Node != node || (w.State != api.StateRunning && w.State != api.StatePending) {
			continue
		}
		if w.MoveFrom != nil {
			s.restoreMove(w, at) // the new node died: the old instance runs on
			continue
		}
		reason := "node " + node + " offline"
		w.State = api.StateFailed
		w.Reason = reason
		ended(w)
		w.UpdatedAt = at
		s.enqueue(id, at, reason)
	}
}

func (s *State) applyEnqueue(c *EnqueueRecovery) error {
	for _, r := range c.Requests {
		w, ok := s.Workloads[r.ID]
		if !ok || isFinal(w) {
			continue
		}
		if w.MoveFrom != nil && w.MoveFrom.Node != w.Node {
			if n, ok := s.Nodes[w.MoveFrom.Node]; ok && n.Status != api.NodeOffline {
				s.restoreMove(w, c.At) // the new instance ended; the old one runs on
				continue
			}
			w.MoveFrom = nil
		}
		w.State = api.StateFailed
		w.Reason = r.Reason
		ended(w)
		w.UpdatedAt = c.At
		if r.CountAttempt {
			w.Attempts++
			if c.MaxAttempts > 0 && w.Attempts >= c.MaxAttempts {
				s.failPermanently(w, c.At)
				continue
			}
		}
		s.enqueue(r.ID, c.At, r.Reason)
	}
	return nil
}

func (s *State) failPermanently(w *api.Workload, at time.Time) {
	w.State = api.StatePermanentlyFailed
	w.Reason = fmt.Sprintf("gave up after %d attempts: %s", w.Attempts, w.Reason)
	ended(w)
	w.UpdatedAt = at
	s.dequeue(w.ID)
}

func (s *State) applyPlace(c *PlaceWorkloads) error {
	for _, p := range c.Placements {
		w, ok := s.Workloads[p.ID]
		if !ok || isFinal(w) {
			continue // stopped, completed or removed meanwhile: the intent is void
		}
		if p.Generation <= w.Generation {
			continue // a stale intent from an older decision
		}
		if p.Migrate {
			if w.State != api.StateRunning || w.Node == "" || w.MoveFrom != nil {
				continue // no longer running where it was: nothing to move
			}
			w.MoveFrom = &api.MoveFrom{Node: w.Node, Generation: w.Generation, PID: w.PID, Health: w.Health, Ports: maps.Clone(w.Ports)}
		}
		w.Node = p.Node
		w.Generation = p.Generation
		w.State = api.StatePending // starting: the outcome says running or failed
		s.notePending(w.ID, false)
		ended(w)
		w.Restarts = 0 // a new instance
		w.UpdatedAt = c.At
		w.History = append(w.History, api.Placement{Node: p.Node, Generation: p.Generation, Term: p.Term, At: c.At})
		if len(w.History) > MaxHistory {
			w.History = append([]api.Placement(nil), w.History[len(w.History)-MaxHistory:]...)
		}
	}
	return nil
}

func (s *State) applyOutcomes(c *RecordOutcomes) error {
	for _, o := range c.Outcomes {
		w, ok := s.Workloads[o.ID]
		if !ok || o.Generation != w.Generation || isFinal(w) {
			continue // outcome of a superseded placement, or of a finished workload
		}
		w.UpdatedAt = c.At
		if o.Running {
			w.State = api.StateRunning
			w.PID = o.PID
			w.ExitCode = nil
			w.Reason = ""
			if o.Stable {
				w.Attempts = 0
			}
			s.dequeue(o.ID)
			continue
		}
		if w.MoveFrom != nil && !o.Completed {
			// The new instance of a move did not come up: the old one
			// still runs, and stays the workload's. Nothing is counted.
			s.restoreMove(w, c.At)
			continue
		}
		ended(w)
		w.ExitCode = nil
		if o.ExitCode != nil {
			code := *o.ExitCode
			w.ExitCode = &code
		}
		w.Reason = o.Reason
		if o.Completed {
			// A batch workload that ran to its end: kept with its node and
			// exit code (its output stays readable there), never restarted.
			w.State = api.StateCompleted
			if w.ExitCode == nil {
				code := 0
				w.ExitCode = &code
			}
			s.dequeue(o.ID)
			continue
		}
		w.State = api.StateFailed
		if o.Uncounted {
			s.enqueue(o.ID, c.At, o.Reason)
			continue
		}
		w.Attempts++
		if c.MaxAttempts > 0 && w.Attempts >= c.MaxAttempts {
			s.failPermanently(w, c.At)
			continue
		}
		s.enqueue(o.ID, c.At, o.Reason)
	}
	return nil
}

func (s *State) applyUpdateInstances(c *UpdateInstances) error {
	for _, r := range c.Reports {
		w, ok := s.Workloads[r.ID]
		if !ok || w.Generation != r.Generation || w.State != api.StateRunning {
			continue // a report of another instance, or of one no longer running
		}
		switch r.Health {
		case api.HealthHealthy, api.HealthUnhealthy:
			w.Health = r.Health
		default:
			w.Health = ""
		}
		w.Restarts = max(r.Restarts, 0)
		if r.PID > 0 {
			w.PID = r.PID
		}
		w.Ports = nil
		if len(r.Ports) > 0 {
			w.Ports = maps.Clone(r.Ports)
		}
	}
	return nil
}

func (s *State) applyWaitReasons(c *SetWaitReasons) error {
	queued := make(map[string]bool, len(s.RecoveryQueue))
	for _, q := range s.RecoveryQueue {
		queued[q.WorkloadID] = true
	}
	for _, r := range c.Reasons {
		w, ok := s.Workloads[r.ID]
		if !ok {
			continue
		}
		if (w.State == api.StatePending && w.Node == "") || (w.State == api.StateFailed && queued[r.ID]) {
			w.Reason = r.Reason
		}
	}
	return nil
}

func (s *State) applySetReplica(c *SetReplica) error {
	if c.ID == "" || c.HTTP == "" {
		return fmt.Errorf("%w: replica without id or address", ErrInvalid)
	}
	s.Replicas[c.ID] = c.HTTP
	return nil
}

func (s *State) applyRemoveReplica(c *RemoveReplica) error {
	delete(s.Replicas, c.ID)
	return nil
}

func (s *State) applyLoad(c *LoadState) error {
	if c.State == nil || c.State.Version != StateVersion {
		return fmt.Errorf("%w: state of an unknown version", ErrInvalid)
	}
	if err := c.State.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	n := c.State.Clone()
	// Keep the replica addresses of the running cluster; its alerts start afresh.
	n.Replicas = s.Replicas
	n.ActiveAlerts = nil
	*s = *n
	return nil
}
