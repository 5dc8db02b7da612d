package recovery

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// A pass after a submission looks only at what it added, and a full pass
// with nowhere to place and nothing new to say writes nothing; once a node
// can take work, a full pass places every workload that waited.
func TestPassesLookAtWhatChanged(t *testing.T) {
	st, f := setup(t, 0, 3)
	var mu sync.Mutex
	var told []int // the size of each SetWaitReasons written
	st.onApply = func(c fsm.Command) {
		if w, ok := c.(*fsm.SetWaitReasons); ok {
			mu.Lock()
			told = append(told, len(w.Reasons))
			mu.Unlock()
		}
	}
	writes := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), told...)
	}
	h := healthy{}
	e := newEngine(st, h, &agents{})
	ctx := context.Background()
	e.pass(ctx, true, false)
	if got := writes(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("first full pass wrote reasons %v, want one write of 3", got)
	}
	must(t, f.ApplyCommand(&fsm.SubmitWorkloads{At: t0, Seq: 5, Workloads: []api.Workload{
		{ID: "w3", Name: "w", Command: "sleep"}, {ID: "w4", Name: "w", Command: "sleep"}}}))
	e.pass(ctx, false, true)
	if got := writes(); len(got) != 2 || got[1] != 2 {
		t.Fatalf("the pass after a submission wrote reasons %v, want a second write of 2", got)
	}
	e.pass(ctx, true, false)
	if got := writes(); len(got) != 2 {
		t.Fatalf("a full pass with nothing new wrote reasons again: %v", got)
	}
	for i := 0; i < 5; i++ {
		if w := workload(f, fmt.Sprintf("w%d", i)); w.Reason != "no node is online" {
			t.Fatalf("w%d waits with reason %q", i, w.Reason)
		}
	}
	must(t, f.ApplyCommand(&fsm.RegisterNode{At: t0, ID: "n1", Address: "n1:80"}))
	h["n1"] = 10
	e.pass(ctx, true, false)
	for i := 0; i < 5; i++ {
		if w := workload(f, fmt.Sprintf("w%d", i)); w.State != api.StateRunning || w.Node != "n1" {
			t.Fatalf("w%d after a node came up: %+v", i, w)
		}
	}
	f.Read(func(s *fsm.State) {
		if ids := s.PendingIDs(); len(ids) != 0 {
			t.Fatalf("pending index still holds %v", ids)
		}
	})
}
