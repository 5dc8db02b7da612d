package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

func TestLeaseRenewOnlyExtendsAndFollowsTerms(t *testing.T) {
	var l lease
	now := time.Now()
	if l.valid(now) {
		t.Fatal("a lease never granted is valid")
	}
	if !l.renew(now.Add(5*time.Second), 3) || !l.valid(now) {
		t.Fatal("a grant of 5 s does not hold")
	}
	if l.renew(now.Add(4*time.Second), 3) {
		t.Fatal("a shorter grant shortened the lease")
	}
	if l.renew(now.Add(9*time.Second), 2) {
		t.Fatal("a grant from an older term was taken")
	}
	if !l.renew(now.Add(6*time.Second), 4) || !l.expiry().Equal(now.Add(6*time.Second)) {
		t.Fatal("a grant from a newer term was not taken")
	}
	if l.valid(now.Add(6*time.Second - leaseKillWindow)) {
		t.Fatal("a lease is valid within its kill window")
	}
}

// The lease runs from the moment the acknowledged heartbeat was sent, not
// from the moment the answer came back; answers for unknown rounds or older
// terms renew nothing.
func TestHeartbeatAckRenewsFromSendTime(t *testing.T) {
	var l lease
	var fenceTerm atomic.Uint64
	fenceTerm.Store(5)
	var answer atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/nodes/n1/heartbeat" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request "+r.URL.Path, http.StatusBadRequest)
			return
		}
		var hb api.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		ack := answer.Load().(func(api.Heartbeat) api.HeartbeatAck)(hb)
		_ = json.NewEncoder(w).Encode(ack)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	h := newHeartbeater("n1", []string{addr}, api.NewHTTPClient("tok", time.Second), time.Second, &l, fenceTerm.Load, hclog.NewNullLogger())

	beat := func(ack func(api.Heartbeat) api.HeartbeatAck) time.Time {
		answer.Store(ack)
		h.mu.Lock()
		h.seq++
		sent := time.Now()
		h.sent[h.seq] = sent
		hb := api.Heartbeat{NodeID: "n1", Seq: h.seq, Term: fenceTerm.Load()}
		h.mu.Unlock()
		if err := h.send(context.Background(), addr, hb); err != nil {
			t.Fatal(err)
		}
		return sent
	}
	sent := beat(func(hb api.Heartbeat) api.HeartbeatAck {
		time.Sleep(50 * time.Millisecond) // a slow answer does not lengthen the lease
		return api.HeartbeatAck{IsLeader: true, Term: 5, AckSeq: hb.Seq, LeaseMillis: 3000, Replicas: []string{"127.0.0.1:9"}}
	})
	if got := l.expiry(); !got.Equal(sent.Add(3 * time.Second)) {
		t.Fatalf("lease until %v, want the send time plus 3 s (%v)", got, sent.Add(3*time.Second))
	}
	h.mu.Lock()
	learned := len(h.addrs) == 2
	h.mu.Unlock()
	if !learned {
		t.Fatal("the replica named in the answer was not learned")
	}
	before := l.expiry()
	beat(func(hb api.Heartbeat) api.HeartbeatAck {
		return api.HeartbeatAck{Term: 4, AckSeq: hb.Seq, LeaseMillis: 3000} // older than the term obeyed
	})
	beat(func(hb api.Heartbeat) api.HeartbeatAck {
		return api.HeartbeatAck{Term: 5, AckSeq: hb.Seq + 1000, LeaseMillis: 3000} // a round never sent
	})
	beat(func(hb api.Heartbeat) api.HeartbeatAck {
		return api.HeartbeatAck{Term: 5, AckSeq: 0, LeaseMillis: 3000} // nothing acknowledged yet
	})
	if !l.expiry().Equal(before) {
		t.Fatal("an acknowledgement that grants nothing renewed the lease")
	}
	// A follower passes on the leader's acknowledgement of an earlier round.
	earlier := sent
	h.mu.Lock()
	firstSeq := uint64(1)
	h.mu.Unlock()
	beat(func(hb api.Heartbeat) api.HeartbeatAck {
		return api.HeartbeatAck{Term: 5, AckSeq: firstSeq, LeaseMillis: 4000}
	})
	if got := l.expiry(); !got.Equal(earlier.Add(4 * time.Second)) {
		t.Fatalf("lease until %v after a relayed acknowledgement of round 1, want %v", got, earlier.Add(4*time.Second))
	}
}

// The guard kills the groups of exclusive instances when the lease lapses,
// with nothing from the agent (as when it is paused), and leaves the others.
func TestGuardKillsExclusiveGroupsWhenTheLeaseLapses(t *testing.T) {
	g := startTestGuard(t)
	excl := startGroup(t, "sleep 600 & sleep 600")
	plain := startGroup(t, "sleep 600 & sleep 600")
	e, p := excl.Process.Pid, plain.Process.Pid
	waitFor(t, 5*time.Second, "both groups to form", func() bool {
		return len(groupMembers(e)) >= 3 && len(groupMembers(p)) >= 3
	})
	g.add(e)
	g.addExclusive(e, "MO_INSTANCE=test:none:1")
	g.add(p)
	lapse := time.Now().Add(300 * time.Millisecond)
	g.setLease(lapse)
	waitFor(t, 5*time.Second, "the exclusive group killed", func() bool { return !running(e) || excl.ProcessState != nil })
	_ = excl.Wait()
	if !reapGroup(e, 5*time.Second) {
		t.Fatalf("exclusive group %d survived its lease: %v", e, groupMembers(e))
	}
	if time.Now().Before(lapse) {
		t.Fatal("the exclusive group was killed before its lease lapsed")
	}
	if n := len(groupMembers(p)); n < 3 {
		t.Fatalf("a group without exclusive instances was touched: %d members left", n)
	}
}

// An exclusive workload starts only under a lease, and is stopped (and not
// started again) when the lease lapses; other workloads are left alone.
func TestExclusiveInstancesLiveUnderTheLease(t *testing.T) {
	ta := newTestAgent(t)
	excl := sh("solo", "sleep 600", 1, 1)
	excl.Exclusive = true
	if code, _ := ta.start(excl); code != http.StatusServiceUnavailable {
		t.Fatalf("an exclusive start without a lease answered %d, want 503", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ta.agent.sup.enforceLease(ctx, ta.agent.lease)
	ta.agent.lease.renew(time.Now().Add(leaseKillWindow+1500*time.Millisecond), 1)
	excl.Generation = 2
	resp := ta.mustStart(excl)
	plain := ta.mustStart(sh("plain", "sleep 600", 1, 1))
	if w, _ := ta.instance("solo"); !w.Exclusive {
		t.Fatal("the instance does not show exclusive")
	}
	w := ta.waitState("solo", api.InstanceStopped)
	if running(resp.PID) {
		t.Fatalf("the exclusive instance's process %d outlived the lease", resp.PID)
	}
	if !strings.Contains(w.Error, "lease") {
		t.Fatalf("the stopped instance says %q, want the lease named", w.Error)
	}
	if !running(plain.PID) {
		t.Fatal("a workload that is not exclusive was stopped with the lease")
	}
	ta.agent.lease.renew(time.Now().Add(time.Minute), 1)
	time.Sleep(3 * leaseCheckEvery)
	if w, _ := ta.instance("solo"); w.State != api.InstanceStopped {
		t.Fatalf("the exclusive instance is %s after the lease came back, want it left stopped", w.State)
	}
}
