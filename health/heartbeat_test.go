package health

import (
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A node whose heartbeats stop is checked SuspectAfter after the last one,
// without waiting for the next round, and only once per silence.
func TestSilentNodeIsCheckedAtOnce(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, nil)
	h.run()
	h.waitChecked(h.round(0), "n1", "n2")
	if !h.m.NoteHeartbeat("n1", h.clock.Now(), "", 1) {
		t.Fatal("a heartbeat of a known node was refused")
	}
	if h.m.NoteHeartbeat("nope", h.clock.Now(), "", 1) {
		t.Fatal("a heartbeat of an unknown node was taken")
	}
	for step := watchEvery; step <= h.cfg.SuspectAfter; step += watchEvery {
		h.clock.AdvanceTo(h.at(step))
	}
	if n := len(h.checker.callTimes("n1")); n != 1 {
		t.Fatalf("n1 checked %d times before SuspectAfter", n)
	}
	h.clock.AdvanceTo(h.at(h.cfg.SuspectAfter + watchEvery))
	eventually(t, "n1 checked after its heartbeats stopped", func() bool { return len(h.checker.callTimes("n1")) == 2 })
	h.clock.AdvanceTo(h.at(h.cfg.SuspectAfter + 5*watchEvery))
	if n := len(h.checker.callTimes("n1")); n != 2 {
		t.Fatalf("n1 checked %d times in one silence, want 2", n)
	}
	if n := len(h.checker.callTimes("n2")); n != 1 {
		t.Fatalf("n2 (no heartbeats) checked %d times before the round", n)
	}
}

// A node that fails its checks while its heartbeats still arrive (relayed by
// another replica) stays degraded; once they stop it goes offline.
func TestHeardNodeStaysDegraded(t *testing.T) {
	h := newHarness(t, []string{"n1"}, nil)
	h.store.runWorkload(t, "w1", "n1")
	h.checker.setDown("n1", true)
	h.m.NoteHeartbeat("n1", h.clock.Now(), "s2", 1) // not yet running: ignored
	h.run()
	h.waitChecked(h.round(0), "n1")
	h.m.NoteHeartbeat("n1", h.clock.Now(), "s2", 1)
	h.waitStatus("n1", api.NodeDegraded)
	h.clock.AdvanceTo(h.at(h.cfg.ConfirmDelay))
	eventually(t, "the confirm check", func() bool { return len(h.checker.callTimes("n1")) >= 2 })
	h.settle()
	nh, _ := h.m.NodeHealth("n1")
	if nh.Status != api.NodeDegraded || !nh.HeldAlive || nh.HeardVia != "s2" {
		t.Fatalf("a node heard through s2 that fails its checks: %+v, want degraded and held alive", nh)
	}
	if st := h.store.workloadState("w1"); st != api.StateRunning {
		t.Fatalf("its workload is %s, want running (not evicted)", st)
	}
	// No more heartbeats: offline once AliveWindow has passed.
	for at := h.cfg.ConfirmDelay; at <= h.cfg.AliveWindow+2*h.cfg.ConfirmDelay; at += 50 * time.Millisecond {
		h.clock.AdvanceTo(h.at(at))
		time.Sleep(time.Millisecond)
	}
	h.waitStatus("n1", api.NodeOffline)
	if st := h.store.workloadState("w1"); st != api.StateFailed {
		t.Fatalf("its workload is %s once the node is offline, want failed (evicted)", st)
	}
}
