package fsm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// lifecycleSpec is a normalized spec using every field.
func lifecycleSpec() api.Spec {
	s := api.Spec{
		Type:  api.TypeService,
		Ports: []string{"http", "admin"},
		Check: &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/healthz", Interval: api.Duration(2 * time.Second)},
		Restart: &api.RestartPolicy{Attempts: 2, Delay: api.Duration(500 * time.Millisecond),
			MaxDelay: api.Duration(10 * time.Second)},
		Resources: &api.Resources{CPUMillicores: 500, MemoryMB: 256, Pids: 64},
	}
	s.Normalize()
	return s
}

func batchSpec() api.Spec {
	s := api.Spec{Type: api.TypeBatch}
	s.Normalize()
	return s
}

func TestApplySubmitKeepsSpecWithoutAliasing(t *testing.T) {
	f := fsm.New()
	w := spec(w0)
	w.Spec = lifecycleSpec()
	w.Health, w.Restarts, w.Ports = api.HealthHealthy, 4, map[string]int{"http": 1}
	c := &fsm.SubmitWorkloads{At: at(0), Seq: 1, Workloads: []api.Workload{w}}
	mustApply(t, f, c)
	got := getWorkload(t, f, w0)
	if !reflect.DeepEqual(got.Spec, lifecycleSpec()) {
		t.Fatalf("spec not kept:\n%#v\nwant\n%#v", got.Spec, lifecycleSpec())
	}
	if got.Health != "" || got.Restarts != 0 || got.Ports != nil {
		t.Fatalf("reported fields not reset at submission: %+v", got)
	}
	// The command's spec is the leader's: changing it later changes nothing.
	c.Workloads[0].Spec.Ports[0] = "x"
	c.Workloads[0].Spec.Check.Port = "x"
	c.Workloads[0].Spec.Resources.CPUMillicores = 1
	if again := getWorkload(t, f, w0); !reflect.DeepEqual(again.Spec, lifecycleSpec()) {
		t.Fatalf("state aliases the command's spec: %#v", again.Spec)
	}
}

func TestApplyRegisterCapacity(t *testing.T) {
	f := fsm.New()
	capa := &api.Capacity{CPUMillicores: 4000, MemoryMB: 8192}
	mustApply(t, f, &fsm.RegisterNode{At: at(0), ID: "n1", Address: "a:1", Capacity: capa})
	capa.CPUMillicores = 1 // the state must not alias the command
	if n := getNode(t, f, "n1"); n.Capacity == nil || *n.Capacity != (api.Capacity{CPUMillicores: 4000, MemoryMB: 8192}) {
		t.Fatalf("capacity %+v", n.Capacity)
	}
	// Registering again replaces it; an agent that declares none clears it.
	mustApply(t, f, &fsm.RegisterNode{At: at(1), ID: "n1", Address: "a:1", Capacity: &api.Capacity{CPUMillicores: 2000, MemoryMB: 512}})
	if n := getNode(t, f, "n1"); *n.Capacity != (api.Capacity{CPUMillicores: 2000, MemoryMB: 512}) {
		t.Fatalf("capacity after re-registering: %+v", n.Capacity)
	}
	mustApply(t, f, register(2, "n1", "a:1"))
	if n := getNode(t, f, "n1"); n.Capacity != nil {
		t.Fatalf("capacity kept after a registration without one: %+v", n.Capacity)
	}
	mustFail(t, f, &fsm.RegisterNode{At: at(3), ID: "n2", Address: "b:1", Capacity: &api.Capacity{CPUMillicores: -1}}, fsm.ErrInvalid)
}

// A batch workload that exited 0 is completed: kept on its node with its
// exit code, out of the queue, and nothing but a stop changes it.
func TestApplyCompleted(t *testing.T) {
	f := fsm.New()
	w := spec(w0)
	w.Spec = batchSpec()
	mustApply(t, f, &fsm.SubmitWorkloads{At: at(0), Seq: 1, Workloads: []api.Workload{w}}, register(1, "n1", "a:1"),
		place(2, w0, "n1", 1), running(3, w0, 1, 42),
		&fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 1, Health: api.HealthHealthy, Restarts: 1, Ports: map[string]int{"http": 5}}}},
		&fsm.RecordOutcomes{At: at(4), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: w0, Generation: 1, ExitCode: new(int), Completed: true}}})
	got := getWorkload(t, f, w0)
	wantState(t, got, api.StateCompleted)
	if got.Node != "n1" || got.ExitCode == nil || *got.ExitCode != 0 || got.PID != 0 || got.Attempts != 0 || got.Reason != "" {
		t.Fatalf("completed workload: %+v", got)
	}
	if got.Health != "" || got.Ports != nil || got.Restarts != 1 {
		t.Fatalf("completed keeps the restarts only: %+v", got)
	}
	wantQueue(t, f)
	// Late outcomes, queueing, placements and reports leave it alone.
	mustNoop(t, f, failed(5, w0, 1, 3, "late"))
	mustNoop(t, f, running(5, w0, 1, 43))
	mustNoop(t, f, &fsm.EnqueueRecovery{At: at(5), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: w0, Reason: "x", CountAttempt: true}}})
	mustNoop(t, f, place(5, w0, "n1", 2))
	mustNoop(t, f, &fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 1, Health: api.HealthUnhealthy}}})
	before := getWorkload(t, f, w0)
	mustApply(t, f, setStatus(6, fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}))
	if after := getWorkload(t, f, w0); !reflect.DeepEqual(after, before) {
		t.Fatalf("eviction changed a completed workload: %+v", after)
	}
	wantQueue(t, f)
	// A stop is allowed.
	mustApply(t, f, &fsm.StopWorkload{At: at(7), ID: w0})
	wantState(t, getWorkload(t, f, w0), api.StateStopped)
}

func TestApplyUpdateInstances(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, submit(0, 2, w0, w1), register(1, "n1", "a:1"),
		place(2, w0, "n1", 1), running(3, w0, 1, 42), place(2, w1, "n1", 1))
	ports := map[string]int{"http": 20001}
	mustApply(t, f, &fsm.UpdateInstances{Reports: []fsm.InstanceReport{
		{ID: w0, Generation: 1, Health: api.HealthHealthy, Restarts: 2, Ports: ports},
		{ID: w1, Generation: 1, Health: api.HealthHealthy}, // pending: not running yet
		{ID: "ghost", Generation: 1, Health: api.HealthHealthy},
	}})
	ports["http"] = 1 // no aliasing
	got := getWorkload(t, f, w0)
	if got.Health != api.HealthHealthy || got.Restarts != 2 || !reflect.DeepEqual(got.Ports, map[string]int{"http": 20001}) {
		t.Fatalf("report not recorded: %+v", got)
	}
	if !got.UpdatedAt.Equal(at(3)) {
		t.Fatalf("a report moved UpdatedAt to %v", got.UpdatedAt)
	}
	if w := getWorkload(t, f, w1); w.Health != "" {
		t.Fatalf("report of a pending instance recorded: %+v", w)
	}
	// A report of another generation is ignored; an unknown verdict is unknown.
	mustNoop(t, f, &fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 7, Health: api.HealthUnhealthy}}})
	mustApply(t, f, &fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 1, Health: "bogus", Restarts: -3}}})
	if got := getWorkload(t, f, w0); got.Health != "" || got.Restarts != 0 || got.Ports != nil {
		t.Fatalf("after a report without health or ports: %+v", got)
	}

	// Leaving running clears health and ports; a new placement clears restarts.
	mustApply(t, f, &fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 1, Health: api.HealthUnhealthy, Restarts: 3, Ports: map[string]int{"http": 20001}}}},
		&fsm.EnqueueRecovery{At: at(4), MaxAttempts: 5, Requests: []fsm.RecoveryRequest{{ID: w0, Reason: "exited", CountAttempt: true}}})
	if got := getWorkload(t, f, w0); got.Health != "" || got.Ports != nil || got.Restarts != 3 {
		t.Fatalf("failed: %+v", got)
	}
	mustApply(t, f, place(5, w0, "n1", 2))
	if got := getWorkload(t, f, w0); got.Restarts != 0 {
		t.Fatalf("placed again: %+v", got)
	}
}

func TestApplyWaitReasons(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, submit(0, 3, w0, w1, "workload_1705311045_2"), register(1, "n1", "a:1"),
		place(2, w1, "n1", 1), // pending with a node: being started
		place(2, "workload_1705311045_2", "n1", 1), running(3, "workload_1705311045_2", 1, 9),
		&fsm.EnqueueRecovery{At: at(4), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: "workload_1705311045_2", Reason: "exited"}}},
	)
	mustApply(t, f, &fsm.SetWaitReasons{Reasons: []fsm.WaitReason{
		{ID: w0, Reason: "no node has 2000 millicores free (n1 has 1500)"},
		{ID: w1, Reason: "ignored"},
		{ID: "workload_1705311045_2", Reason: "exited; no node has 64 MiB of memory free (n1 has 0)"},
		{ID: "ghost", Reason: "x"},
	}})
	if w := getWorkload(t, f, w0); w.Reason != "no node has 2000 millicores free (n1 has 1500)" || w.State != api.StatePending {
		t.Fatalf("pending: %+v", w)
	}
	if w := getWorkload(t, f, w1); w.Reason != "" {
		t.Fatalf("a workload being started got a wait reason: %+v", w)
	}
	if w := getWorkload(t, f, "workload_1705311045_2"); w.Reason != "exited; no node has 64 MiB of memory free (n1 has 0)" || w.State != api.StateFailed {
		t.Fatalf("queued: %+v", w)
	}
	// Placed and running: the reason goes.
	mustApply(t, f, place(5, w0, "n1", 1), running(6, w0, 1, 7))
	if w := getWorkload(t, f, w0); w.Reason != "" {
		t.Fatalf("running keeps a wait reason: %+v", w)
	}
}

// lifecycleCommands extends the fixture with the workload lifecycle: a node
// that declares its capacity, a service with every spec field running with
// a reported health and ports, and a completed batch workload.
func lifecycleCommands() []fsm.Command {
	svc := api.Workload{ID: "workload_1705311045_2", Name: "api", Command: "/usr/bin/api", Args: []string{"--port-from-env"}, Spec: lifecycleSpec()}
	job := api.Workload{ID: "workload_1705311045_3", Name: "migrate", Command: "/bin/true", Spec: batchSpec()}
	return append(fixtureCommands(),
		&fsm.RegisterNode{At: at(20), ID: "n3", Address: "127.0.0.1:8082", Capacity: &api.Capacity{CPUMillicores: 4000, MemoryMB: 7938}},
		&fsm.SubmitWorkloads{At: at(21), Seq: 4, Workloads: []api.Workload{svc, job}},
		&fsm.PlaceWorkloads{At: at(22), Placements: []fsm.Placement{{ID: svc.ID, Node: "n3", Generation: 1, Term: 2}, {ID: job.ID, Node: "n3", Generation: 1, Term: 2}}},
		&fsm.RecordOutcomes{At: at(23), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: svc.ID, Generation: 1, Running: true, PID: 5150}, {ID: job.ID, Generation: 1, Running: true, PID: 5151}}},
		&fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: svc.ID, Generation: 1, Health: api.HealthHealthy, Restarts: 1, Ports: map[string]int{"http": 20001, "admin": 20002}}}},
		&fsm.RecordOutcomes{At: at(24), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: job.ID, Generation: 1, ExitCode: new(int), Completed: true}}},
	)
}

const goldenLifecycle = "state_v1_lifecycle.golden.json"

// TestStateFileGoldenLifecycle pins how the lifecycle fields (spec, health,
// restarts, ports, completed, node capacity) appear in the version 1 state
// file. They are all optional: state_v1.golden.json, written before them,
// still reads back byte for byte (TestStateFileGoldenReadsBack).
func TestStateFileGoldenLifecycle(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, lifecycleCommands()...)
	got := export(t, f)
	path := filepath.Join("testdata", goldenLifecycle)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("state file differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
	st, err := fsm.ParseState(want)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st.Marshal(); !bytes.Equal(again, want) {
		t.Fatalf("%s does not marshal back identically:\n%s", path, again)
	}
	dst := fsm.New()
	if _, err := restore(dst, persist(t, f)); err != nil {
		t.Fatal(err)
	}
	sameState(t, f, dst)
	if w := getWorkload(t, dst, "workload_1705311045_2"); !reflect.DeepEqual(w.Spec, lifecycleSpec()) || w.Health != api.HealthHealthy || w.Ports["admin"] != 20002 {
		t.Fatalf("restored service: %+v", w)
	}
}

// A state file written before workload specs existed loads: its workloads
// have an empty spec, which means a service without a check.
func TestOldStateFileHasEmptySpecs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", goldenV1))
	if err != nil {
		t.Fatal(err)
	}
	st, err := fsm.ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range st.Workloads {
		if !reflect.DeepEqual(w.Spec, api.Spec{}) || w.Health != "" || w.Ports != nil {
			t.Errorf("%s: %+v", id, w)
		}
	}
	for id, n := range st.Nodes {
		if n.Capacity != nil {
			t.Errorf("node %s has a capacity: %+v", id, n.Capacity)
		}
	}
}

func TestCloneCopiesSpecPortsAndCapacity(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, lifecycleCommands()...)
	var c *fsm.State
	f.Read(func(s *fsm.State) { c = s.Clone() })
	w := c.Workloads["workload_1705311045_2"]
	w.Spec.Ports[0] = "x"
	w.Spec.Check.Interval = 1
	w.Spec.Restart.Attempts = 99
	w.Spec.Resources.MemoryMB = 1
	w.Ports["http"] = 1
	c.Nodes["n3"].Capacity.CPUMillicores = 1
	if got := getWorkload(t, f, "workload_1705311045_2"); !reflect.DeepEqual(got.Spec, lifecycleSpec()) || got.Ports["http"] != 20001 {
		t.Fatalf("clone aliases the workload: %+v", got)
	}
	if n := getNode(t, f, "n3"); n.Capacity.CPUMillicores != 4000 {
		t.Fatalf("clone aliases the node's capacity: %+v", n.Capacity)
	}
}
