package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// setCPU writes the CPU percent an agent started with --cpu-file reports.
func setCPU(t *testing.T, file string, pct string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(pct+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// No node fits (the others offline or over the CPU limit): the workload waits
// in the recovery queue, nothing crashes, the whole cluster can restart
// meanwhile with the queue intact, and recovery finishes once a node fits.
func TestQueueWaitsForANodeThatFits(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	cpuFile := filepath.Join(tc.dir, "n1.cpu")
	setCPU(t, cpuFile, "95")
	tc.startAgents(1, "--cpu-file", cpuFile) // n1: over the 80 % limit
	tc.startAgents(1)                        // n2: fits
	ids := tc.submitSleepers(2)
	for id, n := range nodesOf(tc.workloads(), ids) {
		if n != "n2" {
			t.Fatalf("%s placed on %s, which is over the CPU limit", id, n)
		}
	}
	tc.agentByID("n2").proc.kill()
	waitFor(t, 15*time.Second, "both workloads queued", func() bool {
		var m api.RecoveryMetrics
		return tc.c.getJSON(tc.leader().http, "/recovery/metrics", &m) == nil && m.QueueLength == 2 && len(m.FailedWorkloads) == 2
	})
	// They stay queued: n1 does not fit.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range tc.workloads() {
			if w.State != api.StateFailed {
				t.Fatalf("%s is %s while no node fits", w.ID, w.State)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Restart the whole cluster: the queue and the desired state come back.
	for _, r := range tc.replicas {
		if err := r.proc.term(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range tc.replicas {
		tc.startReplica(r)
	}
	tc.waitMembers(3)
	waitFor(t, 20*time.Second, "the queue after the restart", func() bool {
		var m api.RecoveryMetrics
		return tc.c.getJSON(tc.leader().http, "/recovery/metrics", &m) == nil && m.QueueLength == 2
	})

	// A node fits again: recovery finishes.
	setCPU(t, cpuFile, "10")
	waitFor(t, 20*time.Second, "recovery onto n1", func() bool { return tc.runningOn(ids, "n1") })
	var m api.RecoveryMetrics
	if err := tc.c.getJSON(tc.leader().http, "/recovery/metrics", &m); err != nil || m.QueueLength != 0 || m.Succeeded != 2 {
		t.Fatalf("metrics after recovery: %+v %v", m, err)
	}
}
