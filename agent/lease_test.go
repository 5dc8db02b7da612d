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
	now := boottime()
	if l.valid(now) {
		t.Fatal("a lease never granted is valid")
	}
	if !l.renew(now+5*time.Second, 3) || !l.valid(now) {
		t.Fatal("a grant of 5 s does not hold")
	}
	if l.renew(now+4*time.Second, 3) {
		t.Fatal("a shorter grant shortened the lease")
	}
	if l.renew(now+9*time.Second, 2) {
		t.Fatal("a grant from an older term was taken")
	}
	if !l.renew(now+6*time.Second, 4) || l.expiry() != now+6*time.Second {
		t.Fatal("a grant from a newer term was not taken")
	}
	if l.valid(now + 6*time.Second - leaseKillWindow) {
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
	h := newHeartbeater("n1", []string{addr}, api.NewHTTPClient("tok", time.Second, nil), time.Second, &l, fenceTerm.Load, hclog.NewNullLogger())

	beat := func(ack func(api.Heartbeat) api.HeartbeatAck) time.Duration {
		answer.Store(ack)
		h.mu.Lock()
		h.seq++
		sent := boottime()
		l.recordSent(h.seq, sent)
		hb := api.Heartbeat{NodeID: "n1", Seq: h.seq, Term: fenceTerm.Load()}
		h.mu.Unlock()
		if err := h.send(context.Background(), addr, hb); err != nil {
			t.Fatal(err)
		}
		return sent
	}
	var firstSeq uint64
	sent := beat(func(hb api.Heartbeat) api.HeartbeatAck {
		firstSeq = hb.Seq
		time.Sleep(50 * time.Millisecond) // a slow answer does not lengthen the lease
		return api.HeartbeatAck{IsLeader: true, Term: 5, AckSeq: hb.Seq, LeaseMillis: 3000, Replicas: []string{"127.0.0.1:9"}}
	})
	if got := l.expiry(); got != sent+3*time.Second {
		t.Fatalf("lease until %v, want the send time plus 3 s (%v)", got, sent+3*time.Second)
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
	if l.expiry() != before {
		t.Fatal("an acknowledgement that grants nothing renewed the lease")
	}
	// A follower passes on the leader's acknowledgement of an earlier round.
	earlier := sent
	beat(func(hb api.Heartbeat) api.HeartbeatAck {
		return api.HeartbeatAck{Term: 5, AckSeq: firstSeq, LeaseMillis: 4000}
	})
	if got := l.expiry(); got != earlier+4*time.Second {
		t.Fatalf("lease until %v after a relayed acknowledgement of the first round, want %v", got, earlier+4*time.Second)
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
	g.announceExclusive("MO_INSTANCE=test:none:1")
	g.add(e)
	g.addExclusive(e, "MO_INSTANCE=test:none:1")
	g.add(p)
	lapse := time.Now().Add(300 * time.Millisecond)
	g.setLease(boottime() + 300*time.Millisecond)
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
	renewNow := func(d time.Duration) {
		now := boottime()
		ta.agent.lease.recordSent(7, now)
		ta.agent.lease.renew(now+d, 1)
	}
	renewNow(leaseKillWindow + 1500*time.Millisecond)
	excl.Generation = 2
	excl.HeartbeatSeq = 7
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
	renewNow(time.Minute)
	time.Sleep(3 * leaseCheckEvery)
	if w, _ := ta.instance("solo"); w.State != api.InstanceStopped {
		t.Fatalf("the exclusive instance is %s after the lease came back, want it left stopped", w.State)
	}
}

// An exclusive start is refused (503), and recorded as that generation's
// failed instance so the leader sees it never ran, when it comes from an
// older leader than the lease's, names a heartbeat the agent never sent, or
// comes too long after the heartbeat it names.
func TestExclusiveStartRefusals(t *testing.T) {
	ta := newTestAgent(t)
	now := boottime()
	ta.agent.lease.recordSent(10, now-api.ExclusiveStartWindow-time.Second)
	ta.agent.lease.recordSent(11, now)
	ta.agent.lease.renew(now+time.Minute, 5)
	cases := []struct {
		name      string
		term, seq uint64
	}{
		{"a leader older than the lease's", 4, 11},
		{"a heartbeat never sent", 5, 99},
		{"a start long after its heartbeat", 5, 10},
	}
	for i, c := range cases {
		req := sh("solo", "sleep 600", uint64(i+1), c.term)
		req.Exclusive, req.HeartbeatSeq = true, c.seq
		if code, _ := ta.start(req); code != http.StatusServiceUnavailable {
			t.Fatalf("%s: answered %d, want 503", c.name, code)
		}
		if w, ok := ta.instance("solo"); !ok || w.State != api.InstanceFailed || w.Generation != uint64(i+1) {
			t.Fatalf("%s: the refusal was not recorded as a failed instance of generation %d: %+v", c.name, i+1, w)
		}
	}
	ok := sh("solo", "sleep 600", 9, 5)
	ok.Exclusive, ok.HeartbeatSeq = true, 11
	if resp := ta.mustStart(ok); !running(resp.PID) {
		t.Fatal("a fresh exclusive start from the lease's leader did not run")
	}
}
