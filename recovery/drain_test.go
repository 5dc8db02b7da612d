package recovery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// drained places w0..w(count-1) on three nodes, then starts a drain of the
// node that holds w0.
func drained(t *testing.T, count int, deadline time.Duration) (*Engine, *store, *fsm.FSM, *agents, string) {
	t.Helper()
	st, f := setup(t, 3, count)
	a := &agents{}
	e := newEngine(st, healthy{"n1": 5, "n2": 5, "n3": 5}, a)
	e.pass(context.Background(), true, false)
	node := workload(f, "w0").Node
	must(t, f.ApplyCommand(&fsm.SetDrain{At: time.Now().UTC(), ID: node, Enable: true, Deadline: time.Now().UTC().Add(deadline)}))
	return e, st, f, a, node
}

func onNode(f *fsm.FSM, node string) (live int) {
	f.Read(func(s *fsm.State) {
		for _, w := range s.Workloads {
			if w.Node == node && fsm.IsLive(w) {
				live++
			}
		}
	})
	return live
}

func TestDrainMovesStartFirstThenStopsTheOld(t *testing.T) {
	e, _, f, a, node := drained(t, 6, time.Hour)
	oldGen := workload(f, "w0").Generation
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	if w.Node == node || w.MoveFrom == nil || w.MoveFrom.Node != node || w.MoveFrom.Generation != oldGen || w.State != api.StateRunning {
		t.Fatalf("after the first pass w0 = node %s state %s move_from %+v", w.Node, w.State, w.MoveFrom)
	}
	for _, s := range a.stopCalls() {
		if s == node+":80 w0 1" {
			t.Fatalf("old instance stopped before its move finished")
		}
	}
	// The new instance runs (no check): the next pass ends the move and
	// stops the old instance; the one after records the drain done.
	e.pass(context.Background(), true, false)
	waitStops(t, a, node+":80 w0 1")
	if w := workload(f, "w0"); w.MoveFrom != nil {
		t.Fatalf("move not finished: %+v", w.MoveFrom)
	}
	e.pass(context.Background(), true, false)
	var n api.Node
	f.Read(func(s *fsm.State) { n = *s.Nodes[node] })
	if n.Draining || n.Eligible || onNode(f, node) != 0 {
		t.Fatalf("after the drain: draining %v eligible %v live %d", n.Draining, n.Eligible, onNode(f, node))
	}
}

func waitStops(t *testing.T, a *agents, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range a.stopCalls() {
			if s == want {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no stop %q among %v", want, a.stopCalls())
}

func TestDrainedNodeTakesNothingNew(t *testing.T) {
	e, _, f, _, node := drained(t, 3, time.Hour)
	must(t, f.ApplyCommand(&fsm.SubmitWorkloads{At: time.Now().UTC(), Seq: 20, Workloads: []api.Workload{
		{ID: "x1", Name: "x", Command: "sleep"}, {ID: "x2", Name: "x", Command: "sleep"}, {ID: "x3", Name: "x", Command: "sleep"}}}))
	e.pass(context.Background(), true, false)
	for _, id := range []string{"x1", "x2", "x3"} {
		if w := workload(f, id); w.Node == node || w.State != api.StateRunning {
			t.Fatalf("%s on %s (%s), the draining node is %s", id, w.Node, w.State, node)
		}
	}
}

func TestFailedStartOfAMoveKeepsTheOldInstance(t *testing.T) {
	e, _, f, a, node := drained(t, 3, time.Hour)
	a.fail = map[string]error{}
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != node {
			a.fail[n+":80"] = errBoom
		}
	}
	old := workload(f, "w0")
	e.pass(context.Background(), true, false)
	w := workload(f, "w0")
	if w.Node != node || w.Generation != old.Generation || w.State != api.StateRunning || w.MoveFrom != nil || w.Attempts != 0 || w.PID != old.PID {
		t.Fatalf("after a failed move start: %+v", w)
	}
}

func TestExclusiveIsStoppedBeforeItMoves(t *testing.T) {
	st, f := setup(t, 3, 0)
	must(t, f.ApplyCommand(&fsm.SubmitWorkloads{At: t0, Seq: 1, Workloads: []api.Workload{{ID: "x", Name: "x", Command: "sleep", Exclusive: true}}}))
	a := &agents{}
	now := time.Now()
	e := newEngine(st, heard{"n1": now, "n2": now, "n3": now}, a)
	e.pass(context.Background(), true, false)
	node := workload(f, "x").Node
	if node == "" {
		t.Fatalf("exclusive workload not placed: %+v", workload(f, "x"))
	}
	must(t, f.ApplyCommand(&fsm.SetDrain{At: time.Now().UTC(), ID: node, Enable: true, Deadline: time.Now().UTC().Add(time.Hour)}))
	e.cfg.MissingGrace = time.Nanosecond
	e.pass(context.Background(), true, false)
	w := workload(f, "x")
	if w.MoveFrom != nil || w.Node != node {
		t.Fatalf("exclusive on a draining node moved start first: %+v", w)
	}
	waitStops(t, a, node+":80 x 1")
	e.pass(context.Background(), true, false)
	if starts := len(a.starts); starts != 1 {
		t.Fatalf("replacement started before the old instance was seen stopped (%d starts)", starts)
	}
	// Its node reports it stopped: it is queued and starts elsewhere.
	e.Observe(node, api.AgentStatus{NodeID: node, Workloads: []api.AgentWorkload{{ID: "x", Generation: 1, State: api.InstanceStopped}}})
	e.pass(context.Background(), true, false)
	e.pass(context.Background(), true, false)
	if w := workload(f, "x"); w.Node == node || w.State != api.StateRunning || len(a.starts) != 2 {
		t.Fatalf("after its node reported it stopped: %+v (%d starts)", w, len(a.starts))
	}
}

func TestDrainDeadlineMovesTheRest(t *testing.T) {
	st, f := setup(t, 2, 0)
	must(t, f.ApplyCommand(&fsm.SubmitWorkloads{At: t0, Seq: 1, Workloads: []api.Workload{{ID: "b", Name: "b", Command: "sleep", Spec: api.Spec{Type: api.TypeBatch}}}}))
	a := &agents{}
	e := newEngine(st, healthy{"n1": 5, "n2": 5}, a)
	e.pass(context.Background(), true, false)
	node := workload(f, "b").Node
	must(t, f.ApplyCommand(&fsm.SetDrain{At: time.Now().UTC(), ID: node, Enable: true, Deadline: time.Now().UTC().Add(time.Hour)}))
	e.pass(context.Background(), true, false)
	if w := workload(f, "b"); w.Node != node || w.MoveFrom != nil || w.State != api.StateRunning {
		t.Fatalf("a batch workload is left to finish before the deadline: %+v", w)
	}
	must(t, f.ApplyCommand(&fsm.SetDrain{At: time.Now().UTC(), ID: node, Enable: true, Deadline: time.Now().UTC().Add(-time.Second)}))
	e.cfg.MissingGrace = time.Nanosecond
	e.pass(context.Background(), true, false)
	waitStops(t, a, node+":80 b 1")
	e.Observe(node, api.AgentStatus{NodeID: node, Workloads: []api.AgentWorkload{{ID: "b", Generation: 1, State: api.InstanceStopped}}})
	e.pass(context.Background(), true, false)
	e.pass(context.Background(), true, false)
	if w := workload(f, "b"); w.Node == node || w.State != api.StateRunning {
		t.Fatalf("after the deadline the batch workload is not running elsewhere: %+v", w)
	}
}

func TestGivenUpMoveUsesANewGeneration(t *testing.T) {
	e, _, f, a, node := drained(t, 3, time.Hour)
	e.pass(context.Background(), true, false) // w0 moves
	w := workload(f, "w0")
	if w.MoveFrom == nil {
		t.Fatalf("w0 not moving: %+v", w)
	}
	target, gen := w.Node, w.Generation
	// Its new instance exits: the move is given up, the old instance stays.
	e.Observe(target, api.AgentStatus{NodeID: target, Workloads: []api.AgentWorkload{{ID: "w0", Generation: gen, State: api.InstanceExited, ExitCode: new(int)}}})
	e.pass(context.Background(), false, false)
	if w := workload(f, "w0"); w.Node != node || w.MoveFrom != nil || w.State != api.StateRunning {
		t.Fatalf("after the new instance exited: %+v", w)
	}
	// The next move, after the backoff, goes to another node with a
	// generation never used before.
	f.Read(func(s *fsm.State) {
		h := s.Workloads["w0"].History
		h[len(h)-1].At = h[len(h)-1].At.Add(-time.Minute)
	})
	e.pass(context.Background(), true, false)
	w = workload(f, "w0")
	if w.MoveFrom == nil || w.Generation <= gen || w.Node == target {
		t.Fatalf("second move: node %s generation %d (first move: %s %d)", w.Node, w.Generation, target, gen)
	}
	_ = a
}

func TestCancellingNoDrainKeepsEligibility(t *testing.T) {
	_, f := setup(t, 1, 0)
	must(t, f.ApplyCommand(&fsm.SetEligibility{At: t0, ID: "n1", Eligible: false}))
	must(t, f.ApplyCommand(&fsm.SetDrain{At: t0, ID: "n1", Enable: false}))
	var n api.Node
	f.Read(func(s *fsm.State) { n = *s.Nodes["n1"] })
	if n.Eligible {
		t.Fatal("cancelling a drain that was not under way made the node eligible")
	}
}

var errBoom = errors.New("boom")
