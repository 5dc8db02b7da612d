package recovery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// store is the FSM applied directly, as raft would on the leader.
type store struct {
	f       *fsm.FSM
	mu      sync.Mutex
	onApply func(c fsm.Command) // runs before each apply, for races
}

func (s *store) Read(fn func(*fsm.State)) { s.f.Read(fn) }
func (s *store) Apply(c fsm.Command) error {
	s.mu.Lock()
	hook := s.onApply
	s.mu.Unlock()
	if hook != nil {
		hook(c)
	}
	return s.f.ApplyCommand(c)
}

// healthy reports every node online at the given CPU.
type healthy map[string]float64

func (h healthy) NodeView(id string) (NodeView, bool) {
	cpu, ok := h[id]
	return NodeView{Status: api.NodeOnline, CPU: cpu, Checked: true}, ok
}

// agents records the calls and answers from a table.
type agents struct {
	mu     sync.Mutex
	starts []api.StartRequest
	addrs  []string
	stops  []string // "addr id gen"
	fail   map[string]error
}

func (a *agents) Start(_ context.Context, addr string, req api.StartRequest) (api.StartResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts = append(a.starts, req)
	a.addrs = append(a.addrs, addr)
	if err := a.fail[addr]; err != nil {
		return api.StartResponse{}, err
	}
	return api.StartResponse{ID: req.ID, PID: 1000 + len(a.starts), State: api.InstanceRunning, Generation: req.Generation}, nil
}

func (a *agents) Stop(_ context.Context, addr, id string, term, gen uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, fmt.Sprintf("%s %s %d", addr, id, gen))
	return nil
}

func (a *agents) stopCalls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.stops...)
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// setup registers nodes n1..nN and submits count workloads.
func setup(t *testing.T, nodes, count int) (*store, *fsm.FSM) {
	t.Helper()
	f := fsm.New()
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("n%d", i)
		must(t, f.ApplyCommand(&fsm.RegisterNode{At: t0, ID: id, Address: id + ":80"}))
	}
	sub := &fsm.SubmitWorkloads{At: t0, Seq: uint64(count)}
	for i := 0; i < count; i++ {
		sub.Workloads = append(sub.Workloads, api.Workload{ID: fmt.Sprintf("w%d", i), Name: "w", Command: "sleep"})
	}
	must(t, f.ApplyCommand(sub))
	return &store{f: f}, f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func workload(f *fsm.FSM, id string) api.Workload {
	var w api.Workload
	f.Read(func(s *fsm.State) { w = *fsm.CopyWorkload(s.Workloads[id]) })
	return w
}

func newEngine(st *store, h HealthView, a Agents) *Engine {
	e := New(Config{Term: 7, MaxAttempts: 3}, st, h, a)
	e.started = time.Now().Add(-time.Hour)
	return e
}

// A burst spreads over the nodes: six workloads, three equally loaded nodes.
func TestPlaceSpreadsABurst(t *testing.T) {
	st, f := setup(t, 3, 6)
	a := &agents{}
	e := newEngine(st, healthy{"n1": 12, "n2": 14, "n3": 11}, a)
	e.pass(context.Background(), true, false)
	per := map[string]int{}
	for i := 0; i < 6; i++ {
		w := workload(f, fmt.Sprintf("w%d", i))
		if w.State != api.StateRunning || w.Generation != 1 || w.PID == 0 {
			t.Fatalf("w%d: %+v", i, w)
		}
		per[w.Node]++
	}
	if per["n1"] != 2 || per["n2"] != 2 || per["n3"] != 2 {
		t.Fatalf("placement %v, want two per node", per)
	}
	for _, r := range a.starts {
		if r.Term != 7 || r.Generation != 1 {
			t.Fatalf("start carries term %d generation %d", r.Term, r.Generation)
		}
	}
}

// Lowest CPU band first; a node over the limit gets nothing.
func TestPlacePrefersLowCPUAndHonoursTheLimit(t *testing.T) {
	st, f := setup(t, 3, 3)
	e := newEngine(st, healthy{"n1": 55, "n2": 5, "n3": 95}, &agents{})
	e.pass(context.Background(), true, false)
	for i := 0; i < 3; i++ {
		if n := workload(f, fmt.Sprintf("w%d", i)).Node; n != "n2" {
			t.Fatalf("w%d on %s, want n2 (lowest CPU band)", i, n)
		}
	}
}

// No node fits: the workloads wait, and the engine asks for fresh readings.
func TestNothingFitsWaits(t *testing.T) {
	st, f := setup(t, 2, 1)
	refreshed := 0
	e := New(Config{Term: 1, Refresh: func() { refreshed++ }}, st, healthy{"n1": 90, "n2": 85}, &agents{})
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.State != api.StatePending || w.Node != "" {
		t.Fatalf("placed although nothing fits: %+v", w)
	}
	if refreshed != 1 {
		t.Fatalf("refresh called %d times, want 1", refreshed)
	}
}

// A failed start counts an attempt and is retried on another node.
func TestFailedStartRetriesElsewhere(t *testing.T) {
	st, f := setup(t, 2, 1)
	a := &agents{fail: map[string]error{}}
	h := healthy{"n1": 1, "n2": 50}
	e := newEngine(st, h, a)
	a.fail["n1:80"] = &api.AgentError{Status: 500, Message: "boom"}
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	if w.State != api.StateFailed || w.Attempts != 1 {
		t.Fatalf("after a failed start: %+v", w)
	}
	e.pass(context.Background(), true, false)
	w = workload(f, "w0")
	if w.State != api.StateRunning || w.Node != "n2" || w.Generation != 2 {
		t.Fatalf("retry: %+v", w)
	}
}

// A command that cannot start: 3 attempts, then permanently_failed.
func TestUnstartableGivesUpAfterMaxAttempts(t *testing.T) {
	st, f := setup(t, 1, 1)
	a := &agents{fail: map[string]error{"n1:80": &api.AgentError{Status: 422, Message: "exec: not found"}}}
	e := newEngine(st, healthy{"n1": 1}, a)
	for i := 0; i < 5; i++ {
		e.pass(context.Background(), true, false)
	}
	w := workload(f, "w0")
	if w.State != api.StatePermanentlyFailed || w.Attempts != 3 || len(a.starts) != 3 {
		t.Fatalf("%+v after %d starts", w, len(a.starts))
	}
}

// A stop committed between the pass's read and its intent voids the intent:
// no agent is called.
func TestVoidedIntentCallsNoAgent(t *testing.T) {
	st, f := setup(t, 1, 1)
	a := &agents{}
	st.onApply = func(c fsm.Command) {
		if _, ok := c.(*fsm.PlaceWorkloads); ok {
			st.onApply = nil
			must(t, f.ApplyCommand(&fsm.StopWorkload{At: t0, ID: "w0"}))
		}
	}
	e := newEngine(st, healthy{"n1": 1}, a)
	e.pass(context.Background(), true, false)
	if len(a.starts) != 0 {
		t.Fatalf("started a stopped workload: %+v", a.starts)
	}
	if w := workload(f, "w0"); w.State != api.StateStopped {
		t.Fatalf("%+v", w)
	}
}

// Reconciliation: a stray is stopped at its own generation (never the
// current one); an exited instance is re-queued counting an attempt; a
// reported running instance of an unrecorded start is adopted.
func TestReconcile(t *testing.T) {
	st, f := setup(t, 2, 3)
	a := &agents{}
	e := newEngine(st, healthy{"n1": 1, "n2": 1}, a)
	e.pass(context.Background(), true, false)
	w0, w1 := workload(f, "w0"), workload(f, "w1")
	other := map[string]string{"n1": "n2", "n2": "n1"}

	// w0's node reports an old generation 0 instance on the other node too
	// (a stray), and w1's instance exited with code 3.
	code := 3
	reports := map[string][]api.AgentWorkload{}
	reports[other[w0.Node]] = append(reports[other[w0.Node]], api.AgentWorkload{ID: "w0", PID: 5, State: api.InstanceRunning, Generation: 0})
	reports[w1.Node] = append(reports[w1.Node], api.AgentWorkload{ID: "w1", State: api.InstanceExited, ExitCode: &code, Generation: w1.Generation})
	for node, ws := range reports {
		e.Observe(node, api.AgentStatus{NodeID: node, Workloads: ws})
	}
	e.pass(context.Background(), false, false)
	e.wg.Wait()
	want := other[w0.Node] + ":80 w0 0"
	if stops := a.stopCalls(); len(stops) != 1 || stops[0] != want {
		t.Fatalf("stops %v, want [%s]", stops, want)
	}
	if got := workload(f, "w1"); got.Attempts != 1 || got.Generation != w1.Generation+1 || got.State != api.StateRunning {
		t.Fatalf("exited w1 not restarted with an attempt counted: %+v", got)
	}

	// A pending intent whose outcome was never recorded is adopted when its
	// node reports the instance running.
	must(t, f.ApplyCommand(&fsm.PlaceWorkloads{At: time.Now(), Placements: []fsm.Placement{{ID: "w2", Node: "n1", Generation: 9, Term: 6}}}))
	e.Observe("n1", api.AgentStatus{Workloads: []api.AgentWorkload{{ID: "w2", PID: 77, State: api.InstanceRunning, Generation: 9}}})
	e.pass(context.Background(), false, false)
	if got := workload(f, "w2"); got.State != api.StateRunning || got.PID != 77 || got.Generation != 9 {
		t.Fatalf("intent not adopted: %+v", got)
	}
}

// The mass-failure guard pauses evictions when most of 5+ nodes are offline.
func TestAllowEvict(t *testing.T) {
	e := New(Config{}, &store{f: fsm.New()}, healthy{}, &agents{})
	cases := []struct {
		offline, total int
		want           bool
	}{{1, 3, true}, {2, 3, true}, {2, 5, true}, {3, 5, false}, {6, 10, false}, {5, 10, true}}
	for _, c := range cases {
		if got := e.AllowEvict(c.offline, c.total); got != c.want {
			t.Errorf("AllowEvict(%d, %d) = %v, want %v", c.offline, c.total, got, c.want)
		}
	}
}

// runningAfterOneFailure makes w0 fail its first start and run at the
// second, with StableAfter a minute.
func runningAfterOneFailure(t *testing.T) (*Engine, *fsm.FSM, api.Workload) {
	t.Helper()
	st, f := setup(t, 1, 1)
	a := &agents{fail: map[string]error{"n1:80": &api.AgentError{Status: 500, Message: "boom"}}}
	e := New(Config{Term: 1, MaxAttempts: 3, StableAfter: time.Minute}, st, healthy{"n1": 1}, a)
	e.started = time.Now().Add(-time.Hour)
	e.pass(context.Background(), true, false) // fails once
	delete(a.fail, "n1:80")
	e.pass(context.Background(), true, false) // runs
	w := workload(f, "w0")
	if w.State != api.StateRunning || w.Attempts != 1 {
		t.Fatalf("%+v", w)
	}
	return e, f, w
}

// A workload that has run steadily for StableAfter has its failed attempts
// cleared, so that rare crashes over a long life never add up to giving up.
func TestStableRunClearsAttempts(t *testing.T) {
	e, f, w := runningAfterOneFailure(t)
	report := api.AgentStatus{Workloads: []api.AgentWorkload{{ID: "w0", PID: w.PID, State: api.InstanceRunning, Generation: w.Generation}}}
	e.Observe("n1", report)
	e.pass(context.Background(), false, false)
	if got := workload(f, "w0"); got.Attempts != 1 {
		t.Fatalf("attempts cleared too early: %+v", got)
	}
	e.mu.Lock()
	e.observed["n1"] = observation{status: report, at: w.UpdatedAt.Add(2 * time.Minute)}
	e.dirty["n1"] = true
	e.mu.Unlock()
	e.pass(context.Background(), false, false)
	if got := workload(f, "w0"); got.Attempts != 0 || got.State != api.StateRunning {
		t.Fatalf("attempts not cleared after a stable run: %+v", got)
	}
}

// An instance that restarts in place keeps the workload's update time
// unchanged: a run that began just now is no stable run, whatever that time
// says, so a crash loop on one node still adds up to giving up.
func TestRestartedInPlaceIsNotStable(t *testing.T) {
	e, f, w := runningAfterOneFailure(t)
	at := w.UpdatedAt.Add(2 * time.Minute)
	run := api.AgentWorkload{ID: "w0", PID: w.PID + 1, State: api.InstanceRunning, Generation: w.Generation, Restarts: 4, StartedAt: at.Add(-time.Second)}
	e.mu.Lock()
	e.observed["n1"] = observation{status: api.AgentStatus{Workloads: []api.AgentWorkload{run}}, at: at}
	e.dirty["n1"] = true
	e.mu.Unlock()
	e.pass(context.Background(), false, false)
	if got := workload(f, "w0"); got.Attempts != 1 {
		t.Fatalf("a run a second old cleared the attempts: %+v", got)
	}
}
