package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A follower killed: the leader raises ReplicaDown (critical: with one of
// three gone, the next loss stops the cluster), shows it in mo_replica_up,
// logs its failing heartbeats once per 10 s instead of twice a second, and
// resolves the alert when the follower is back.
func TestReplicaDownFiresAndResolves(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	l := tc.leader()
	f := tc.followers()[0]
	replicaUp := func() float64 { return tc.scrape(l.http)[`mo_replica_up{replica="`+f.id+`"}`] }
	if up := replicaUp(); up != 1 {
		t.Fatalf("mo_replica_up of %s before the kill: %v", f.id, up)
	}
	if m := tc.scrape(l.http); len(m) == 0 || !hasPrefixKey(m, "mo_build_info{") {
		t.Fatal("no mo_build_info on the leader")
	}
	killed := time.Now()
	f.proc.kill()
	find := func() *api.Alert {
		var list api.AlertList
		if tc.c.getJSON(l.http, "/alerts", &list) != nil {
			return nil
		}
		for _, a := range list.Alerts {
			if a.Name == api.AlertReplicaDown && a.Subject == f.id {
				return &a
			}
		}
		return nil
	}
	waitFor(t, 20*time.Second, "ReplicaDown for "+f.id, func() bool { return find() != nil })
	a := find()
	if a.Severity != api.SeverityCritical || !strings.Contains(a.Summary, "2 of 3 voters in contact") {
		t.Fatalf("alert %+v", a)
	}
	if up := replicaUp(); up != 0 {
		t.Fatalf("mo_replica_up of %s while down: %v", f.id, up)
	}

	// The leader's heartbeats to the dead follower fail about twice a
	// second; the log holds one line per 10 s of them.
	waitFor(t, 10*time.Second, "3 s of failing heartbeats", func() bool { return time.Since(killed) > 3*time.Second })
	b, err := os.ReadFile(l.proc.log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "failed to heartbeat to") && strings.Contains(line, f.raft) {
			n++
		}
	}
	if limit := 1 + int(time.Since(killed)/(10*time.Second)); n == 0 || n > limit {
		t.Fatalf("%d 'failed to heartbeat to' lines for %s in %s, want 1 to %d", n, f.id, time.Since(killed).Round(time.Second), limit)
	}

	tc.startReplica(f)
	waitFor(t, 30*time.Second, "ReplicaDown for "+f.id+" resolved", func() bool { return find() == nil && replicaUp() == 1 })
}

func hasPrefixKey(m map[string]float64, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
