package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// submitSleepers submits n sleep workloads and waits until they all run.
func (tc *testCluster) submitSleepers(n int) []string {
	tc.t.Helper()
	var ids []string
	waitFor(tc.t, 20*time.Second, "a submission", func() bool {
		var err error
		ids, err = tc.submit(tc.leader().http, api.SubmitRequest{Name: "sleeper", Command: "sleep", Args: []string{"600"}, Count: intp(n)})
		return err == nil
	})
	waitFor(tc.t, 30*time.Second, "every workload running", func() bool { return allRunning(tc.workloads(), ids) })
	return ids
}

// nodesOf returns the node of each listed workload.
func nodesOf(ws []api.Workload, ids []string) map[string]string {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]string{}
	for _, w := range ws {
		if want[w.ID] {
			out[w.ID] = w.Node
		}
	}
	return out
}

// kill -9 of an agent: a follower's health shows it offline, and its
// workloads run on the other two with live pids, spread over both.
func TestAgentKillRecovers(t *testing.T) {
	tc := startFullCluster(t)
	ids := tc.submitSleepers(6)
	victim := tc.agents[0]
	var moved []string
	for id, n := range nodesOf(tc.workloads(), ids) {
		if n == victim.id {
			moved = append(moved, id)
		}
	}
	victim.proc.kill()
	killed := time.Now()
	f := tc.followers()[0]
	waitFor(t, 10*time.Second, "the follower's health to show the agent offline", func() bool {
		out, _, code := tc.cli("health", "--addr", f.http)
		return code == 0 && strings.Contains(out, victim.listen) && strings.Contains(out, "Offline Nodes: 1")
	})
	detected := time.Since(killed)
	waitFor(t, 15*time.Second, "the workloads running elsewhere", func() bool { return tc.runningAway(ids, victim.id) })
	t.Logf("detected offline after %s, recovered after %s", detected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	to := map[string]int{}
	for _, id := range moved {
		to[nodesOf(tc.workloads(), ids)[id]]++
	}
	if len(moved) >= 2 && len(to) != 2 {
		t.Fatalf("the %d moved workloads piled onto %v instead of spreading", len(moved), to)
	}
	out, _, _ := tc.cli("recovery", "--addr", f.http)
	if !strings.Contains(out, "=== Recovery Metrics ===") || !strings.Contains(out, "succeeded") {
		t.Fatalf("recovery output:\n%s", out)
	}
	out, _, code := tc.cli("check", "--addr", f.http)
	if code != 0 || !strings.Contains(out, "✓ Health check completed") || !strings.Contains(out, "Online Nodes: 2") || !strings.Contains(out, "Offline Nodes: 1") {
		t.Fatalf("check output (exit %d):\n%s", code, out)
	}
	var sum api.HealthSummary
	if out, _, _ := tc.cli("health", "--addr", f.http, "--json"); jsonUnmarshal([]byte(out), &sum) != nil || sum.TotalNodes != 3 || sum.OfflineNodes != 1 {
		t.Fatalf("health --json:\n%s", out)
	}
}

// Two agents killed at once: everything runs on the survivor.
func TestTwoAgentsKilled(t *testing.T) {
	tc := startFullCluster(t)
	ids := tc.submitSleepers(6)
	tc.agents[0].proc.kill()
	tc.agents[1].proc.kill()
	waitFor(t, 20*time.Second, "everything on the survivor", func() bool { return tc.runningOn(ids, tc.agents[2].id) })
}

// An agent stopped with SIGSTOP until offline, its workloads moved, then
// SIGCONT: it comes back online, and within one health interval exactly one
// instance of each workload runs across all agents. A 1 s stop, shorter than
// the failure window, never marks a node offline.
func TestPausedAgentComesBackWithoutDuplicates(t *testing.T) {
	tc := startFullCluster(t)
	ids := tc.submitSleepers(6)

	// A short pause is absorbed.
	short := tc.agents[1]
	syscall.Kill(short.proc.pid(), syscall.SIGSTOP)
	pausedAt := time.Now()
	sawOffline := false
	for time.Since(pausedAt) < 4*time.Second {
		if time.Since(pausedAt) >= time.Second {
			syscall.Kill(short.proc.pid(), syscall.SIGCONT)
		}
		if tc.countNodes(api.NodeOffline) > 0 {
			sawOffline = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(short.proc.pid(), syscall.SIGCONT)
	if sawOffline {
		t.Fatal("a 1 s pause marked a node offline")
	}

	victim := tc.agents[0]
	syscall.Kill(victim.proc.pid(), syscall.SIGSTOP)
	defer syscall.Kill(victim.proc.pid(), syscall.SIGCONT)
	waitFor(t, 15*time.Second, "the paused agent offline", func() bool { return tc.countNodes(api.NodeOffline) == 1 })
	waitFor(t, 15*time.Second, "its workloads moved", func() bool { return tc.runningAway(ids, victim.id) })
	syscall.Kill(victim.proc.pid(), syscall.SIGCONT)
	resumed := time.Now()
	waitFor(t, 10*time.Second, "exactly one instance of each workload", func() bool {
		inst := tc.runningInstances()
		for _, id := range ids {
			if inst[id] != 1 {
				return false
			}
		}
		return len(inst) == len(ids)
	})
	t.Logf("strays stopped %s after SIGCONT", time.Since(resumed).Round(time.Millisecond))
	if d := time.Since(resumed); d > 3*time.Second+time.Second {
		t.Logf("note: took longer than one health interval (%s)", d)
	}
	waitFor(t, 15*time.Second, "the agent online again", func() bool { return tc.countNodes(api.NodeOnline) == 3 })
	// Workloads are not moved back.
	for _, n := range nodesOf(tc.workloads(), ids) {
		if n == victim.id {
			t.Fatal("a workload moved back to the node that recovered")
		}
	}
}

// The leader and an agent killed together: the new leader marks the agent
// offline and recovers its workloads.
func TestLeaderAndAgentKilledTogether(t *testing.T) {
	tc := startFullCluster(t)
	ids := tc.submitSleepers(6)
	l := tc.leader()
	victim := tc.agents[2]
	l.proc.kill()
	victim.proc.kill()
	killed := time.Now()
	waitFor(t, 20*time.Second, "the new leader to mark the agent offline", func() bool { return tc.countNodes(api.NodeOffline) == 1 })
	detected := time.Since(killed)
	waitFor(t, 20*time.Second, "the workloads running elsewhere", func() bool { return tc.runningAway(ids, victim.id) })
	t.Logf("offline after %s, recovered after %s", detected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// A workload whose command exits at once: 3 attempts, then
// permanently_failed, visible in the recovery metrics; no endless loop.
func TestCrashingWorkloadGivesUp(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(1)
	tc.startAgents(2)
	ids, err := tc.submit(tc.replicas[0].http, api.SubmitRequest{Name: "crasher", Command: "sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	var w api.Workload
	waitFor(t, 45*time.Second, "permanently_failed", func() bool {
		return tc.c.getJSON(tc.replicas[0].http, "/workloads/"+ids[0], &w) == nil && w.State == api.StatePermanentlyFailed
	})
	if w.Attempts != 3 || !strings.Contains(w.Reason, "code 3") {
		t.Fatalf("attempts %d reason %q", w.Attempts, w.Reason)
	}
	var m api.RecoveryMetrics
	if err := tc.c.getJSON(tc.replicas[0].http, "/recovery/metrics", &m); err != nil {
		t.Fatal(err)
	}
	if len(m.PermanentlyFailed) != 1 || m.PermanentlyFailed[0] != ids[0] || len(m.FailedWorkloads) != 1 {
		t.Fatalf("metrics: %+v", m)
	}
	gen := w.Generation
	time.Sleep(0) // the state must now stay put: poll a few rounds
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		var x api.Workload
		if tc.c.getJSON(tc.replicas[0].http, "/workloads/"+ids[0], &x) == nil && (x.Generation != gen || x.State != api.StatePermanentlyFailed) {
			t.Fatalf("a permanently failed workload was restarted: %+v", x)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
