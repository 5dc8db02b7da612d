package recovery

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// capacityNodes registers n1..nN, each declaring the capacity given (nil: an
// agent that declares none).
func capacityNodes(t *testing.T, caps ...*api.Capacity) (*store, *fsm.FSM) {
	t.Helper()
	f := fsm.New()
	for i, c := range caps {
		id := fmt.Sprintf("n%d", i+1)
		must(t, f.ApplyCommand(&fsm.RegisterNode{At: t0, ID: id, Address: id + ":80", Capacity: c}))
	}
	return &store{f: f}, f
}

// submitSpec submits count workloads w<first>.. with the given spec.
func submitSpec(t *testing.T, f *fsm.FSM, first, count int, spec api.Spec) {
	t.Helper()
	sub := &fsm.SubmitWorkloads{At: t0}
	for i := first; i < first+count; i++ {
		sp := fsm.CopySpec(spec)
		sp.Normalize()
		sub.Workloads = append(sub.Workloads, api.Workload{ID: fmt.Sprintf("w%d", i), Name: "w", Command: "sleep", Spec: sp})
	}
	must(t, f.ApplyCommand(sub))
}

func resources(cpu, mem int) api.Spec {
	return api.Spec{Resources: &api.Resources{CPUMillicores: cpu, MemoryMB: mem}}
}

func capacity(cpu, mem int) *api.Capacity { return &api.Capacity{CPUMillicores: cpu, MemoryMB: mem} }

// applied counts the commands applied, by type.
type applied struct {
	mu sync.Mutex
	n  map[string]int
}

func countApplies(st *store) *applied {
	a := &applied{n: map[string]int{}}
	st.onApply = func(c fsm.Command) {
		a.mu.Lock()
		a.n[fmt.Sprintf("%T", c)]++
		a.mu.Unlock()
	}
	return a
}

func (a *applied) get(c fsm.Command) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[fmt.Sprintf("%T", c)]
}

// Declared resources fit into free capacity: never more on a node than it
// holds, and a burst of identical workloads still spreads.
func TestPlaceFitsResourcesAndSpreads(t *testing.T) {
	st, f := capacityNodes(t, capacity(2000, 4096), capacity(2000, 4096), capacity(2000, 4096))
	submitSpec(t, f, 0, 6, resources(1000, 512))
	e := newEngine(st, healthy{"n1": 10, "n2": 12, "n3": 11}, &agents{})
	e.pass(context.Background(), true, false)
	per := map[string]int{}
	for i := 0; i < 6; i++ {
		w := workload(f, fmt.Sprintf("w%d", i))
		if w.State != api.StateRunning {
			t.Fatalf("w%d: %+v", i, w)
		}
		per[w.Node]++
	}
	if per["n1"] != 2 || per["n2"] != 2 || per["n3"] != 2 {
		t.Fatalf("placement %v, want two per node", per)
	}
	// The nodes are full now: a seventh waits, saying why.
	submitSpec(t, f, 6, 1, resources(1000, 512))
	e.pass(context.Background(), true, false)
	if w := workload(f, "w6"); w.State != api.StatePending || w.Node != "" || w.Reason != "no node has 1000 millicores free (n1 has 0)" {
		t.Fatalf("w6 on a full cluster: %+v", w)
	}
}

// Lowest CPU still wins among the nodes that fit; a node that does not fit
// is passed over however idle it is.
func TestPlacePrefersLowCPUAmongNodesThatFit(t *testing.T) {
	st, f := capacityNodes(t, capacity(4000, 8192), capacity(500, 8192), capacity(4000, 8192))
	submitSpec(t, f, 0, 1, resources(1000, 0))
	e := newEngine(st, healthy{"n1": 45, "n2": 1, "n3": 22}, &agents{})
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.Node != "n3" {
		t.Fatalf("placed on %s, want n3 (n2 is too small, n1 busier)", w.Node)
	}
	// The 80 % rule still holds over capacity.
	st2, f2 := capacityNodes(t, capacity(4000, 8192))
	submitSpec(t, f2, 0, 1, resources(100, 0))
	e2 := newEngine(st2, healthy{"n1": 85}, &agents{})
	e2.pass(context.Background(), true, false)
	if w := workload(f2, "w0"); w.Node != "" {
		t.Fatalf("placed on a node over the CPU limit: %+v", w)
	}
}

// A workload that fits nowhere stays pending with a reason naming the
// resource and the closest node, written once; it is placed as soon as
// capacity frees.
func TestPendingReasonAndPlacementWhenCapacityFrees(t *testing.T) {
	st, f := capacityNodes(t, capacity(1000, 4096), capacity(2000, 4096))
	submitSpec(t, f, 0, 1, resources(500, 0))
	a := &agents{}
	e := newEngine(st, healthy{"n1": 50, "n2": 1}, a)
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.Node != "n2" {
		t.Fatalf("w0 on %s, want n2", w.Node)
	}
	submitSpec(t, f, 1, 1, resources(2000, 0))
	count := countApplies(st)
	for range 3 {
		e.pass(context.Background(), true, false)
	}
	want := "no node has 2000 millicores free (n2 has 1500)"
	if w := workload(f, "w1"); w.State != api.StatePending || w.Node != "" || w.Reason != want {
		t.Fatalf("w1: %+v, want pending with reason %q", w, want)
	}
	if n := count.get(&fsm.SetWaitReasons{}); n != 1 {
		t.Fatalf("the wait reason was written %d times over 3 passes, want once", n)
	}
	// Stopping w0 frees n2: the next pass places w1 there.
	must(t, f.ApplyCommand(&fsm.StopWorkload{At: t0, ID: "w0"}))
	e.pass(context.Background(), true, false)
	if w := workload(f, "w1"); w.State != api.StateRunning || w.Node != "n2" || w.Reason != "" {
		t.Fatalf("w1 after capacity freed: %+v", w)
	}
}

// The reason names memory when memory is short, and both when each fits
// somewhere but not together; a request larger than any node is accepted
// and waits with its reason.
func TestPendingReasons(t *testing.T) {
	cases := []struct {
		spec api.Spec
		want string
	}{
		{resources(0, 8192), "no node has 8192 MiB of memory free (n2 has 4096)"},
		{resources(3000, 3000), "no node has 3000 millicores and 3000 MiB of memory free together (n1 has 4000 millicores and 2048 MiB)"},
		{resources(1<<20, 0), "no node has 1048576 millicores free (n1 has 4000)"},
	}
	for _, c := range cases {
		st, f := capacityNodes(t, capacity(4000, 2048), capacity(1000, 4096))
		submitSpec(t, f, 0, 1, c.spec)
		e := newEngine(st, healthy{"n1": 1, "n2": 1}, &agents{})
		e.pass(context.Background(), true, false)
		if w := workload(f, "w0"); w.State != api.StatePending || w.Reason != c.want {
			t.Errorf("%+v: got %q (%s), want %q", c.spec.Resources, w.Reason, w.State, c.want)
		}
	}
}

// A node that declares no capacity (an older agent) takes workloads
// without resources only.
func TestNodeWithoutCapacityTakesOnlyWorkloadsWithoutResources(t *testing.T) {
	st, f := capacityNodes(t, nil)
	submitSpec(t, f, 0, 1, resources(100, 0))
	submitSpec(t, f, 1, 1, api.Spec{Resources: &api.Resources{Pids: 10}}) // pids are not placed
	submitSpec(t, f, 2, 1, api.Spec{})
	e := newEngine(st, healthy{"n1": 1}, &agents{})
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.Node != "" || !strings.HasPrefix(w.Reason, "no node has declared a capacity to fit 100 millicores (n1 registered none") {
		t.Fatalf("w0: %+v", w)
	}
	for _, id := range []string{"w1", "w2"} {
		if w := workload(f, id); w.State != api.StateRunning || w.Node != "n1" {
			t.Fatalf("%s: %+v", id, w)
		}
	}
}

// A workload being moved says why it waits too, after why it was queued.
func TestQueuedWorkloadWaitReason(t *testing.T) {
	st, f := capacityNodes(t, capacity(1000, 1024), capacity(1000, 1024))
	submitSpec(t, f, 0, 2, resources(1000, 0))
	e := newEngine(st, healthy{"n1": 1, "n2": 1}, &agents{})
	e.pass(context.Background(), true, false)
	lost := workload(f, "w0")
	other := map[string]string{"n1": "n2", "n2": "n1"}[lost.Node]
	must(t, f.ApplyCommand(&fsm.SetNodeStatus{At: t0, Changes: []fsm.NodeStatusChange{{ID: lost.Node, Status: api.NodeOffline, Evict: true}}}))
	e.health = healthy{other: 1}
	e.pass(context.Background(), true, false)
	want := "node " + lost.Node + " offline; no node has 1000 millicores free (" + other + " has 0)"
	if w := workload(f, "w0"); w.State != api.StateFailed || w.Reason != want {
		t.Fatalf("w0: %+v, want failed with %q", w, want)
	}
}

// The start request carries the spec with its defaults; a workload from
// before specs existed (a plain service) is sent with no spec fields, so
// that agents older than them start it too.
func TestStartCarriesNormalizedSpec(t *testing.T) {
	st, f := setup(t, 1, 1) // no spec: an old workload
	spec := api.Spec{Type: api.TypeBatch, Ports: []string{"http"}, Check: &api.Check{Type: api.CheckTCP, Port: "http"}}
	must(t, f.ApplyCommand(&fsm.SubmitWorkloads{At: t0, Workloads: []api.Workload{{ID: "w9", Name: "x", Command: "sleep", Spec: spec}}}))
	a := &agents{}
	e := newEngine(st, healthy{"n1": 1}, a)
	e.pass(context.Background(), true, false)
	got := map[string]api.Spec{}
	for _, r := range a.starts {
		got[r.ID] = r.Spec
	}
	if got["w0"].Type != "" || got["w0"].Check != nil || got["w0"].Ports != nil {
		t.Fatalf("old workload sent with %+v, want no spec fields", got["w0"])
	}
	want := fsm.CopySpec(spec)
	want.Normalize()
	if !reflect.DeepEqual(got["w9"], want) {
		t.Fatalf("spec sent %+v, want %+v", got["w9"], want)
	}
	if w := workload(f, "w9"); w.Spec.Check.Interval != 0 {
		t.Fatalf("normalizing the request changed the state: %+v", w.Spec.Check)
	}
}

// runOne places one workload with spec on n1 and returns the engine.
func runOne(t *testing.T, spec api.Spec) (*Engine, *store, *fsm.FSM, *agents, *[]string) {
	t.Helper()
	st, f := capacityNodes(t, capacity(4000, 4096))
	submitSpec(t, f, 0, 1, spec)
	a := &agents{}
	var events []string
	var mu sync.Mutex
	e := New(Config{Term: 7, MaxAttempts: 3, OnEvent: func(kind, w, n, msg string) {
		mu.Lock()
		events = append(events, kind+" "+w)
		mu.Unlock()
	}}, st, healthy{"n1": 1}, a)
	e.started = time.Now().Add(-time.Hour)
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.State != api.StateRunning {
		t.Fatalf("not running: %+v", w)
	}
	return e, st, f, a, &events
}

// report makes n1 report w0 as inst at a time well after its last change.
func report(e *Engine, f *fsm.FSM, inst api.AgentWorkload) {
	w := workload(f, "w0")
	inst.ID, inst.Generation = "w0", w.Generation
	e.mu.Lock()
	e.observed["n1"] = observation{status: api.AgentStatus{NodeID: "n1", Workloads: []api.AgentWorkload{inst}}, at: w.UpdatedAt.Add(time.Minute)}
	e.dirty["n1"] = true
	e.mu.Unlock()
}

// A batch workload that exits 0 is completed: never restarted, no attempt,
// no failure event; its exit code and node stay.
func TestBatchExitZeroCompletes(t *testing.T) {
	e, _, f, a, events := runOne(t, api.Spec{Type: api.TypeBatch})
	report(e, f, api.AgentWorkload{State: api.InstanceExited, ExitCode: new(int)})
	for range 3 {
		e.pass(context.Background(), true, false)
	}
	w := workload(f, "w0")
	if w.State != api.StateCompleted || w.Attempts != 0 || w.Node != "n1" || w.ExitCode == nil || *w.ExitCode != 0 {
		t.Fatalf("batch after exit 0: %+v", w)
	}
	if len(a.starts) != 1 {
		t.Fatalf("%d starts, want 1 (never restarted)", len(a.starts))
	}
	if !reflect.DeepEqual(*events, []string{api.EventWorkloadCompleted + " w0"}) {
		t.Fatalf("events %v", *events)
	}
	// Its instance, reported running again somehow, is a stray.
	report(e, f, api.AgentWorkload{State: api.InstanceRunning, PID: 9})
	e.pass(context.Background(), true, false)
	e.wg.Wait()
	if stops := a.stopCalls(); len(stops) != 1 {
		t.Fatalf("stops %v, want the stray stopped", stops)
	}
	if w := workload(f, "w0"); w.State != api.StateCompleted {
		t.Fatalf("a running report revived a completed workload: %+v", w)
	}
}

// A batch workload that exits non-zero, and a service that exits 0, are
// queued for recovery counting an attempt, as before.
func TestExitsThatAreFailures(t *testing.T) {
	code := 2
	for name, c := range map[string]struct {
		spec api.Spec
		exit *int
	}{
		"batch exit 2":   {api.Spec{Type: api.TypeBatch}, &code},
		"service exit 0": {api.Spec{}, new(int)},
	} {
		e, _, f, a, _ := runOne(t, c.spec)
		report(e, f, api.AgentWorkload{State: api.InstanceExited, ExitCode: c.exit})
		e.pass(context.Background(), true, false)
		w := workload(f, "w0")
		if w.State != api.StateRunning || w.Attempts != 1 || w.Generation != 2 || len(a.starts) != 2 {
			t.Errorf("%s: %+v after %d starts, want restarted with one attempt", name, w, len(a.starts))
		}
	}
}

// An instance restarting in place is present: not lost, not failed.
func TestRestartingCountsAsPresent(t *testing.T) {
	e, _, f, a, events := runOne(t, api.Spec{Restart: &api.RestartPolicy{Attempts: 3}})
	report(e, f, api.AgentWorkload{State: api.InstanceRestarting, Restarts: 1})
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	if w.State != api.StateRunning || w.Attempts != 0 || w.Generation != 1 || len(a.starts) != 1 || len(*events) != 0 {
		t.Fatalf("restarting instance treated as gone: %+v, %d starts, events %v", w, len(a.starts), *events)
	}
	if w.Restarts != 1 {
		t.Fatalf("restarts not recorded: %+v", w)
	}
	// The same report without the instance: it is lost (the test can tell).
	report(e, f, api.AgentWorkload{State: api.InstanceStopped})
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.Generation != 2 {
		t.Fatalf("a vanished instance was not replaced: %+v", w)
	}
}

// A restarting instance the desired state does not place is stopped.
func TestRestartingStrayIsStopped(t *testing.T) {
	e, _, f, a, _ := runOne(t, api.Spec{})
	e.Observe("n1", api.AgentStatus{Workloads: []api.AgentWorkload{
		{ID: "w0", State: api.InstanceRunning, PID: workload(f, "w0").PID, Generation: 1},
		{ID: "old", State: api.InstanceRestarting, Generation: 3},
	}})
	e.pass(context.Background(), false, false)
	e.wg.Wait()
	if stops := a.stopCalls(); !reflect.DeepEqual(stops, []string{"n1:80 old 3"}) {
		t.Fatalf("stops %v", stops)
	}
}

// An instance that failed after its restarts in place ran out is moved,
// counting an attempt, with the agent's reason in the workload's.
func TestFailedAfterRestartsIsMovedWithItsReason(t *testing.T) {
	e, _, f, _, _ := runOne(t, api.Spec{Restart: &api.RestartPolicy{Attempts: 2}})
	code := 137
	report(e, f, api.AgentWorkload{State: api.InstanceExited, ExitCode: &code, Restarts: 2, Reason: "OOM killed"})
	// Nowhere to go: it stays failed, and the reason says why it failed and
	// why it waits.
	e.health = healthy{}
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	want := "exited with code 137 on n1: OOM killed (after 2 restarts in place); no online node has passed a health check under this leader yet"
	if w.State != api.StateFailed || w.Attempts != 1 || w.Reason != want || w.Restarts != 2 {
		t.Fatalf("%+v, want failed, one attempt, reason %q", w, want)
	}
}

// Health, restarts, ports and pid are recorded when they change, in one
// write per change, not on every report.
func TestReportedFieldsRecordedOnChange(t *testing.T) {
	e, st, f, _, _ := runOne(t, api.Spec{Ports: []string{"http"}, Check: &api.Check{Type: api.CheckHTTP, Port: "http"}})
	count := countApplies(st)
	pid := workload(f, "w0").PID
	healthyReport := api.AgentWorkload{State: api.InstanceRunning, PID: pid, Health: api.HealthHealthy,
		Ports: map[string]int{"http": 20001, "bogus": 1}}
	for range 3 {
		report(e, f, healthyReport)
		e.pass(context.Background(), false, false)
	}
	w := workload(f, "w0")
	if w.Health != api.HealthHealthy || !reflect.DeepEqual(w.Ports, map[string]int{"http": 20001}) {
		t.Fatalf("%+v", w)
	}
	if n := count.get(&fsm.UpdateInstances{}); n != 1 {
		t.Fatalf("%d writes for 3 identical reports, want 1", n)
	}
	// A restart in place: new pid, one more restart, unknown health.
	report(e, f, api.AgentWorkload{State: api.InstanceRunning, PID: pid + 1, Restarts: 1, Health: api.HealthUnknown, Ports: map[string]int{"http": 20001}})
	e.pass(context.Background(), false, false)
	w = workload(f, "w0")
	if w.PID != pid+1 || w.Restarts != 1 || w.Health != "" || count.get(&fsm.UpdateInstances{}) != 2 {
		t.Fatalf("after a restart in place: %+v", w)
	}
}

func TestSelectorFits(t *testing.T) {
	c := Candidate{ID: "n1", Capacity: capacity(1000, 512), Allocated: api.Capacity{CPUMillicores: 600, MemoryMB: 100}}
	for _, tc := range []struct {
		r    *api.Resources
		want bool
	}{
		{nil, true},
		{&api.Resources{}, true},
		{&api.Resources{Pids: 5}, true},
		{&api.Resources{CPUMillicores: 400}, true},
		{&api.Resources{CPUMillicores: 401}, false},
		{&api.Resources{MemoryMB: 412}, true},
		{&api.Resources{MemoryMB: 413}, false},
	} {
		if got := c.Fits(tc.r); got != tc.want {
			t.Errorf("Fits(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
	if (Candidate{}).Fits(&api.Resources{MemoryMB: 1}) {
		t.Errorf("a node without capacity fits a workload with resources")
	}
	s := NewSelector([]Candidate{c})
	if _, ok := s.PickFor(nil, &api.Resources{CPUMillicores: 400}, nil); !ok {
		t.Fatal("no pick")
	}
	if _, ok := s.PickFor(nil, &api.Resources{CPUMillicores: 1}, nil); ok {
		t.Fatal("a pick beyond the node's capacity")
	}
}

// With every online node over the CPU limit, a new workload waits and says
// so, and is placed once a node is below the limit again.
func TestBusyNodesGiveAReason(t *testing.T) {
	st, f := capacityNodes(t, capacity(4000, 4096))
	submitSpec(t, f, 0, 1, api.Spec{})
	e := New(Config{Term: 7, MaxAttempts: 3, CPULimit: 80}, st, healthy{"n1": 95}, &agents{})
	e.started = time.Now().Add(-time.Hour)
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	want := "every online node checked is at or over the 80% CPU limit (see scheduler health)"
	if w.State != api.StatePending || w.Reason != want {
		t.Fatalf("%+v, want pending with reason %q", w, want)
	}
	e.health = healthy{"n1": 10}
	e.pass(context.Background(), true, false)
	if w := workload(f, "w0"); w.State != api.StateRunning {
		t.Fatalf("not placed once the node is below the limit: %+v", w)
	}
}

// A stopped workload holds its room on its node while the node still reports
// its instance running (the stop grace), and frees it once the instance is
// gone.
func TestStoppingInstanceHoldsItsRoom(t *testing.T) {
	st, f := capacityNodes(t, capacity(1000, 4096))
	submitSpec(t, f, 0, 1, resources(1000, 0))
	e := New(Config{Term: 7, MaxAttempts: 3}, st, healthy{"n1": 1}, &agents{})
	e.started = time.Now().Add(-time.Hour)
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	if w.State != api.StateRunning {
		t.Fatalf("not running: %+v", w)
	}
	must(t, f.ApplyCommand(&fsm.StopWorkload{At: t0.Add(time.Minute), ID: "w0"}))
	submitSpec(t, f, 1, 1, resources(1000, 0))
	stillRunning := api.AgentWorkload{ID: "w0", PID: w.PID, State: api.InstanceRunning, Generation: w.Generation}
	e.mu.Lock()
	e.observed["n1"] = observation{status: api.AgentStatus{Workloads: []api.AgentWorkload{stillRunning}}, at: time.Now()}
	e.mu.Unlock()
	e.pass(context.Background(), true, false)
	if got := workload(f, "w1"); got.State != api.StatePending || got.Node != "" {
		t.Fatalf("placed into the room of an instance still stopping: %+v", got)
	}
	stillRunning.State = api.InstanceStopped
	e.mu.Lock()
	e.observed["n1"] = observation{status: api.AgentStatus{Workloads: []api.AgentWorkload{stillRunning}}, at: time.Now()}
	e.mu.Unlock()
	e.pass(context.Background(), true, false)
	if got := workload(f, "w1"); got.State != api.StateRunning {
		t.Fatalf("not placed once the instance was gone: %+v", got)
	}
}
