package health

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

func wantChanges(t *testing.T, s *fakeStore, want ...string) {
	t.Helper()
	if got := s.changes(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("committed changes = %v, want %v", got, want)
	}
}

// A dead node: degraded at the first failure, re-checked ConfirmDelay later
// (not a whole interval), offline with eviction at the second failure.
func TestConfirmDelayThenOffline(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, nil)
	h.store.runWorkload(t, "w1", "n1")
	h.checker.setDown("n1", true)
	h.run()

	h.waitChecked(h.round(0), "n1", "n2")
	h.waitStatus("n1", api.NodeDegraded)
	nh, _ := h.m.NodeHealth("n1")
	if nh.ConsecutiveFailures != 1 || nh.LastError == "" {
		t.Fatalf("after one failure: %+v", nh)
	}

	confirm := h.at(h.cfg.ConfirmDelay)
	eventually(t, "confirm timer armed", func() bool { return h.clock.hasTimer(confirm) })
	h.clock.Advance(h.cfg.ConfirmDelay - time.Millisecond)
	if n := len(h.checker.callTimes("n1")); n != 1 {
		t.Fatalf("n1 checked %d times before the confirm delay", n)
	}
	h.clock.Advance(time.Millisecond)
	h.waitStatus("n1", api.NodeOffline)

	calls := h.checker.callTimes("n1")
	if len(calls) != 2 || !calls[1].Equal(confirm) {
		t.Fatalf("n1 checks at %v, want the second at start+%v", calls, h.cfg.ConfirmDelay)
	}
	if n := len(h.checker.callTimes("n2")); n != 1 {
		t.Fatalf("the confirm step checked healthy n2 too (%d checks)", n)
	}
	wantChanges(t, h.store, "n1=degraded", "n1=offline+evict")
	if st := h.store.workloadState("w1"); st != api.StateFailed {
		t.Fatalf("workload on the dead node is %s, want failed (evicted)", st)
	}
	nh, _ = h.m.NodeHealth("n1")
	if nh.ConsecutiveFailures != 2 || nh.Status != api.NodeOffline {
		t.Fatalf("after two failures: %+v", nh)
	}
}

// With a threshold of 3, each failure below it is confirmed ConfirmDelay later.
func TestFailureThresholdThree(t *testing.T) {
	h := newHarness(t, []string{"n1"}, func(c *Config) { c.FailureThreshold = 3 })
	h.checker.setDown("n1", true)
	h.run()
	h.waitChecked(h.round(0), "n1")
	h.fireAt(h.at(500 * time.Millisecond))
	h.waitChecked(h.at(500*time.Millisecond), "n1")
	if nh, _ := h.m.NodeHealth("n1"); nh.ConsecutiveFailures != 2 || nh.PendingStatus == api.NodeOffline || nh.Status == api.NodeOffline {
		t.Fatalf("offline before the threshold: %+v", nh)
	}
	h.fireAt(h.at(time.Second))
	h.waitStatus("n1", api.NodeOffline)
	wantChanges(t, h.store, "n1=degraded", "n1=offline+evict")
}

// One failure then a good answer: degraded, then online after one good check.
func TestDegradedByOneFailure(t *testing.T) {
	h := newHarness(t, []string{"n1"}, nil)
	h.checker.setDown("n1", true)
	h.run()
	h.waitStatus("n1", api.NodeDegraded)
	h.checker.setDown("n1", false)
	h.fireAt(h.at(h.cfg.ConfirmDelay))
	h.waitStatus("n1", api.NodeOnline)
	wantChanges(t, h.store, "n1=degraded", "n1=online")
}

// An answer over SlowResponse degrades the node; one good fast answer heals it.
func TestSlowResponseDegrades(t *testing.T) {
	h := newHarness(t, []string{"n1"}, func(c *Config) { c.ConfirmDelay = -1 })
	h.checker.setSlow("n1", time.Second) // exactly the limit: not over it
	h.run()
	h.waitChecked(h.at(time.Second), "n1")
	h.settle()
	wantChanges(t, h.store)

	h.checker.setSlow("n1", 1500*time.Millisecond)
	h.fireAt(h.round(1))
	h.waitStatus("n1", api.NodeDegraded)
	nh, _ := h.m.NodeHealth("n1")
	if nh.ResponseTime != 1500*time.Millisecond || nh.ConsecutiveFailures != 0 || !nh.Answered {
		t.Fatalf("slow answer: %+v", nh)
	}
	h.checker.setSlow("n1", 0)
	h.fireAt(h.round(2))
	h.waitStatus("n1", api.NodeOnline)
	wantChanges(t, h.store, "n1=degraded", "n1=online")
}

// Offline needs RecoveryThreshold good checks in a row; one success then a
// failure keeps it offline.
func TestHysteresis(t *testing.T) {
	h := newHarness(t, []string{"n1"}, nil)
	h.checker.setDown("n1", true)
	h.run()
	h.waitStatus("n1", api.NodeDegraded)
	h.fireAt(h.at(h.cfg.ConfirmDelay))
	h.waitStatus("n1", api.NodeOffline)

	h.checker.setDown("n1", false)
	h.tick(1, "n1") // success 1 of 2
	nh, _ := h.m.NodeHealth("n1")
	if nh.Status != api.NodeOffline || nh.PendingStatus != "" || nh.ConsecutiveSuccesses != 1 {
		t.Fatalf("offline node after one success: %+v", nh)
	}
	h.checker.setDown("n1", true)
	h.tick(2, "n1") // a failure: still offline, and no confirm check for an offline node
	if h.clock.hasTimer(h.round(2).Add(h.cfg.ConfirmDelay)) {
		t.Fatal("a confirm check was scheduled for an offline node")
	}
	h.checker.setDown("n1", false)
	h.tick(3, "n1")
	if nh, _ := h.m.NodeHealth("n1"); nh.Status != api.NodeOffline || nh.PendingStatus != "" {
		t.Fatalf("offline node back after one success following a failure: %+v", nh)
	}
	if n := len(h.checker.callTimes("n1")); n != 5 { // rounds 0-3 and one confirm
		t.Fatalf("n1 checked %d times, want 5", n)
	}
	h.tick(4, "n1")
	h.waitStatus("n1", api.NodeOnline)
	wantChanges(t, h.store, "n1=degraded", "n1=offline+evict", "n1=online")
}

// A new leader starts from the replicated statuses: an offline node stays
// offline until RecoveryThreshold good checks, a dead offline node causes no write.
func TestStartsFromReplicatedOffline(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2", "n3"}, nil)
	h.store.mustApply(t, &fsm.SetNodeStatus{At: t0, Changes: []fsm.NodeStatusChange{
		{ID: "n1", Status: api.NodeOffline}, {ID: "n2", Status: api.NodeOffline}}})
	h.checker.setDown("n2", true)
	h.run()
	h.waitChecked(h.round(0), "n1", "n2", "n3")
	for _, id := range []string{"n1", "n2"} {
		if nh, _ := h.m.NodeHealth(id); nh.Status != api.NodeOffline || nh.PendingStatus != "" {
			t.Fatalf("%s after the first check: %+v", id, nh)
		}
	}
	h.tick(1, "n1", "n2", "n3")
	h.waitStatus("n1", api.NodeOnline)
	h.settle()
	wantChanges(t, h.store, "n1=online")
	if st := h.store.status("n2"); st != api.NodeOffline {
		t.Fatalf("n2 = %s", st)
	}
}

// Stable rounds write nothing.
func TestOnlyChangesWritten(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2", "n3"}, nil)
	h.run()
	h.waitChecked(h.round(0), "n1", "n2", "n3")
	for k := 1; k <= 5; k++ {
		h.tick(k, "n1", "n2", "n3")
	}
	h.settle()
	if n := h.store.attempts(); n != 0 {
		t.Fatalf("%d SetNodeStatus calls over stable rounds, want 0", n)
	}
	if n := len(h.checker.callTimes("n1")); n != 7 {
		t.Fatalf("n1 checked %d times, want 7 (6 rounds and a forced one)", n)
	}
}

// Leadership loss: Run returns promptly, cancelling a check in flight, and
// nothing is checked or written after it; a new Run starts afresh.
func TestLeadershipLoss(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, nil)
	release := h.checker.setHang("n2")
	defer release()
	h.run()
	h.waitChecked(h.round(0), "n1")
	eventually(t, "n2 check in flight", func() bool { return len(h.checker.callTimes("n2")) == 1 })
	h.checker.setDown("n1", true)
	h.tick(1, "n1") // n2 still in flight: one overlapping check, no more
	if n := len(h.checker.callTimes("n2")); n != 2 {
		t.Fatalf("n2 checked %d times while its check was in flight, want 2 (one overlapping check)", n)
	}

	began := time.Now()
	h.stop()
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Run took %v to return", d)
	}
	h.checker.mu.Lock()
	cancelled := h.checker.cancelled
	h.checker.mu.Unlock()
	if cancelled != 2 {
		t.Fatalf("in-flight checks (the hung one and its overlapping check) not cancelled (cancelled=%d, want 2)", cancelled)
	}
	writes, calls := h.store.attempts(), h.checker.totalCalls()
	for i := 0; i < 10; i++ {
		h.clock.Advance(h.cfg.Interval)
	}
	if err := h.m.CheckNow(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("CheckNow after Run = %v, want ErrNotRunning", err)
	}
	if h.store.attempts() != writes || h.checker.totalCalls() != calls {
		t.Fatalf("activity after Run returned: writes %d->%d, checks %d->%d",
			writes, h.store.attempts(), calls, h.checker.totalCalls())
	}

	// Leadership regained: afresh from the store, and checking at once.
	release()
	h.checker.setDown("n1", false)
	h.run()
	h.settle()
	if nh, _ := h.m.NodeHealth("n1"); nh.ConsecutiveFailures != 0 || nh.Status != h.store.status("n1") {
		t.Fatalf("new Run did not start afresh: %+v", nh)
	}
}

// The mass-failure guard: offline without eviction while it refuses, and the
// held evictions go through at a later round once it allows them.
func TestAllowEvict(t *testing.T) {
	var mu sync.Mutex
	allow := false
	var asked [][2]int
	h := newHarness(t, []string{"n1", "n2", "n3", "n4"}, func(c *Config) {
		c.ConfirmDelay = -1
		c.AllowEvict = func(offlineAfter, total int) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, [2]int{offlineAfter, total})
			return allow
		}
	})
	h.store.runWorkload(t, "w1", "n1")
	for _, id := range []string{"n1", "n2", "n3"} {
		h.checker.setDown(id, true)
	}
	h.run()
	h.waitChecked(h.round(0), "n4")
	for _, id := range []string{"n1", "n2", "n3"} {
		h.waitStatus(id, api.NodeDegraded)
	}
	h.tick(1, "n1", "n2", "n3", "n4")
	h.waitStatus("n1", api.NodeOffline)
	wantChanges(t, h.store, "n1=degraded", "n2=degraded", "n3=degraded", "n1=offline", "n2=offline", "n3=offline")
	if st := h.store.workloadState("w1"); st != api.StateRunning {
		t.Fatalf("w1 = %s: evicted although the guard refused", st)
	}
	if nh, _ := h.m.NodeHealth("n1"); !nh.EvictionHeld {
		t.Fatalf("n1 should show a held eviction: %+v", nh)
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != [2]int{3, 4} {
		t.Fatalf("AllowEvict asked %v, want once with (3, 4)", asked)
	}
	allow = true
	mu.Unlock()

	h.tick(2, "n1", "n2", "n3", "n4")
	eventually(t, "held evictions written", func() bool { return len(h.store.committed()) == 3 })
	wantChanges(t, h.store, "n1=degraded", "n2=degraded", "n3=degraded", "n1=offline", "n2=offline", "n3=offline",
		"n1=offline+evict", "n2=offline+evict", "n3=offline+evict")
	if st := h.store.workloadState("w1"); st != api.StateFailed {
		t.Fatalf("w1 = %s after the guard allowed eviction", st)
	}
	h.tick(3, "n1", "n2", "n3", "n4")
	h.settle()
	if n := len(h.store.committed()); n != 3 {
		t.Fatalf("%d writes, want no more after the evictions", n)
	}
}

// A failed write (leadership lost) leaves the replicated status in the view,
// shows the decision as pending, is logged once, and is retried at the next round.
func TestWriteFailureRetried(t *testing.T) {
	logs := &syncBuffer{}
	h := newHarness(t, []string{"n1"}, func(c *Config) {
		c.ConfirmDelay = -1
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	})
	h.store.fail = 2
	h.checker.setDown("n1", true)
	h.run()
	eventually(t, "failed write", func() bool { return h.store.attempts() == 1 })
	eventually(t, "writer done", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return !h.m.writing
	})
	nh, _ := h.m.NodeHealth("n1")
	if nh.Status != api.NodeOnline || nh.PendingStatus != api.NodeDegraded {
		t.Fatalf("after a failed write: %+v", nh)
	}
	h.tick(1, "n1") // offline decided, the write fails again
	eventually(t, "second failed write", func() bool { return h.store.attempts() == 2 })
	h.tick(2, "n1")
	h.waitStatus("n1", api.NodeOffline)
	wantChanges(t, h.store, "n1=offline+evict") // degraded never made it; offline did
	if n := strings.Count(logs.String(), "cannot write node status changes"); n != 1 {
		t.Fatalf("write failure logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "node status writes succeed again") {
		t.Fatalf("recovery not logged:\n%s", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Rounds do not pile up: a node whose check is still running gets one
// overlapping check ConfirmDelay later and nothing more from the next rounds,
// and is checked again at the first round after they return.
func TestNoOverlappingChecks(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, nil)
	release := h.checker.setHang("n1")
	defer release()
	h.run()
	h.waitChecked(h.round(0), "n2")
	for k := 1; k <= 3; k++ {
		h.tick(k, "n2")
	}
	if n := len(h.checker.callTimes("n1")); n != 2 {
		t.Fatalf("n1 checked %d times while its first check was running, want 2 (one overlapping check)", n)
	}
	release()
	h.waitChecked(h.round(3), "n1") // the hung checks end (at the current fake time)
	eventually(t, "both of n1's checks recorded", func() bool {
		nh, _ := h.m.NodeHealth("n1")
		return nh.ConsecutiveSuccesses == 2
	})
	h.tick(4, "n1", "n2")
	if n := len(h.checker.callTimes("n1")); n != 3 {
		t.Fatalf("n1 checked %d times, want 3", n)
	}
}

// Nodes registered later are checked from the next round; removed ones are dropped.
func TestNodesAddedAndRemoved(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, nil)
	h.run()
	h.waitChecked(h.round(0), "n1", "n2")
	h.store.mustApply(t, &fsm.RegisterNode{At: t0, ID: "n3", Address: "10.0.0.3:8080"})
	h.store.mu.Lock()
	h.store.hidden["n2"] = true
	h.store.mu.Unlock()
	h.tick(1, "n1", "n3")
	if _, ok := h.m.NodeHealth("n2"); ok {
		t.Fatal("removed node n2 still in the view")
	}
	snap := h.m.Snapshot()
	if len(snap) != 2 || snap[0].NodeID != "n1" || snap[1].NodeID != "n3" || snap[1].Address != "10.0.0.3:8080" {
		t.Fatalf("snapshot = %+v", snap)
	}
}

// The pool is bounded and every node is checked in each round.
func TestBoundedConcurrency(t *testing.T) {
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = "n" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	h := newHarness(t, ids, func(c *Config) { c.Concurrency = 8 })
	h.run()
	h.waitChecked(h.round(0), ids...)
	h.tick(1, ids...)
	h.checker.mu.Lock()
	maxActive := h.checker.maxActive
	h.checker.mu.Unlock()
	if maxActive > 8 || maxActive < 1 {
		t.Fatalf("max checks in flight = %d, want 1..8", maxActive)
	}
}

// CheckNow runs a full round and returns after its write.
func TestCheckNow(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, func(c *Config) { c.FailureThreshold = 1 })
	if err := h.m.CheckNow(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("CheckNow before Run = %v", err)
	}
	h.run()
	h.waitChecked(h.round(0), "n1", "n2")
	h.checker.setDown("n2", true)
	if err := h.m.CheckNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := h.store.status("n2"); st != api.NodeOffline {
		t.Fatalf("after CheckNow n2 = %s, want offline written before it returned", st)
	}
	if n := len(h.checker.callTimes("n1")); n != 2 {
		t.Fatalf("n1 checked %d times, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.m.CheckNow(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckNow with a cancelled context = %v", err)
	}
}

// An agent answering as another node is a failed check; OnReport sees good answers.
func TestNodeIDMismatchAndOnReport(t *testing.T) {
	var mu sync.Mutex
	reports := map[string]api.AgentStatus{}
	h := newHarness(t, []string{"n1", "n2"}, func(c *Config) {
		c.OnReport = func(id string, st api.AgentStatus) {
			mu.Lock()
			defer mu.Unlock()
			reports[id] = st
		}
	})
	h.checker.answerAs["n2"] = "n9"
	h.run()
	h.waitStatus("n2", api.NodeDegraded)
	mu.Lock()
	defer mu.Unlock()
	if _, ok := reports["n2"]; ok || reports["n1"].CPUUsage != 15.2 {
		t.Fatalf("reports = %+v", reports)
	}
	if nh, _ := h.m.NodeHealth("n2"); nh.LastError == "" || nh.Answered {
		t.Fatalf("n2 = %+v", nh)
	}
}

// OnChange gets the committed changes.
func TestOnChange(t *testing.T) {
	got := make(chan []fsm.NodeStatusChange, 4)
	h := newHarness(t, []string{"n1"}, func(c *Config) {
		c.FailureThreshold = 1
		c.OnChange = func(ch []fsm.NodeStatusChange) { got <- ch }
	})
	h.checker.setDown("n1", true)
	h.run()
	select {
	case ch := <-got:
		if len(ch) != 1 || ch[0] != (fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}) {
			t.Fatalf("OnChange(%v)", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnChange not called")
	}
}

// OnCheck sees every ended check with its duration and error; LastAnswer is
// the end of the last good check.
func TestOnCheckAndLastAnswer(t *testing.T) {
	type seen struct {
		d   time.Duration
		err error
	}
	var mu sync.Mutex
	checks := map[string][]seen{}
	h := newHarness(t, []string{"n1", "n2"}, func(c *Config) {
		c.ConfirmDelay = -1
		c.OnCheck = func(id string, d time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			checks[id] = append(checks[id], seen{d, err})
		}
	})
	h.checker.setSlow("n1", 1500*time.Millisecond)
	h.checker.setDown("n2", true)
	h.run()
	h.waitStatus("n2", api.NodeDegraded)
	eventually(t, "both checks reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(checks["n1"]) == 1 && len(checks["n2"]) == 1
	})
	mu.Lock()
	n1, n2 := checks["n1"][0], checks["n2"][0]
	mu.Unlock()
	if n1.err != nil || n1.d != 1500*time.Millisecond || n2.err == nil {
		t.Fatalf("n1 %+v n2 %+v", n1, n2)
	}
	if nh, _ := h.m.NodeHealth("n1"); nh.LastAnswer.IsZero() || !nh.LastAnswer.Equal(nh.LastCheck) {
		t.Fatalf("n1 = %+v", nh)
	}
	if nh, _ := h.m.NodeHealth("n2"); !nh.LastAnswer.IsZero() {
		t.Fatalf("n2 never answered: %+v", nh)
	}
}
