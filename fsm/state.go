package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// StateVersion is the version of the state-file JSON this build reads and writes.
const StateVersion = 1

// MaxHistory bounds the placement history kept per workload.
const MaxHistory = 10

// QueueEntry is one workload waiting in the recovery queue.
type QueueEntry struct {
	WorkloadID string    `json:"workload_id"`
	Since      time.Time `json:"since"`
	Reason     string    `json:"reason"`
}

// State is the whole replicated desired state; its JSON is the state file.
type State struct {
	Version       int                      `json:"version"`
	LastSeq       uint64                   `json:"last_seq"`
	Nodes         map[string]*api.Node     `json:"nodes"`
	Workloads     map[string]*api.Workload `json:"workloads"`
	RecoveryQueue []QueueEntry             `json:"recovery_queue"`
	Replicas      map[string]string        `json:"replicas"`
	// Jobs are the jobs by name; their instances are in Workloads.
	Jobs map[string]*Job `json:"jobs,omitempty"`
	// ActiveAlerts are the alerts active under the last leader (not part of
	// the desired state; kept so that the next leader takes them over).
	ActiveAlerts []api.Alert `json:"active_alerts,omitempty"`

	// idx is the leader's index of what may need placing (not replicated).
	idx *pendingIndex
}

// NewState returns an empty state of the current version.
func NewState() *State {
	return &State{
		Version:       StateVersion,
		Nodes:         map[string]*api.Node{},
		Workloads:     map[string]*api.Workload{},
		RecoveryQueue: []QueueEntry{},
		Replicas:      map[string]string{},
		Jobs:          map[string]*Job{},
		idx:           newPendingIndex(),
	}
}

// Marshal encodes the state as the state-file JSON (indented, keys sorted).
func (s *State) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ErrUnknownVersion is returned for a state file written by another version.
var ErrUnknownVersion = errors.New("unknown state file version")

// ParseState decodes and validates state-file JSON.
func ParseState(b []byte) (*State, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("corrupt state file: %v", err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("corrupt state file: no version field")
	}
	if *probe.Version != StateVersion {
		return nil, fmt.Errorf("%w %d (this build reads version %d)", ErrUnknownVersion, *probe.Version, StateVersion)
	}
	s := NewState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("corrupt state file: %v", err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("corrupt state file: %v", err)
	}
	s.indexAll()
	return s, nil
}

func (s *State) validate() error {
	if s.Nodes == nil {
		s.Nodes = map[string]*api.Node{}
	}
	if s.Workloads == nil {
		s.Workloads = map[string]*api.Workload{}
	}
	if s.Replicas == nil {
		s.Replicas = map[string]string{}
	}
	if s.RecoveryQueue == nil {
		s.RecoveryQueue = []QueueEntry{}
	}
	if s.Jobs == nil {
		s.Jobs = map[string]*Job{}
	}
	for k, j := range s.Jobs {
		if j == nil || j.Name != k {
			return fmt.Errorf("job %q: key and name differ", k)
		}
		if j.Current() == nil {
			return fmt.Errorf("job %q: its version %d is not kept", k, j.Version)
		}
	}
	for k, n := range s.Nodes {
		if n == nil || n.ID != k {
			return fmt.Errorf("node %q: key and id differ", k)
		}
	}
	for k, w := range s.Workloads {
		if w == nil || w.ID != k {
			return fmt.Errorf("workload %q: key and id differ", k)
		}
		if w.Command == "" {
			return fmt.Errorf("workload %q: no command", k)
		}
	}
	for _, q := range s.RecoveryQueue {
		if _, ok := s.Workloads[q.WorkloadID]; !ok {
			return fmt.Errorf("recovery queue names unknown workload %q", q.WorkloadID)
		}
	}
	return nil
}

// Equal reports whether s and o hold the same replicated state (the
// leader's index aside).
func (s *State) Equal(o *State) bool {
	a, b := *s, *o
	a.idx, b.idx = nil, nil
	return reflect.DeepEqual(&a, &b)
}

// Clone returns a deep copy of the state.
func (s *State) Clone() *State {
	c := &State{
		Version:       s.Version,
		LastSeq:       s.LastSeq,
		Nodes:         make(map[string]*api.Node, len(s.Nodes)),
		Workloads:     make(map[string]*api.Workload, len(s.Workloads)),
		RecoveryQueue: append([]QueueEntry{}, s.RecoveryQueue...),
		Replicas:      make(map[string]string, len(s.Replicas)),
		ActiveAlerts:  append([]api.Alert(nil), s.ActiveAlerts...),
		Jobs:          make(map[string]*Job, len(s.Jobs)),
	}
	for k, j := range s.Jobs {
		c.Jobs[k] = CopyJob(j)
	}
	for k, n := range s.Nodes {
		nn := *n
		nn.Capacity = copyCapacity(n.Capacity)
		c.Nodes[k] = &nn
	}
	for k, w := range s.Workloads {
		c.Workloads[k] = CopyWorkload(w)
	}
	for k, v := range s.Replicas {
		c.Replicas[k] = v
	}
	c.indexAll()
	return c
}

// CopyWorkload returns a deep copy of w.
func CopyWorkload(w *api.Workload) *api.Workload {
	c := *w
	c.Args = append([]string(nil), w.Args...)
	c.Env = maps.Clone(w.Env)
	if w.ExitCode != nil {
		e := *w.ExitCode
		c.ExitCode = &e
	}
	c.History = append([]api.Placement(nil), w.History...)
	c.Spec = CopySpec(w.Spec)
	if w.Ports != nil {
		c.Ports = maps.Clone(w.Ports)
	}
	if w.JobVersion != nil {
		v := *w.JobVersion
		c.JobVersion = &v
	}
	if w.MoveFrom != nil {
		m := *w.MoveFrom
		m.Ports = maps.Clone(w.MoveFrom.Ports)
		c.MoveFrom = &m
	}
	return &c
}

// CopySpec returns a deep copy of a workload spec, so that Normalize on the
// copy leaves the original alone.
func CopySpec(s api.Spec) api.Spec {
	c := s
	c.Ports = slices.Clone(s.Ports)
	if s.Check != nil {
		ch := *s.Check
		ch.Command = slices.Clone(s.Check.Command)
		c.Check = &ch
	}
	if s.Restart != nil {
		r := *s.Restart
		c.Restart = &r
	}
	if s.Resources != nil {
		r := *s.Resources
		c.Resources = &r
	}
	return c
}

func copyCapacity(c *api.Capacity) *api.Capacity {
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
}

func (s *State) inQueue(id string) bool {
	for _, q := range s.RecoveryQueue {
		if q.WorkloadID == id {
			return true
		}
	}
	return false
}

func (s *State) dequeue(id string) {
	out := s.RecoveryQueue[:0]
	for _, q := range s.RecoveryQueue {
		if q.WorkloadID != id {
			out = append(out, q)
		}
	}
	s.RecoveryQueue = out
}

func (s *State) enqueue(id string, at time.Time, reason string) {
	if !s.inQueue(id) {
		s.RecoveryQueue = append(s.RecoveryQueue, QueueEntry{WorkloadID: id, Since: at, Reason: reason})
	}
}
