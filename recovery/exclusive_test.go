package recovery

import (
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// heard is a health view in which every node is online and was last heard at a given time.
type heard map[string]time.Time

func (h heard) NodeView(id string) (NodeView, bool) {
	at, ok := h[id]
	return NodeView{Status: api.NodeOnline, Checked: true, LastHeard: at, LastSeq: 7, SeqHeard: at}, ok
}

// An exclusive workload waits for its last node's lease to lapse (from the
// later of its last heartbeat and the start of this leadership), unless that
// node is gone, reports the generation ended, or reports no instance from a
// check that began once the start could no longer land.
func TestExclusiveWaitsForTheLease(t *testing.T) {
	now := time.Now()
	lease := 7 * time.Second
	view := heard{"n1": now.Add(-2 * time.Second)}
	e := New(Config{Lease: lease}, nil, view, nil)
	e.started = now.Add(-time.Minute)
	st := &fsm.State{Nodes: map[string]*api.Node{"n1": {ID: "n1"}}}
	w := &api.Workload{ID: "w1", Exclusive: true, Node: "n1", Generation: 3, UpdatedAt: now.Add(-time.Second)}

	wait, until := e.exclusiveWait(st, w, nil, now)
	want := now.Add(-2*time.Second + lease + leaseMargin(lease))
	if !wait || !until.Equal(want) {
		t.Fatalf("wait=%v until %v, want to wait until %v", wait, until, want)
	}
	if wait, _ := e.exclusiveWait(st, w, nil, want); wait {
		t.Fatal("still waiting once the lease has surely lapsed")
	}
	// A longer lease reported by the agents counts.
	e.cfg.ReportedLease = func() time.Duration { return 20 * time.Second }
	if _, until := e.exclusiveWait(st, w, nil, now); !until.Equal(now.Add(-2*time.Second + 20*time.Second + leaseMargin(20*time.Second))) {
		t.Fatalf("with a 20 s lease reported, waits until %v", until)
	}
	e.cfg.ReportedLease = nil
	// A leader that started after the last heartbeat counts from its start.
	e.started = now.Add(-time.Second)
	if _, until := e.exclusiveWait(st, w, nil, now); !until.Equal(e.started.Add(lease + leaseMargin(lease))) {
		t.Fatalf("a new leader waits until %v, want from its start", until)
	}
	report := func(at time.Time, ws ...api.AgentWorkload) map[string]observation {
		return map[string]observation{"n1": {at: at, status: api.AgentStatus{NodeID: "n1", Workloads: ws}}}
	}
	cases := []struct {
		name string
		obs  map[string]observation
		wait bool
	}{
		{"still running there", report(now, api.AgentWorkload{ID: "w1", Generation: 3, State: api.InstanceRunning}), true},
		{"restarting in place there", report(now, api.AgentWorkload{ID: "w1", Generation: 3, State: api.InstanceRestarting}), true},
		{"generation ended there", report(now, api.AgentWorkload{ID: "w1", Generation: 3, State: api.InstanceExited}), false},
		{"its start refused there", report(now, api.AgentWorkload{ID: "w1", Generation: 3, State: api.InstanceFailed}), false},
		{"an older generation ended there", report(now, api.AgentWorkload{ID: "w1", Generation: 2, State: api.InstanceExited}), true},
		{"absent, but this leader did not send the start", report(now.Add(time.Minute)), true},
	}
	for _, c := range cases {
		if wait, _ := e.exclusiveWait(st, w, c.obs, now); wait != c.wait {
			t.Errorf("%s: wait=%v, want %v", c.name, wait, c.wait)
		}
	}
	// This leader sent the start of generation 3 after hearing the node at
	// heardAt: a report from a check begun after the start window is proof.
	heardAt := now.Add(-10 * time.Second)
	e.noteStart("w1", 3, heardAt)
	after := heardAt.Add(api.ExclusiveStartWindow + e.cfg.MissingGrace)
	for _, c := range []struct {
		name string
		obs  map[string]observation
		wait bool
	}{
		{"absent from a report after the window", report(after.Add(time.Millisecond)), false},
		{"absent from a report within the window", report(after.Add(-time.Millisecond)), true},
		{"an older generation still running", report(after.Add(time.Second), api.AgentWorkload{ID: "w1", Generation: 2, State: api.InstanceRunning}), true},
		{"restarting after the window", report(after.Add(time.Second), api.AgentWorkload{ID: "w1", Generation: 3, State: api.InstanceRestarting}), true},
	} {
		if wait, _ := e.exclusiveWait(st, w, c.obs, now); wait != c.wait {
			t.Errorf("%s: wait=%v, want %v", c.name, wait, c.wait)
		}
	}
	if wait, _ := e.exclusiveWait(&fsm.State{Nodes: map[string]*api.Node{}}, w, nil, now); wait {
		t.Error("waiting for a node that is gone")
	}
	plain := *w
	plain.Exclusive = false
	if wait, _ := e.exclusiveWait(st, &plain, nil, now); wait {
		t.Error("a workload that is not exclusive waits")
	}
}
