package health

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Store is the monitor's view of the replicated state.
type Store interface {
	// Nodes returns copies of the registered nodes with their replicated status.
	Nodes() []api.Node
	// SetNodeStatus commits status changes through raft; it fails once this
	// replica is no longer leader, and must return promptly once ctx is cancelled.
	SetNodeStatus(ctx context.Context, c fsm.SetNodeStatus) error
}

// ErrNotRunning is returned by CheckNow when Run is not active (this replica
// does not lead, or has just lost leadership).
var ErrNotRunning = errors.New("health monitor is not running on this replica")

// Monitor is the leader-only health monitor. Its methods are safe for
// concurrent use.
type Monitor struct {
	cfg     Config
	th      thresholds
	store   Store
	checker Checker
	log     hclog.Logger

	runSem chan struct{} // held by the active Run

	mu           sync.Mutex
	nodes        map[string]*nodeState
	run          *runState // nil while Run is not active
	flushWaiters []chan error
	writing      bool   // a SetNodeStatus call is in progress
	writeGen     uint64 // counts SetNodeStatus calls started
	writeFailing bool   // the last SetNodeStatus call failed

	roundHook func(time.Duration) // tests: called with each round's duration
	tracking  atomic.Bool         // a heartbeat has been noted: watch for silences
}

// nodeState is one node's entry, guarded by Monitor.mu. h.Status is the
// replicated status; decided is the status the checks call for.
type nodeState struct {
	h         NodeHealth
	decided   string
	evictHeld bool
	suspected time.Time // the LastHeard that a suspicion check was started for
	// restartingUntil is when the node's agent said it would be back from
	// a restart: until then failed checks do not make it offline.
	restartingUntil time.Time
}

// runState links CheckNow and the writer to the active Run.
type runState struct {
	requests chan *checkRequest
	flush    chan struct{} // capacity 1: wakes the writer
	done     chan struct{} // closed when Run returns
}

// checkRequest is one CheckNow call waiting for its round.
type checkRequest struct {
	done chan error // capacity 1
}

// New returns a Monitor; it checks nothing until Run is called. store and
// checker must not be nil.
func New(cfg Config, store Store, checker Checker) *Monitor {
	cfg = cfg.withDefaults()
	return &Monitor{
		cfg:     cfg,
		th:      thresholds{failure: cfg.FailureThreshold, recovery: cfg.RecoveryThreshold},
		store:   store,
		checker: checker,
		log:     cfg.Logger,
		runSem:  make(chan struct{}, 1),
		nodes:   map[string]*nodeState{},
	}
}

// Run monitors the nodes until ctx is cancelled (leadership lost), then
// cancels the checks in flight and returns once they and any status write in
// progress have returned; no status write starts after that. It starts from
// the replicated statuses and checks every node at once. A second Run waits
// for the previous one to return. The in-memory view stays readable after Run
// returns and is rebuilt by the next Run.
func (m *Monitor) Run(ctx context.Context) {
	select {
	case m.runSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.runSem }()
	if ctx.Err() != nil {
		return
	}
	rs := &runState{
		requests: make(chan *checkRequest),
		flush:    make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	nodes := m.store.Nodes()
	m.mu.Lock()
	m.nodes = make(map[string]*nodeState, len(nodes))
	for _, n := range nodes {
		m.nodes[n.ID] = newNodeState(n)
	}
	m.run = rs
	m.flushWaiters = nil
	m.writeFailing = false
	m.mu.Unlock()
	m.log.Info("health monitor started", "nodes", len(nodes), "interval", m.cfg.Interval,
		"timeout", m.cfg.Timeout, "failure_threshold", m.cfg.FailureThreshold)

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		m.writer(ctx, rs)
	}()
	newLoop(ctx, m, rs).run()
	<-writerDone

	m.mu.Lock()
	m.run = nil
	m.flushWaiters = nil
	m.mu.Unlock()
	close(rs.done)
	m.log.Info("health monitor stopped")
}

// newNodeState returns the entry of a node first seen in the store.
func newNodeState(n api.Node) *nodeState {
	st := normStatus(n.Status)
	ns := &nodeState{
		h:       NodeHealth{NodeID: n.ID, Address: n.Address, Status: st},
		decided: st,
	}
	ns.noteRestarting(n)
	return ns
}

// NoteRestarting records at once that node id's agent is restarting until
// until (the replicated record reaches the monitor at its next round; a
// confirm check may come sooner).
func (m *Monitor) NoteRestarting(id string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ns, ok := m.nodes[id]; ok {
		ns.restartingUntil = until
	}
}

// noteRestarting takes the restart grace the node's agent announced, as
// replicated (none once it registered again).
func (ns *nodeState) noteRestarting(n api.Node) {
	ns.restartingUntil = time.Time{}
	if n.RestartingUntil != nil {
		ns.restartingUntil = *n.RestartingUntil
	}
}

// CheckNow runs a full round at once, waits for every node's check (a check
// already in flight counts) and for the resulting status write, and returns
// that write's error. It works only while Run is active, and returns
// ErrNotRunning otherwise: on a follower, forward the request to the leader.
func (m *Monitor) CheckNow(ctx context.Context) error {
	m.mu.Lock()
	rs := m.run
	m.mu.Unlock()
	if rs == nil {
		return ErrNotRunning
	}
	req := &checkRequest{done: make(chan error, 1)}
	select {
	case rs.requests <- req:
	case <-rs.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-rs.done:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrNotRunning
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot returns the in-memory view of every node, sorted by node id.
func (m *Monitor) Snapshot() []NodeHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeHealth, 0, len(m.nodes))
	for _, ns := range m.nodes {
		out = append(out, ns.view())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// NoteHeartbeat records that heartbeat seq of the node reached this leader
// at at, relayed by the replica via ("" when direct). It is cheap and safe
// to call from HTTP handlers. It reports false, recording nothing, for a
// node the monitor does not know (yet).
func (m *Monitor) NoteHeartbeat(id string, at time.Time, via string, seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ns, ok := m.nodes[id]
	if !ok {
		return false
	}
	h := &ns.h
	if at.After(h.LastHeard) {
		h.LastHeard, h.HeardVia = at, via
		m.tracking.Store(true)
	}
	if via == "" && at.After(h.LastHeardDirect) {
		h.LastHeardDirect = at
	}
	if seq > h.LastSeq {
		h.LastSeq, h.SeqHeard = seq, at
	}
	return true
}

// alive reports whether a heartbeat of the node arrived within AliveWindow
// of now; the caller holds Monitor.mu.
func (m *Monitor) alive(ns *nodeState, now time.Time) bool {
	if now.Before(ns.restartingUntil) {
		return true // its agent is restarting on purpose, within its grace
	}
	return m.cfg.AliveWindow > 0 && !ns.h.LastHeard.IsZero() && now.Sub(ns.h.LastHeard) <= m.cfg.AliveWindow
}

// NodeHealth returns the in-memory view of one node.
func (m *Monitor) NodeHealth(id string) (NodeHealth, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ns, ok := m.nodes[id]
	if !ok {
		return NodeHealth{}, false
	}
	return ns.view(), true
}

// view returns the node's public view; the caller holds Monitor.mu.
func (ns *nodeState) view() NodeHealth {
	h := ns.h
	if ns.decided != h.Status {
		h.PendingStatus = ns.decided
	}
	h.EvictionHeld = ns.evictHeld && h.Status == api.NodeOffline
	return h
}

// sortedIDs returns the node ids in order; the caller holds Monitor.mu.
func (m *Monitor) sortedIDs() []string {
	ids := make([]string, 0, len(m.nodes))
	for id := range m.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
