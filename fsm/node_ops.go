package fsm

import (
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// The node operation command types (never reuse a number).
const (
	CmdSetEligibility CommandType = 18
	CmdSetDrain       CommandType = 19
	CmdPurgeNode      CommandType = 20
	CmdNodeRestarting CommandType = 21
	CmdCollectGarbage CommandType = 22
	CmdFinishMoves    CommandType = 23
	CmdAbandonMoves   CommandType = 24
)

// SetEligibility makes a node take new work, or not; what runs there stays.
type SetEligibility struct {
	At       time.Time `json:"at"`
	ID       string    `json:"id"`
	Eligible bool      `json:"eligible"`
}

// SetDrain starts a drain of a node (Enable, with its Deadline), cancels
// one (not Enable: the node is eligible again), or records that it is done
// (Done: the node stays ineligible).
type SetDrain struct {
	At       time.Time `json:"at"`
	ID       string    `json:"id"`
	Enable   bool      `json:"enable"`
	Deadline time.Time `json:"deadline,omitempty"`
	Done     bool      `json:"done,omitempty"`
}

// PurgeNode forgets an offline node with nothing on it.
type PurgeNode struct {
	ID string `json:"id"`
}

// NodeRestarting records that a node's agent is restarting and will be
// back by Until: the leader does not mark it offline before then.
type NodeRestarting struct {
	At    time.Time `json:"at"`
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// CollectGarbage removes what the leader found old enough: workloads
// stopped or completed (or, for a job's instances, permanently failed)
// before WorkloadsBefore, nodes offline and empty since before NodesBefore,
// and stopped jobs with no instance left. Each listed item is removed only
// if it still qualifies.
type CollectGarbage struct {
	WorkloadsBefore time.Time `json:"workloads_before"`
	NodesBefore     time.Time `json:"nodes_before"`
	Workloads       []string  `json:"workloads,omitempty"`
	Nodes           []string  `json:"nodes,omitempty"`
	Jobs            []string  `json:"jobs,omitempty"`
}

// MoveRef names one move: the workload, the generation it moved to, and
// the node and generation it moved from. A command about a move applies
// only while the workload is still in exactly that move.
type MoveRef struct {
	ID             string `json:"id"`
	Generation     uint64 `json:"generation"`
	FromNode       string `json:"from_node"`
	FromGeneration uint64 `json:"from_generation"`
}

// FinishMoves ends start-first moves whose new instance is up: the old
// instance is no longer the workload's (the leader stops it).
type FinishMoves struct {
	At    time.Time `json:"at"`
	Moves []MoveRef `json:"moves"`
}

// AbandonMoves gives up moves whose new instance did not come up in time:
// the old instance, still running, is the workload's again (the leader
// stops the new one).
type AbandonMoves struct {
	At    time.Time `json:"at"`
	Moves []MoveRef `json:"moves"`
}

// Type implements Command.
func (SetEligibility) Type() CommandType { return CmdSetEligibility }

// Type implements Command.
func (SetDrain) Type() CommandType { return CmdSetDrain }

// Type implements Command.
func (PurgeNode) Type() CommandType { return CmdPurgeNode }

// Type implements Command.
func (NodeRestarting) Type() CommandType { return CmdNodeRestarting }

// Type implements Command.
func (CollectGarbage) Type() CommandType { return CmdCollectGarbage }

// Type implements Command.
func (FinishMoves) Type() CommandType { return CmdFinishMoves }

// Type implements Command.
func (AbandonMoves) Type() CommandType { return CmdAbandonMoves }

func (s *State) applySetEligibility(c *SetEligibility) error {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: node %s", ErrNotFound, c.ID)
	}
	if c.Eligible && n.Draining {
		return fmt.Errorf("%w: node %s is draining; cancel the drain first", ErrConflict, c.ID)
	}
	n.Eligible = c.Eligible
	n.UpdatedAt = c.At
	return nil
}

func (s *State) applySetDrain(c *SetDrain) error {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: node %s", ErrNotFound, c.ID)
	}
	switch {
	case c.Enable:
		n.Draining, n.Eligible = true, false
		started := c.At
		if n.Drain != nil {
			started = n.Drain.StartedAt // a new deadline for the drain under way
		}
		n.Drain = &api.DrainStatus{StartedAt: started, Deadline: c.Deadline}
	case c.Done:
		if !n.Draining {
			return nil
		}
		n.Draining, n.Drain = false, nil
	default:
		if !n.Draining {
			return nil // no drain to cancel: eligibility stays as it is
		}
		n.Draining, n.Drain, n.Eligible = false, nil, true
	}
	n.UpdatedAt = c.At
	return nil
}

// holdsWork reports whether any live workload is placed on node id, or
// still has its old instance there.
func (s *State) holdsWork(id string) bool {
	for _, w := range s.Workloads {
		if (w.Node == id && IsLive(w)) || (w.MoveFrom != nil && w.MoveFrom.Node == id) {
			return true
		}
	}
	return false
}

func (s *State) applyPurgeNode(c *PurgeNode) error {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: node %s", ErrNotFound, c.ID)
	}
	if n.Status != api.NodeOffline {
		return fmt.Errorf("%w: node %s is %s; only an offline node can be purged", ErrConflict, c.ID, n.Status)
	}
	if s.holdsWork(c.ID) {
		return fmt.Errorf("%w: node %s still has workloads placed on it", ErrConflict, c.ID)
	}
	delete(s.Nodes, c.ID)
	return nil
}

func (s *State) applyNodeRestarting(c *NodeRestarting) error {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return fmt.Errorf("%w: node %s", ErrNotFound, c.ID)
	}
	until := c.Until
	n.RestartingUntil = &until
	n.UpdatedAt = c.At
	return nil
}

// Collectable reports whether workload w may be removed by a garbage
// collection with cutoff before. A completed instance of a running job's
// current version stays: it counts towards the job's count (a batch job
// does not run it again).
func (s *State) Collectable(w *api.Workload, before time.Time) bool {
	if !w.UpdatedAt.Before(before) {
		return false
	}
	switch w.State {
	case api.StateStopped:
		return true
	case api.StateCompleted:
		if j, ok := s.Jobs[w.Job]; ok && !j.Stopped && w.JobVersion != nil && *w.JobVersion == j.Version {
			return false
		}
		return true
	case api.StatePermanentlyFailed:
		return w.Job != "" // a job replaces it; a workload of its own waits for its stop
	}
	return false
}

// NodeCollectable reports whether node n may be removed by a garbage
// collection with cutoff before.
func (s *State) NodeCollectable(n *api.Node, before time.Time) bool {
	return n.Status == api.NodeOffline && n.UpdatedAt.Before(before) && !s.holdsWork(n.ID)
}

// JobCollectable reports whether job j may be removed: stopped before the
// cutoff, with no instance left.
func (s *State) JobCollectable(j *Job, before time.Time) bool {
	if !j.Stopped || !j.UpdatedAt.Before(before) {
		return false
	}
	for _, w := range s.Workloads {
		if w.Job == j.Name {
			return false
		}
	}
	return true
}

func (s *State) applyCollectGarbage(c *CollectGarbage) error {
	for _, id := range c.Workloads {
		if w, ok := s.Workloads[id]; ok && s.Collectable(w, c.WorkloadsBefore) {
			s.dequeue(id)
			delete(s.Workloads, id)
		}
	}
	for _, id := range c.Nodes {
		if n, ok := s.Nodes[id]; ok && s.NodeCollectable(n, c.NodesBefore) {
			delete(s.Nodes, id)
		}
	}
	for _, name := range c.Jobs {
		if j, ok := s.Jobs[name]; ok && s.JobCollectable(j, c.WorkloadsBefore) {
			delete(s.Jobs, name)
		}
	}
	return nil
}

// inMove returns the workload of ref while it is still in exactly that move.
func (s *State) inMove(ref MoveRef) (*api.Workload, bool) {
	w, ok := s.Workloads[ref.ID]
	if !ok || w.MoveFrom == nil || !IsLive(w) || w.Generation != ref.Generation ||
		w.MoveFrom.Node != ref.FromNode || w.MoveFrom.Generation != ref.FromGeneration {
		return nil, false
	}
	return w, true
}

func (s *State) applyFinishMoves(c *FinishMoves) error {
	for _, ref := range c.Moves {
		if w, ok := s.inMove(ref); ok {
			w.MoveFrom = nil
			w.UpdatedAt = c.At
		}
	}
	return nil
}

func (s *State) applyAbandonMoves(c *AbandonMoves) error {
	for _, ref := range c.Moves {
		if w, ok := s.inMove(ref); ok {
			s.restoreMove(w, c.At)
		}
	}
	return nil
}
