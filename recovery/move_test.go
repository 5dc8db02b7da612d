package recovery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A workload whose instance failed on its node (its restarts in place ran
// out) is placed on another node when there is one.
func TestFailedWorkloadMovesToAnotherNode(t *testing.T) {
	st, f := capacityNodes(t, capacity(4000, 4096), capacity(4000, 4096), capacity(4000, 4096))
	submitSpec(t, f, 0, 1, api.Spec{Restart: &api.RestartPolicy{Attempts: 3}})
	e := New(Config{Term: 7, MaxAttempts: 3}, st, healthy{"n1": 1, "n2": 1, "n3": 1}, &agents{})
	e.started = time.Now().Add(-time.Hour)
	e.pass(context.Background(), true, false)
	for attempt := 1; attempt <= 2; attempt++ {
		w := workload(f, "w0")
		if w.State != api.StateRunning || w.Node == "" {
			t.Fatalf("not running: %+v", w)
		}
		code := 1
		e.mu.Lock()
		e.observed[w.Node] = observation{status: api.AgentStatus{NodeID: w.Node, Workloads: []api.AgentWorkload{{
			ID: "w0", Generation: w.Generation, State: api.InstanceFailed, ExitCode: &code, Restarts: 3,
			Error: "restarted 3 times; last: exited with code 1", Reason: "restarted 3 times; last: exited with code 1",
		}}}, at: w.UpdatedAt.Add(time.Minute)}
		e.dirty[w.Node] = true
		e.mu.Unlock()
		e.pass(context.Background(), true, false)
		after := workload(f, "w0")
		if after.State != api.StateRunning || after.Attempts != attempt || after.Generation != w.Generation+1 {
			t.Fatalf("after failing on %s: %+v, want running again with %d attempts", w.Node, after, attempt)
		}
		if after.Node == w.Node {
			t.Fatalf("placed on %s again right after failing there, want another node", after.Node)
		}
	}
}

// exitReason does not repeat what the agent's error already says.
func TestExitReasonOOMOnce(t *testing.T) {
	code := 137
	got := exitReason(api.AgentWorkload{State: api.InstanceExited, ExitCode: &code, Reason: "OOM killed",
		Error: "OOM killed: the workload reached its memory limit of 64 MB"}, "n2")
	if want := "failed on n2: OOM killed: the workload reached its memory limit of 64 MB"; got != want || strings.Count(got, "OOM killed") != 1 {
		t.Fatalf("exitReason = %q, want %q", got, want)
	}
}
