package fsm_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

func lastSeq(f *fsm.FSM) (n uint64) {
	f.Read(func(s *fsm.State) { n = s.LastSeq })
	return n
}

func TestApplySubmit(t *testing.T) {
	f := fsm.New()
	code := 9
	// Fields the leader must not be able to smuggle in are reset.
	dirty := spec(w0)
	dirty.Env = map[string]string{"A": "1"}
	dirty.State, dirty.Node, dirty.Attempts, dirty.Generation = api.StateRunning, "n9", 5, 7
	dirty.PID, dirty.ExitCode, dirty.Reason = 3, &code, "kept"
	dirty.History = []api.Placement{{Node: "n9", Generation: 7}}
	mustApply(t, f, &fsm.SubmitWorkloads{At: at(0), Seq: 2, Workloads: []api.Workload{dirty, spec(w1)}})

	for _, id := range []string{w0, w1} {
		w := getWorkload(t, f, id)
		wantState(t, w, api.StatePending)
		if w.Node != "" || w.Attempts != 0 || w.Generation != 0 || w.PID != 0 || w.ExitCode != nil || w.History != nil {
			t.Errorf("%s: placement fields not reset: %+v", id, w)
		}
		if !w.CreatedAt.Equal(at(0)) || !w.UpdatedAt.Equal(at(0)) {
			t.Errorf("%s: times %v/%v, want the command's At", id, w.CreatedAt, w.UpdatedAt)
		}
		if w.Command != "/bin/sleep" || !reflect.DeepEqual(w.Args, []string{"60"}) {
			t.Errorf("%s: spec not kept: %+v", id, w)
		}
	}
	if w := getWorkload(t, f, w0); w.Env["A"] != "1" {
		t.Errorf("env not kept: %v", w.Env)
	}
	if got := lastSeq(f); got != 2 {
		t.Fatalf("LastSeq = %d, want 2", got)
	}
	wantQueue(t, f)

	// A lower Seq does not lower LastSeq.
	mustApply(t, f, submit(1, 1, "workload_1705311046_0"))
	if got := lastSeq(f); got != 2 {
		t.Fatalf("LastSeq = %d after a lower seq, want 2", got)
	}
	mustApply(t, f, submit(2, 10, "workload_1705311047_0"))
	if got := lastSeq(f); got != 10 {
		t.Fatalf("LastSeq = %d, want 10", got)
	}

	// Conflicts change nothing: not the other workloads of the batch, not LastSeq.
	mustFail(t, f, submit(3, 20, "workload_new", w0), fsm.ErrConflict)
	mustFail(t, f, submit(3, 20, "workload_dup", "workload_dup"), fsm.ErrConflict)
	// Invalid workloads neither.
	mustFail(t, f, &fsm.SubmitWorkloads{At: at(3), Seq: 20, Workloads: []api.Workload{spec("ok"), {ID: "", Command: "c"}}}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.SubmitWorkloads{At: at(3), Seq: 20, Workloads: []api.Workload{spec("ok"), {ID: "nocmd"}}}, fsm.ErrInvalid)
}

func TestApplySubmitDoesNotAliasCommand(t *testing.T) {
	f := fsm.New()
	c := &fsm.SubmitWorkloads{At: at(0), Seq: 1, Workloads: []api.Workload{{ID: w0, Command: "c", Args: []string{"a"}, Env: map[string]string{"K": "V"}}}}
	if err := f.ApplyCommand(c); err != nil {
		t.Fatal(err)
	}
	before := export(t, f)
	c.Workloads[0].Args[0] = "changed"
	c.Workloads[0].Env["K"] = "changed"
	if after := export(t, f); !bytes.Equal(before, after) {
		t.Fatalf("state shares memory with the submitted command")
	}
}

func TestApplyStop(t *testing.T) {
	f := fixtureFSM(t) // w0 is failed and queued
	wantQueue(t, f, w0)
	mustApply(t, f, &fsm.StopWorkload{At: at(20), ID: w0})
	w := getWorkload(t, f, w0)
	wantState(t, w, api.StateStopped)
	if w.Reason == "" || !w.UpdatedAt.Equal(at(20)) {
		t.Errorf("stop: reason %q, updated %v", w.Reason, w.UpdatedAt)
	}
	wantQueue(t, f)

	// A pending workload that was never queued.
	mustApply(t, f, &fsm.StopWorkload{At: at(21), ID: w1})
	wantState(t, getWorkload(t, f, w1), api.StateStopped)

	mustFail(t, f, &fsm.StopWorkload{At: at(22), ID: "workload_0_0"}, fsm.ErrNotFound)
	mustFail(t, f, &fsm.StopWorkload{At: at(22), ID: ""}, fsm.ErrNotFound)

	// Nothing brings a stopped workload back.
	mustNoop(t, f, place(23, w0, "n2", 5))
	mustNoop(t, f, running(24, w0, 1, 5))
	mustNoop(t, f, failed(24, w0, 1, 3, "x"))
	mustNoop(t, f, &fsm.EnqueueRecovery{At: at(25), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: w0, Reason: "x", CountAttempt: true}}})
	mustApply(t, f, register(26, "n2", "127.0.0.1:8081"))
	mustApply(t, f, setStatus(27, fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}))
	wantState(t, getWorkload(t, f, w0), api.StateStopped)
	wantQueue(t, f)
}

func TestApplyRegister(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, register(1, "n1", "127.0.0.1:8080"))
	n := getNode(t, f, "n1")
	want := api.Node{ID: "n1", Address: "127.0.0.1:8080", Status: api.NodeOnline, RegisteredAt: at(1), UpdatedAt: at(1), Eligible: true}
	if n != want {
		t.Fatalf("new node = %+v, want %+v", n, want)
	}

	mustApply(t, f, setStatus(2, fsm.NodeStatusChange{ID: "n1", Status: api.NodeDegraded}))
	mustApply(t, f, register(3, "n1", "10.0.0.1:8080"))
	n = getNode(t, f, "n1")
	want = api.Node{ID: "n1", Address: "10.0.0.1:8080", Status: api.NodeDegraded, RegisteredAt: at(1), UpdatedAt: at(3), Eligible: true}
	if n != want {
		t.Fatalf("re-registered node = %+v, want %+v (status is the leader's to decide)", n, want)
	}

	mustFail(t, f, register(4, "", "a:1"), fsm.ErrInvalid)
	mustFail(t, f, register(4, "n1", ""), fsm.ErrInvalid)
	mustFail(t, f, register(4, "n2", ""), fsm.ErrInvalid)
}

func TestApplySetNodeStatusAllOrNothing(t *testing.T) {
	f := fixtureFSM(t)
	mustApply(t, f, place(11, w1, "n2", 1), running(12, w1, 1, 7))
	// The valid first change (with eviction) must not apply either.
	mustFail(t, f, setStatus(20,
		fsm.NodeStatusChange{ID: "n2", Status: api.NodeOffline, Evict: true},
		fsm.NodeStatusChange{ID: "n9", Status: api.NodeOnline}), fsm.ErrNotFound)
	mustFail(t, f, setStatus(20,
		fsm.NodeStatusChange{ID: "n2", Status: api.NodeOffline, Evict: true},
		fsm.NodeStatusChange{ID: "n1", Status: "dead"}), fsm.ErrInvalid)
	mustFail(t, f, setStatus(20, fsm.NodeStatusChange{ID: "n2", Status: ""}), fsm.ErrInvalid)
	mustFail(t, f, setStatus(20, fsm.NodeStatusChange{ID: "n2", Status: "Online"}), fsm.ErrInvalid)

	for _, st := range []string{api.NodeDegraded, api.NodeOnline, api.NodeOffline} {
		mustApply(t, f, setStatus(30, fsm.NodeStatusChange{ID: "n1", Status: st}))
		if n := getNode(t, f, "n1"); n.Status != st || !n.UpdatedAt.Equal(at(30)) {
			t.Fatalf("node after set %s: %+v", st, n)
		}
	}
}

// evictionFSM has nodes n1 and n2 and, on n1, workloads in every state.
func evictionFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	mustApply(t, f,
		register(0, "n1", "h:1"), register(0, "n2", "h:2"),
		submit(1, 1, "run1", "pend1", "fail1", "stop1", "perm1", "run2", "new"),
		place(2, "run1", "n1", 1), running(3, "run1", 1, 11),
		place(2, "pend1", "n1", 1), // intent recorded, no outcome yet
		place(2, "fail1", "n1", 1), failed(3, "fail1", 1, 3, "exit 1"),
		place(2, "stop1", "n1", 1), running(3, "stop1", 1, 12), &fsm.StopWorkload{At: at(4), ID: "stop1"},
		place(2, "perm1", "n1", 1), failed(3, "perm1", 1, 1, "exit 2"),
		place(2, "run2", "n2", 1), running(3, "run2", 1, 21),
	)
	wantQueue(t, f, "fail1")
	return f
}

func TestApplySetNodeStatusEvict(t *testing.T) {
	f := evictionFSM(t)
	before := map[string]api.Workload{}
	for _, id := range []string{"fail1", "stop1", "perm1", "run2", "new"} {
		before[id] = getWorkload(t, f, id)
	}
	mustApply(t, f, setStatus(10, fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}))

	for _, id := range []string{"run1", "pend1"} {
		w := getWorkload(t, f, id)
		wantState(t, w, api.StateFailed)
		if w.Reason != "node n1 offline" || w.PID != 0 || !w.UpdatedAt.Equal(at(10)) {
			t.Errorf("%s after eviction: %+v", id, w)
		}
		if w.Attempts != 0 {
			t.Errorf("%s: eviction counted an attempt (%d)", id, w.Attempts)
		}
	}
	for id, w := range before {
		if got := getWorkload(t, f, id); !reflect.DeepEqual(got, w) {
			t.Errorf("eviction touched %s:\n%+v\nwas\n%+v", id, got, w)
		}
	}
	// Queued once each, in a deterministic (sorted) order after what was there.
	wantQueue(t, f, "fail1", "pend1", "run1")
	f.Read(func(s *fsm.State) {
		for _, q := range s.RecoveryQueue[1:] {
			if !q.Since.Equal(at(10)) || q.Reason != "node n1 offline" {
				t.Errorf("queue entry %+v", q)
			}
		}
	})

	// Evicting again changes nothing and queues nothing twice.
	mustNoop(t, f, setStatus(10, fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}))
	// Both changes in one batch: still once.
	g := evictionFSM(t)
	mustApply(t, g, setStatus(10,
		fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true},
		fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}))
	wantQueue(t, g, "fail1", "pend1", "run1")
}

func TestApplySetNodeStatusWithoutEvict(t *testing.T) {
	for _, ch := range []fsm.NodeStatusChange{
		{ID: "n1", Status: api.NodeOffline},
		{ID: "n1", Status: api.NodeDegraded, Evict: true}, // Evict only means something for offline
		{ID: "n1", Status: api.NodeOnline, Evict: true},
	} {
		f := evictionFSM(t)
		var wBefore *fsm.State
		f.Read(func(s *fsm.State) { wBefore = s.Clone() })
		mustApply(t, f, setStatus(10, ch))
		if n := getNode(t, f, "n1"); n.Status != ch.Status {
			t.Fatalf("%+v: node status %q", ch, n.Status)
		}
		wantState(t, getWorkload(t, f, "run1"), api.StateRunning)
		wantState(t, getWorkload(t, f, "pend1"), api.StatePending)
		wantQueue(t, f, "fail1")
		// Only the node changed.
		var after *fsm.State
		f.Read(func(s *fsm.State) { after = s.Clone() })
		if !reflect.DeepEqual(after.Workloads, wBefore.Workloads) || !reflect.DeepEqual(after.RecoveryQueue, wBefore.RecoveryQueue) {
			t.Fatalf("%+v changed workloads or the queue:\n%s", ch, export(t, f))
		}
	}
}

func TestApplyEnqueue(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, register(0, "n1", "h:1"), submit(1, 1, w0, w1), place(2, w0, "n1", 1), running(3, w0, 1, 42))

	req := func(sec, max int, count bool, ids ...string) *fsm.EnqueueRecovery {
		c := &fsm.EnqueueRecovery{At: at(sec), MaxAttempts: max}
		for _, id := range ids {
			c.Requests = append(c.Requests, fsm.RecoveryRequest{ID: id, Reason: "exited", CountAttempt: count})
		}
		return c
	}

	// Without counting: failed and queued, attempts untouched.
	mustApply(t, f, req(10, 3, false, w0))
	w := getWorkload(t, f, w0)
	wantState(t, w, api.StateFailed)
	if w.Attempts != 0 || w.PID != 0 || w.Reason != "exited" || !w.UpdatedAt.Equal(at(10)) {
		t.Fatalf("after enqueue: %+v", w)
	}
	wantQueue(t, f, w0)

	// Counting: 1, 2, then 3 = MaxAttempts gives up and leaves the queue.
	mustApply(t, f, req(11, 3, true, w0))
	mustApply(t, f, req(12, 3, true, w0))
	if w := getWorkload(t, f, w0); w.Attempts != 2 || w.State != api.StateFailed {
		t.Fatalf("after two counted attempts: %+v", w)
	}
	wantQueue(t, f, w0) // queued once, not three times
	f.Read(func(s *fsm.State) {
		if !s.RecoveryQueue[0].Since.Equal(at(10)) {
			t.Errorf("re-queueing moved the entry's Since to %v", s.RecoveryQueue[0].Since)
		}
	})
	mustApply(t, f, req(13, 3, true, w0))
	w = getWorkload(t, f, w0)
	wantState(t, w, api.StatePermanentlyFailed)
	if w.Attempts != 3 || !strings.Contains(w.Reason, "3 attempts") {
		t.Fatalf("permanently failed: %+v", w)
	}
	wantQueue(t, f)
	// A permanently failed workload stays so.
	mustNoop(t, f, req(14, 3, true, w0))

	// Stopped workloads and unknown IDs are ignored, the rest of the batch applies.
	mustApply(t, f, &fsm.StopWorkload{At: at(15), ID: w1})
	mustNoop(t, f, req(16, 3, true, w1, "ghost"))
	mustApply(t, f, submit(17, 2, "w2"), req(18, 3, true, "ghost", w1, "w2"))
	wantState(t, getWorkload(t, f, w1), api.StateStopped)
	wantState(t, getWorkload(t, f, "w2"), api.StateFailed)
	wantQueue(t, f, "w2")

	// MaxAttempts 0 never gives up.
	for i := 0; i < 5; i++ {
		mustApply(t, f, req(20+i, 0, true, "w2"))
	}
	if w := getWorkload(t, f, "w2"); w.State != api.StateFailed || w.Attempts != 6 {
		t.Fatalf("MaxAttempts 0: %+v", w)
	}

	// MaxAttempts 1: the first counted failure is final.
	mustApply(t, f, submit(30, 3, "w3"), req(31, 1, true, "w3"))
	wantState(t, getWorkload(t, f, "w3"), api.StatePermanentlyFailed)
	wantQueue(t, f, "w2")
}

func TestApplyPlace(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, register(0, "n1", "h:1"), register(0, "n2", "h:2"), submit(1, 1, w0, w1))

	mustApply(t, f, &fsm.PlaceWorkloads{At: at(2), Placements: []fsm.Placement{{ID: w0, Node: "n1", Generation: 1, Term: 4}}})
	w := getWorkload(t, f, w0)
	if w.Node != "n1" || w.Generation != 1 || !w.UpdatedAt.Equal(at(2)) {
		t.Fatalf("after place: %+v", w)
	}
	if want := []api.Placement{{Node: "n1", Generation: 1, Term: 4, At: at(2)}}; !reflect.DeepEqual(w.History, want) {
		t.Fatalf("history = %+v, want %+v", w.History, want)
	}
	wantState(t, w, api.StatePending) // the outcome decides the state

	// The same or an older generation is a stale intent.
	mustNoop(t, f, place(3, w0, "n2", 1))
	mustNoop(t, f, place(3, w0, "n2", 0))
	// Unknown and stopped workloads are skipped, the rest of the batch applies.
	mustApply(t, f, &fsm.StopWorkload{At: at(4), ID: w1})
	mustNoop(t, f, place(5, w1, "n2", 1))
	mustNoop(t, f, place(5, "ghost", "n2", 1))
	mustApply(t, f, &fsm.PlaceWorkloads{At: at(6), Placements: []fsm.Placement{
		{ID: "ghost", Node: "n2", Generation: 9}, {ID: w1, Node: "n2", Generation: 9}, {ID: w0, Node: "n2", Generation: 3, Term: 5},
		{ID: w0, Node: "n1", Generation: 2, Term: 5}, // older than the one just before it in the batch
	}})
	w = getWorkload(t, f, w0)
	if w.Node != "n2" || w.Generation != 3 || len(w.History) != 2 {
		t.Fatalf("after batch: %+v", w)
	}
	if s := getWorkload(t, f, w1); s.Generation != 0 || s.Node != "" {
		t.Fatalf("stopped workload was placed: %+v", s)
	}

	// A new placement clears the PID of the previous instance.
	mustApply(t, f, running(7, w0, 3, 99), place(8, w0, "n1", 4))
	if w := getWorkload(t, f, w0); w.PID != 0 {
		t.Fatalf("PID %d kept across placements", w.PID)
	}
}

func TestApplyPlaceHistoryCapped(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, submit(0, 1, w0))
	total := fsm.MaxHistory + 5
	for g := 1; g <= total; g++ {
		mustApply(t, f, place(g, w0, "n1", uint64(g)))
	}
	w := getWorkload(t, f, w0)
	if len(w.History) != fsm.MaxHistory {
		t.Fatalf("history has %d entries, want %d", len(w.History), fsm.MaxHistory)
	}
	for i, p := range w.History {
		if want := uint64(total - fsm.MaxHistory + 1 + i); p.Generation != want {
			t.Fatalf("history[%d].Generation = %d, want %d (oldest dropped first)", i, p.Generation, want)
		}
	}
}

func TestApplyOutcomes(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, register(0, "n1", "h:1"), submit(1, 1, w0, w1), place(2, w0, "n1", 2))

	// An outcome for another generation is ignored, running or not.
	mustNoop(t, f, running(3, w0, 1, 5))
	mustNoop(t, f, running(3, w0, 3, 5))
	mustNoop(t, f, failed(3, w0, 1, 3, "old"))
	mustNoop(t, f, running(3, "ghost", 0, 5))

	// A failure counts an attempt and queues.
	mustApply(t, f, failed(4, w0, 2, 3, "exit status 1"))
	w := getWorkload(t, f, w0)
	wantState(t, w, api.StateFailed)
	if w.Attempts != 1 || w.ExitCode == nil || *w.ExitCode != 1 || w.Reason != "exit status 1" || w.PID != 0 {
		t.Fatalf("after failure: %+v", w)
	}
	wantQueue(t, f, w0)

	// Running: state, PID, clears exit code and reason, leaves the queue.
	mustApply(t, f, place(5, w0, "n1", 3), running(6, w0, 3, 321))
	w = getWorkload(t, f, w0)
	wantState(t, w, api.StateRunning)
	if w.PID != 321 || w.ExitCode != nil || w.Reason != "" || w.Attempts != 1 || !w.UpdatedAt.Equal(at(6)) {
		t.Fatalf("after running: %+v", w)
	}
	wantQueue(t, f)

	// Failures up to MaxAttempts: permanently failed and out of the queue.
	mustApply(t, f, failed(7, w0, 3, 3, "crash"))
	wantState(t, getWorkload(t, f, w0), api.StateFailed)
	wantQueue(t, f, w0)
	mustApply(t, f, place(8, w0, "n1", 4), failed(9, w0, 4, 3, "crash"))
	w = getWorkload(t, f, w0)
	wantState(t, w, api.StatePermanentlyFailed)
	if w.Attempts != 3 {
		t.Fatalf("attempts = %d, want 3", w.Attempts)
	}
	wantQueue(t, f)
	// Nothing revives it, even an outcome for its own generation.
	mustNoop(t, f, running(10, w0, 4, 1))
	mustNoop(t, f, place(10, w0, "n1", 5))

	// A batch applies each outcome on its own terms.
	mustApply(t, f, place(11, w1, "n1", 1), &fsm.RecordOutcomes{At: at(12), MaxAttempts: 3, Outcomes: []fsm.Outcome{
		{ID: w1, Generation: 1, Running: true, PID: 8}, {ID: w0, Generation: 4, Running: true}, {ID: "ghost", Generation: 1},
	}})
	wantState(t, getWorkload(t, f, w1), api.StateRunning)
	wantState(t, getWorkload(t, f, w0), api.StatePermanentlyFailed)
}

func TestApplyOutcomeDoesNotAliasExitCode(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, submit(0, 1, w0), place(1, w0, "n1", 1))
	code := 4
	if err := f.ApplyCommand(&fsm.RecordOutcomes{At: at(2), Outcomes: []fsm.Outcome{{ID: w0, Generation: 1, ExitCode: &code}}}); err != nil {
		t.Fatal(err)
	}
	before := export(t, f)
	code = 5
	if after := export(t, f); !bytes.Equal(before, after) {
		t.Fatalf("state shares the exit code with the RecordOutcomes command:\n%s", after)
	}
}

func TestApplyReplicas(t *testing.T) {
	f := fsm.New()
	replicas := func() map[string]string {
		m := map[string]string{}
		f.Read(func(s *fsm.State) {
			for k, v := range s.Replicas {
				m[k] = v
			}
		})
		return m
	}
	mustApply(t, f, &fsm.SetReplica{ID: "s1", HTTP: "h:1"}, &fsm.SetReplica{ID: "s2", HTTP: "h:2"}, &fsm.SetReplica{ID: "s1", HTTP: "h:11"})
	if got, want := replicas(), map[string]string{"s1": "h:11", "s2": "h:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replicas = %v, want %v", got, want)
	}
	mustFail(t, f, &fsm.SetReplica{ID: "", HTTP: "h:3"}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.SetReplica{ID: "s3", HTTP: ""}, fsm.ErrInvalid)
	mustApply(t, f, &fsm.RemoveReplica{ID: "s1"})
	if got, want := replicas(), map[string]string{"s2": "h:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replicas = %v, want %v", got, want)
	}
	mustNoop(t, f, &fsm.RemoveReplica{ID: "s9"})
}

func TestApplyLoadState(t *testing.T) {
	src := richFSM(t)
	var loaded *fsm.State
	src.Read(func(s *fsm.State) { loaded = s.Clone() })

	f := fsm.New()
	mustApply(t, f, register(0, "old", "h:0"), submit(0, 500, "old_w"), &fsm.SetReplica{ID: "r1", HTTP: "10.0.0.1:7001"}, &fsm.SetReplica{ID: "r2", HTTP: "10.0.0.2:7001"})
	mustApply(t, f, &fsm.LoadState{State: loaded})

	// Everything comes from the loaded state except the replica addresses.
	want := loaded.Clone()
	want.Replicas = map[string]string{"r1": "10.0.0.1:7001", "r2": "10.0.0.2:7001"}
	wantJSON, _ := want.Marshal()
	if got := export(t, f); !bytes.Equal(got, wantJSON) {
		t.Fatalf("after LoadState:\n%s\nwant:\n%s", got, wantJSON)
	}
	if lastSeq(f) != loaded.LastSeq {
		t.Fatalf("LastSeq %d, want the loaded %d", lastSeq(f), loaded.LastSeq)
	}

	// The loaded state is copied, not shared with the command.
	before := export(t, f)
	loaded.Workloads[w0].Args[0] = "changed"
	loaded.Nodes["n1"].Status = "changed"
	loaded.RecoveryQueue[0].Reason = "changed"
	if after := export(t, f); !bytes.Equal(before, after) {
		t.Fatalf("state shares memory with the LoadState command")
	}

	// Wrong or missing version, or an inconsistent state: refused, nothing changes.
	v2 := fsm.NewState()
	v2.Version = 2
	v0 := fsm.NewState()
	v0.Version = 0
	mustFail(t, f, &fsm.LoadState{State: v2}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.LoadState{State: v0}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.LoadState{}, fsm.ErrInvalid)
	badKey := fsm.NewState()
	badKey.Workloads["a"] = &api.Workload{ID: "b", Command: "c"}
	mustFail(t, f, &fsm.LoadState{State: badKey}, fsm.ErrInvalid)
	badQueue := fsm.NewState()
	badQueue.RecoveryQueue = []fsm.QueueEntry{{WorkloadID: "ghost"}}
	mustFail(t, f, &fsm.LoadState{State: badQueue}, fsm.ErrInvalid)
	noCmd := fsm.NewState()
	noCmd.Workloads["a"] = &api.Workload{ID: "a"}
	mustFail(t, f, &fsm.LoadState{State: noCmd}, fsm.ErrInvalid)

	// An empty state empties everything but the replicas.
	mustApply(t, f, &fsm.LoadState{State: fsm.NewState()})
	var n int
	f.Read(func(s *fsm.State) { n = len(s.Nodes) + len(s.Workloads) + len(s.RecoveryQueue) + len(s.Replicas) })
	if n != 2 {
		t.Fatalf("after loading an empty state: %s", export(t, f))
	}
	// And the FSM works on afterwards.
	mustApply(t, f, submit(50, 1, w0))
}

// A LoadState log entry whose state holds a null node or workload must be
// refused like any other bad state. A panic inside FSM.Apply takes the
// replica down, and because the entry is committed, every replica panics
// again each time it replays the log.
func TestApplyLoadStateNullEntriesAreRefused(t *testing.T) {
	for name, body := range map[string]string{
		"null node":     `{"state":{"version":1,"nodes":{"n1":null}}}`,
		"null workload": `{"state":{"version":1,"workloads":{"w":null}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := fixtureFSM(t)
			before := export(t, f)
			data := append([]byte{byte(fsm.CmdLoadState)}, body...)
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Apply panicked: %v", r)
					}
				}()
				err = applyLog(t, f, data)
			}()
			if !errors.Is(err, fsm.ErrInvalid) {
				t.Fatalf("Apply answered %v, want ErrInvalid", err)
			}
			if after := export(t, f); !bytes.Equal(before, after) {
				t.Fatalf("state changed")
			}
		})
	}
}
