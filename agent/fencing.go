package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// Errors of the supervisor; the server maps them to HTTP statuses.
var (
	errStaleTerm       = errors.New("stale term")
	errStaleGeneration = errors.New("stale generation")
	errUnknownWorkload = errors.New("unknown workload")
	errShuttingDown    = errors.New("the agent is shutting down")
)

// startError says that a workload's command could not be started (not found,
// not executable, ...); the instance is kept with state failed.
type startError struct{ reason string }

func (e *startError) Error() string { return e.reason }

// agentState is the content of agent_state.json.
type agentState struct {
	Term uint64 `json:"term"`
}

// fence keeps the highest leader term the agent has obeyed, persisted in
// agent_state.json, so that a deposed leader cannot start or stop anything,
// even after an agent restart.
type fence struct {
	mu   sync.Mutex
	path string
	term uint64
}

// loadFence reads path; a missing file means term 0, a corrupt one is an error
// (starting from 0 would let a deposed leader act again).
func loadFence(path string) (*fence, error) {
	f := &fence{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	var st agentState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); it holds the highest leader term obeyed, remove it only if no deposed leader can still be running", path, err)
	}
	f.term = st.Term
	return f, nil
}

// current returns the highest term obeyed so far.
func (f *fence) current() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.term
}

// check refuses a term below the highest one obeyed.
func (f *fence) check(term uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkLocked(term)
}

func (f *fence) checkLocked(term uint64) error {
	if term < f.term {
		return fmt.Errorf("%w %d: this agent has already obeyed term %d", errStaleTerm, term, f.term)
	}
	return nil
}

// admit checks term and, when it is higher than the stored one, persists it
// before returning, so the caller may act on the request.
func (f *fence) admit(term uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(term); err != nil {
		return err
	}
	if term == f.term {
		return nil
	}
	data, _ := json.Marshal(agentState{Term: term})
	if err := atomicfile.Write(f.path, append(data, '\n')); err != nil {
		return fmt.Errorf("persist leader term %d: %w", term, err)
	}
	f.term = term
	return nil
}
