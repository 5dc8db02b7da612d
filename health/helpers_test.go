package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

var t0 = time.Date(2024, 1, 15, 10, 30, 45, 0, time.UTC)

// eventually polls cond until it holds or a 5 s deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

// ---- fake clock ----

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, timers: map[*fakeTimer]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers[t] = struct{}{}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t]
	delete(t.c.timers, t)
	return ok
}

// Advance moves the clock by d and fires every timer due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			delete(c.timers, t)
			t.ch <- c.now
		}
	}
}

// AdvanceTo moves the clock to at.
func (c *fakeClock) AdvanceTo(at time.Time) { c.Advance(at.Sub(c.Now())) }

// hasTimer reports whether a pending timer fires exactly at at.
func (c *fakeClock) hasTimer(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.timers {
		if t.at.Equal(at) {
			return true
		}
	}
	return false
}

// ---- fake checker ----

var errRefused = fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)

type fakeChecker struct {
	clock *fakeClock

	mu        sync.Mutex
	down      map[string]bool          // refuse at once
	hang      map[string]chan struct{} // block until ctx is done or the channel is closed
	slow      map[string]time.Duration // advance the fake clock by this much
	answerAs  map[string]string        // node id the agent reports
	calls     map[string][]time.Time   // start time of each check
	cancelled int                      // checks that saw their context cancelled
	active    int
	maxActive int
}

func newFakeChecker(c *fakeClock) *fakeChecker {
	return &fakeChecker{
		clock: c, down: map[string]bool{}, hang: map[string]chan struct{}{},
		slow: map[string]time.Duration{}, answerAs: map[string]string{}, calls: map[string][]time.Time{},
	}
}

func (f *fakeChecker) setDown(id string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[id] = down
}

func (f *fakeChecker) setSlow(id string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow[id] = d
}

// setHang makes checks of id block until release is called or ctx is done.
func (f *fakeChecker) setHang(id string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hang[id] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.hang, id)
			f.mu.Unlock()
			close(ch)
		})
	}
}

func (f *fakeChecker) callTimes(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[id]...)
}

func (f *fakeChecker) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += len(c)
	}
	return n
}

func (f *fakeChecker) Check(ctx context.Context, node api.Node) (api.AgentStatus, error) {
	f.mu.Lock()
	f.calls[node.ID] = append(f.calls[node.ID], f.clock.Now())
	f.active++
	if f.active > f.maxActive {
		f.maxActive = f.active
	}
	down, hang, slow, as := f.down[node.ID], f.hang[node.ID], f.slow[node.ID], f.answerAs[node.ID]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled++
			f.mu.Unlock()
			return api.AgentStatus{}, ctx.Err()
		}
	}
	if down {
		return api.AgentStatus{}, errRefused
	}
	if slow > 0 {
		f.clock.Advance(slow)
	}
	if as == "" {
		as = node.ID
	}
	return api.AgentStatus{NodeID: as, CPUUsage: 15.2, MemoryUsage: 45.8}, nil
}

// ---- fake store, backed by the real FSM ----

var errNotLeader = errors.New("node is not the leader")

type fakeStore struct {
	f *fsm.FSM

	mu     sync.Mutex
	writes []fsm.SetNodeStatus // committed writes
	tries  int                 // SetNodeStatus calls, failed ones included
	fail   int                 // fail the next fail calls
	hidden map[string]bool
}

func newFakeStore(tb testing.TB, nodes ...string) *fakeStore {
	s := &fakeStore{f: fsm.New(), hidden: map[string]bool{}}
	for i, id := range nodes {
		s.mustApply(tb, &fsm.RegisterNode{At: t0, ID: id, Address: fmt.Sprintf("10.0.0.%d:8080", i+1)})
	}
	return s
}

func (s *fakeStore) mustApply(tb testing.TB, c fsm.Command) {
	tb.Helper()
	if err := s.f.ApplyCommand(c); err != nil {
		tb.Fatalf("apply %T: %v", c, err)
	}
}

// runWorkload puts a running workload on a node.
func (s *fakeStore) runWorkload(tb testing.TB, id, node string) {
	s.mustApply(tb, &fsm.SubmitWorkloads{At: t0, Seq: 1, Workloads: []api.Workload{{ID: id, Name: "job", Command: "/bin/sleep"}}})
	s.mustApply(tb, &fsm.PlaceWorkloads{At: t0, Placements: []fsm.Placement{{ID: id, Node: node, Generation: 1, Term: 1}}})
	s.mustApply(tb, &fsm.RecordOutcomes{At: t0, MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: id, Generation: 1, Running: true, PID: 42}}})
}

func (s *fakeStore) workloadState(id string) string {
	var st string
	s.f.Read(func(x *fsm.State) { st = x.Workloads[id].State })
	return st
}

func (s *fakeStore) Nodes() []api.Node {
	s.mu.Lock()
	hidden := make(map[string]bool, len(s.hidden))
	for k, v := range s.hidden {
		hidden[k] = v
	}
	s.mu.Unlock()
	var out []api.Node
	s.f.Read(func(x *fsm.State) {
		for id, n := range x.Nodes {
			if !hidden[id] {
				out = append(out, *n)
			}
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *fakeStore) SetNodeStatus(ctx context.Context, c fsm.SetNodeStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	if s.fail > 0 {
		s.fail--
		return errNotLeader
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := fsm.Encode(c) // through the log encoding, as raft would
	if err != nil {
		return err
	}
	cmd, err := fsm.Decode(b)
	if err != nil {
		return err
	}
	if err := s.f.ApplyCommand(cmd); err != nil {
		return err
	}
	s.writes = append(s.writes, c)
	return nil
}

func (s *fakeStore) status(id string) string {
	var st string
	s.f.Read(func(x *fsm.State) {
		if n, ok := x.Nodes[id]; ok {
			st = n.Status
		}
	})
	return st
}

func (s *fakeStore) committed() []fsm.SetNodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fsm.SetNodeStatus(nil), s.writes...)
}

func (s *fakeStore) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries
}

// changes flattens the committed writes as "id=status[+evict]" strings.
func (s *fakeStore) changes() []string {
	var out []string
	for _, w := range s.committed() {
		for _, c := range w.Changes {
			e := ""
			if c.Evict {
				e = "+evict"
			}
			out = append(out, c.ID+"="+c.Status+e)
		}
	}
	return out
}

// ---- harness ----

type harness struct {
	t       *testing.T
	clock   *fakeClock
	checker *fakeChecker
	store   *fakeStore
	cfg     Config
	m       *Monitor
	cancel  context.CancelFunc
	done    chan struct{}
	start   time.Time
}

// newHarness builds a monitor with default settings, a fake clock at t0, a
// fake checker and an FSM-backed store holding the given nodes.
func newHarness(t *testing.T, nodes []string, tune func(*Config)) *harness {
	clock := newFakeClock(t0)
	h := &harness{t: t, clock: clock, checker: newFakeChecker(clock), store: newFakeStore(t, nodes...), start: t0}
	h.cfg = Config{Clock: clock, Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}
	if tune != nil {
		tune(&h.cfg)
	}
	h.m = New(h.cfg, h.store, h.checker)
	h.cfg = h.m.cfg
	return h
}

// run starts Run; the test's cleanup stops it.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan struct{})
	h.start = h.clock.Now()
	go func() {
		defer close(h.done)
		h.m.Run(ctx)
	}()
	h.t.Cleanup(h.stop)
	eventually(h.t, "Run started", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return h.m.run != nil
	})
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return within 5s of cancellation")
	}
}

// at returns the start time plus d.
func (h *harness) at(d time.Duration) time.Time { return h.start.Add(d) }

// round returns the time of round k (round 0 runs at Run start).
func (h *harness) round(k int) time.Time { return h.at(time.Duration(k) * h.cfg.Interval) }

// fireAt waits until the monitor has armed a timer for at, then moves the
// clock there.
func (h *harness) fireAt(at time.Time) {
	h.t.Helper()
	eventually(h.t, "a timer at "+at.Sub(h.start).String(), func() bool { return h.clock.hasTimer(at) })
	h.clock.AdvanceTo(at)
}

// tick moves the clock to round k and waits until the given nodes have been
// checked at that time.
func (h *harness) tick(k int, nodes ...string) {
	h.t.Helper()
	h.fireAt(h.round(k))
	h.waitChecked(h.round(k), nodes...)
}

// waitChecked waits until each node's last check ended at at.
func (h *harness) waitChecked(at time.Time, nodes ...string) {
	h.t.Helper()
	for _, id := range nodes {
		eventually(h.t, id+" checked at "+at.Sub(h.start).String(), func() bool {
			nh, ok := h.m.NodeHealth(id)
			return ok && nh.LastCheck.Equal(at)
		})
	}
}

// waitStatus waits until the node's status is committed in the store and in
// the monitor's view.
func (h *harness) waitStatus(id, status string) {
	h.t.Helper()
	eventually(h.t, id+" "+status, func() bool {
		nh, _ := h.m.NodeHealth(id)
		return h.store.status(id) == status && nh.Status == status && nh.PendingStatus == ""
	})
}

// settle waits until every status write decided so far has been attempted:
// a forced round completes only after its write.
func (h *harness) settle() {
	h.t.Helper()
	if err := h.m.CheckNow(context.Background()); err != nil {
		h.t.Fatalf("CheckNow: %v", err)
	}
}
