package fsm

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM is the raft state machine holding the desired state.
type FSM struct {
	mu sync.RWMutex
	st *State
}

// New returns an FSM with an empty state.
func New() *FSM { return &FSM{st: NewState()} }

// Apply applies one raft log entry. It returns nil on success or an error.
func (f *FSM) Apply(l *raft.Log) any {
	c, err := Decode(l.Data)
	if err != nil {
		return err
	}
	return f.ApplyCommand(c)
}

// ApplyBatch implements raft.BatchingFSM: it decodes a batch of committed
// entries, then applies them in order under one lock. Configuration entries
// change nothing here and answer nil.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	cmds := make([]Command, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := Decode(l.Data)
		if err != nil {
			out[i] = err
			continue
		}
		cmds[i] = c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range cmds {
		if c != nil {
			if err := f.st.apply(c); err != nil {
				out[i] = err
			}
		}
	}
	return out
}

// ApplyCommand applies a decoded command directly (tests and replay tools).
func (f *FSM) ApplyCommand(c Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Each apply function checks before it mutates, so a failed command
	// leaves the state unchanged.
	return f.st.apply(c)
}

// Read calls fn with the current state under a read lock. fn must not keep
// or modify anything it is given.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Export returns the state-file JSON of the current state.
func (f *FSM) Export() ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Marshal()
}

// Snapshot implements raft.FSM: it captures a deep copy of the state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	c := f.st.Clone()
	f.mu.RUnlock()
	return &snapshot{st: c}, nil
}

// Restore implements raft.FSM: it replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	st, err := ParseState(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

type snapshot struct{ st *State }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	b, err := s.st.Marshal()
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
