package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// startFullCluster starts 3 replicas and 3 agents, all healthy, on TLS
// unless MO_TEST_TLS=0.
func startFullCluster(t testing.TB) *testCluster {
	return startFullClusterWith(t, defaultCerts())
}

// startFullClusterWith starts 3 replicas and 3 agents with certs (nil:
// plaintext).
func startFullClusterWith(t testing.TB, certs *certSet) *testCluster {
	tc := newTestClusterWith(t, certs)
	tc.startReplicas(3)
	tc.startAgents(3)
	return tc
}

// startAgents starts n agents joined to the cluster and waits until the
// leader sees them all online.
func (tc *testCluster) startAgents(n int, flags ...string) {
	tc.t.Helper()
	for i := 1; i <= n; i++ {
		a := &agentProc{id: "n" + strconv.Itoa(len(tc.agents)+1), listen: addr(freePort(tc.t))}
		a.data = filepath.Join(tc.dir, a.id)
		tc.agents = append(tc.agents, a)
		tc.startAgent(a, flags...)
	}
	tc.waitNodes(len(tc.agents), api.NodeOnline)
}

// startAgent (re)starts one agent process. Agents on one test machine all
// see the machine's CPU, which the test itself loads; unless a test passes its
// own --cpu-file, each agent reports a steady 5 % so that placement does not
// depend on how busy the machine happens to be.
func (tc *testCluster) startAgent(a *agentProc, flags ...string) {
	if !containsFlag(flags, "--cpu-file") {
		cpu := filepath.Join(tc.dir, a.id+".cpu")
		if err := os.WriteFile(cpu, []byte("5\n"), 0o600); err != nil {
			tc.t.Fatal(err)
		}
		flags = append(flags, "--cpu-file", cpu)
	}
	args := append([]string{"--id", a.id, "--listen", a.listen, "--join", strings.Join(tc.httpAddrs(), ","),
		"--data", a.data, "--token", tc.token, "--stop-grace", "3s", "--log-level", "debug"}, flags...)
	args = append(args, tc.certs.flags(tlsutil.RoleAgent)...)
	a.proc = startProc(tc.t, a.id, filepath.Join(tc.dir, a.id+".log"), "agent", args...)
}

// waitNodes waits until the health summary shows n nodes in the given status.
func (tc *testCluster) waitNodes(n int, status string) {
	tc.t.Helper()
	waitFor(tc.t, 30*time.Second, fmt.Sprintf("%d nodes %s", n, status), func() bool {
		return tc.countNodes(status) == n
	})
}

// countNodes returns how many nodes the leader's health summary shows in status.
func (tc *testCluster) countNodes(status string) int {
	var s api.HealthSummary
	for _, r := range tc.replicas {
		if r.proc == nil || !r.proc.alive() {
			continue
		}
		if tc.c.getJSON(r.http, "/health/summary", &s) == nil {
			k := 0
			for _, d := range s.NodeDetails {
				if d.Status == status {
					k++
				}
			}
			return k
		}
	}
	return -1
}

// workloads returns the leader's list of workloads, through any live replica.
func (tc *testCluster) workloads() []api.Workload {
	for _, r := range tc.replicas {
		if r.proc == nil || !r.proc.alive() {
			continue
		}
		var l api.WorkloadList
		if tc.c.getJSON(r.http, "/workloads", &l) == nil {
			return l.Workloads
		}
	}
	return nil
}

// agentStatus reads an agent's own /status.
func (tc *testCluster) agentStatus(a *agentProc) (api.AgentStatus, error) {
	var st api.AgentStatus
	err := tc.c.getJSON(a.listen, "/status", &st)
	return st, err
}

// agentByID returns the agent with the given node id.
func (tc *testCluster) agentByID(id string) *agentProc {
	for _, a := range tc.agents {
		if a.id == id {
			return a
		}
	}
	tc.t.Fatalf("no agent %s", id)
	return nil
}

// allRunning reports whether every listed workload runs with a live pid.
func allRunning(ws []api.Workload, ids []string) bool {
	byID := map[string]api.Workload{}
	for _, w := range ws {
		byID[w.ID] = w
	}
	for _, id := range ids {
		w, ok := byID[id]
		if !ok || w.State != api.StateRunning || w.PID == 0 || !pidAlive(w.PID) {
			return false
		}
	}
	return true
}

// pidAlive is kill -0.
func pidAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is not alive for our purposes.
	b, err := readFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// runningInstances counts, across every live agent's /status, the running
// instances of each workload.
func (tc *testCluster) runningInstances() map[string]int {
	out := map[string]int{}
	for _, a := range tc.agents {
		if a.proc == nil || !a.proc.alive() {
			continue
		}
		st, err := tc.agentStatus(a)
		if err != nil {
			continue
		}
		for _, w := range st.Workloads {
			if w.State == api.InstanceRunning && pidAlive(w.PID) {
				out[w.ID]++
			}
		}
	}
	return out
}

func containsFlag(flags []string, name string) bool {
	for _, f := range flags {
		if f == name || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}

// runningAway reports whether every listed workload runs with a live pid
// and none of them on the given nodes.
func (tc *testCluster) runningAway(ids []string, nodes ...string) bool {
	ws := tc.workloads()
	for _, n := range nodesOf(ws, ids) {
		for _, bad := range nodes {
			if n == bad {
				return false
			}
		}
	}
	return allRunning(ws, ids)
}

// runningOn reports whether every listed workload runs with a live pid on node.
func (tc *testCluster) runningOn(ids []string, node string) bool {
	ws := tc.workloads()
	for _, n := range nodesOf(ws, ids) {
		if n != node {
			return false
		}
	}
	return allRunning(ws, ids)
}
