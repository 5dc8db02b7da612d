package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// Six sleep workloads end up running two per node with live pids; the same
// shows through the CLI pointed at a follower; stop leaves no process of the
// group alive; an echo's output shows through the CLI.
func TestAgentsRunPlacedWorkloads(t *testing.T) {
	tc := startFullCluster(t)
	f := tc.followers()[0]
	out, errOut, code := tc.cli("submit", "--addr", f.http, "--name", "sleepy", "--count", "6", "--", "sleep", "600")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	ids := strings.Fields(out)
	waitFor(t, 20*time.Second, "six running workloads", func() bool { return allRunning(tc.workloads(), ids) })
	perNode := map[string]int{}
	for _, w := range tc.workloads() {
		perNode[w.Node]++
		if err := syscall.Kill(w.PID, 0); err != nil {
			t.Fatalf("pid %d of %s: %v", w.PID, w.ID, err)
		}
	}
	for _, a := range tc.agents {
		if perNode[a.id] != 2 {
			t.Fatalf("placement %v, want two per node", perNode)
		}
	}
	table, _, _ := tc.cli("workloads", "--addr", f.http)
	for _, id := range ids {
		if !strings.Contains(table, id) || strings.Count(table, "running ") != 6 {
			t.Fatalf("CLI via follower:\n%s", table)
		}
	}
	nodes, _, _ := tc.cli("nodes", "--addr", f.http)
	if strings.Count(nodes, "online ") != 3 {
		t.Fatalf("nodes via follower:\n%s", nodes)
	}

	// stop: no process of that workload's group stays alive.
	var w api.Workload
	tc.c.getJSON(f.http, "/workloads/"+ids[0], &w)
	if _, errOut, code := tc.cli("stop", "--addr", f.http, ids[0]); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	if syscall.Kill(-w.PID, 0) == nil {
		waitFor(t, 10*time.Second, "the stopped group to be gone", func() bool { return syscall.Kill(-w.PID, 0) != nil })
	}
	waitFor(t, 10*time.Second, "stopped state", func() bool {
		var x api.Workload
		return tc.c.getJSON(f.http, "/workloads/"+ids[0], &x) == nil && x.State == api.StateStopped
	})

	// logs: echo hello shows hello.
	out, _, _ = tc.cli("submit", "--name", "greeter", "--", "sh", "-c", "echo hello; sleep 600")
	echo := strings.TrimSpace(out)
	waitFor(t, 20*time.Second, "hello in the logs", func() bool {
		out, _, code := tc.cli("logs", "--addr", f.http, echo, "--tail", "10")
		return code == 0 && strings.Contains(out, "hello")
	})
}

// A command that cannot start fails with a readable reason; the agent keeps
// running.
func TestUnstartableCommandFailsWithReason(t *testing.T) {
	tc := newTestCluster(t, "--max-attempts", "2")
	tc.startReplicas(1)
	tc.startAgents(1)
	ids, err := tc.submit(tc.replicas[0].http, api.SubmitRequest{Name: "nope", Command: "/definitely/not/here"})
	if err != nil {
		t.Fatal(err)
	}
	var w api.Workload
	waitFor(t, 20*time.Second, "permanently_failed with a reason", func() bool {
		return tc.c.getJSON(tc.replicas[0].http, "/workloads/"+ids[0], &w) == nil && w.State == api.StatePermanentlyFailed
	})
	if !strings.Contains(w.Reason, "not") || w.Attempts != 2 {
		t.Fatalf("reason %q attempts %d", w.Reason, w.Attempts)
	}
	out, _, _ := tc.cli("workload", ids[0])
	if !strings.Contains(out, "Reason:") || !strings.Contains(out, "/definitely/not/here") {
		t.Fatalf("CLI does not show the reason:\n%s", out)
	}
	if !tc.agents[0].proc.alive() {
		t.Fatal("the agent died")
	}
}

// Every agent endpoint answers 401 without the token and with a wrong one,
// and a start request without the token starts nothing.
func TestAgentRequiresToken(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(1)
	tc.startAgents(1)
	a := tc.agents[0]
	marker := "mo-token-test-" + strconv.Itoa(os.Getpid())
	start := api.StartRequest{ID: "x1", Name: "x", Command: "sleep", Args: []string{"300", marker}, Generation: 1, Term: 1 << 40}
	for _, tok := range []string{"", "wrong"} {
		c := newClient(tok)
		for _, p := range []struct{ m, path string }{{"GET", "/status"}, {"POST", "/workloads"}, {"DELETE", "/workloads/x1"}, {"GET", "/workloads/x1/logs"}, {"GET", "/nope"}} {
			code, b, err := c.call(p.m, a.listen, p.path, start)
			if err != nil || code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d %s %v", p.m, p.path, tok, code, b, err)
			}
		}
	}
	// Nothing started: no process carries the marker.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if cmd, err := readFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(cmd, marker) {
			t.Fatalf("process %s was started without the token: %q", e.Name(), cmd)
		}
	}
}

// A killed agent is a dead node: even a workload process that left its
// process group (setsid) dies with the agent.
func TestEscapedProcessDiesWithTheAgent(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(1)
	tc.startAgents(1)
	a := tc.agents[0]
	ids, err := tc.submit(tc.replicas[0].http, api.SubmitRequest{Name: "escaper", Command: "sh",
		Args: []string{"-c", "setsid sleep 600 & echo $! > escaped.pid; sleep 600"}})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(a.data, "workloads", ids[0], "escaped.pid")
	var escaped int
	waitFor(t, 20*time.Second, "the escaped process", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		escaped, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pidAlive(escaped)
	})
	t.Cleanup(func() { syscall.Kill(escaped, syscall.SIGKILL) })
	a.proc.kill()
	waitFor(t, 10*time.Second, "the escaped process to die with the agent", func() bool { return !pidAlive(escaped) })
}
