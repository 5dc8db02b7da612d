package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// An agent restarted on purpose keeps its workloads: after SIGTERM its
// workloads run on (same pids), the leader neither marks the node offline
// nor moves anything, and the agent started again on the same data dir
// re-adopts them; SIGKILL of the agent still takes its workloads with it
// and they move.
func TestAgentRestartKeepsWorkloads(t *testing.T) {
	tc := newTestCluster(t, "--health-interval", "1s")
	tc.startReplicas(3)
	tc.startAgents(3)
	e := &nodeOpsEnv{tc: tc}
	a := tc.agents[0]
	// Everything on n1: the others ineligible while submitting.
	setEligible := func(id string, on bool) {
		e.must(t, http.MethodPost, "/nodes/"+id+"/eligibility", api.EligibilityRequest{Eligible: &on}, http.StatusOK, nil)
	}
	for _, o := range tc.agents[1:] {
		setEligible(o.id, false)
	}
	ids := e.submit(t, noSleepers("keep", 3))
	ids = append(ids, e.submit(t, noHTTPServer("keephttp"))...)
	before := e.waitUp(t, 30*time.Second, ids)
	for _, o := range tc.agents[1:] {
		setEligible(o.id, true)
	}
	for _, id := range ids {
		if before[id].Node != a.id {
			t.Fatalf("%s on %s, want %s", id, before[id].Node, a.id)
		}
	}

	// Watch the node's status and the workloads' placements while the agent restarts.
	stop := make(chan struct{})
	var mu sync.Mutex
	var statuses []string
	var moved []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var n api.Node
			if e.get("/nodes/"+a.id, &n) == nil {
				mu.Lock()
				statuses = append(statuses, n.Status)
				mu.Unlock()
			}
			if ws, err := e.workloads(); err == nil {
				for _, id := range ids {
					if w := ws[id]; w.Node != a.id || w.Generation != before[id].Generation {
						mu.Lock()
						moved = append(moved, fmt.Sprintf("%s on %s gen %d (%s)", id, w.Node, w.Generation, w.State))
						mu.Unlock()
					}
				}
			}
		}
	}()

	start := time.Now()
	if err := a.proc.term(15 * time.Second); err != nil {
		t.Fatalf("agent SIGTERM: %v", err)
	}
	exited := time.Since(start)
	for _, id := range ids {
		if !pidAlive(before[id].PID) {
			t.Fatalf("workload %s (pid %d) died with the agent's SIGTERM", id, before[id].PID)
		}
	}
	tc.startAgent(a)
	poll(t, 30*time.Second, "the restarted agent reporting the same pids", func() (bool, string) {
		st, err := tc.agentStatus(a)
		if err != nil {
			return false, err.Error()
		}
		found := map[string]int{}
		for _, w := range st.Workloads {
			if w.State == api.InstanceRunning {
				found[w.ID] = w.PID
			}
		}
		for _, id := range ids {
			if found[id] != before[id].PID {
				return false, fmt.Sprintf("%s: pid %d, want %d", id, found[id], before[id].PID)
			}
		}
		return true, ""
	})
	readopted := time.Since(start)
	// A few health rounds more: the node stays online and nothing moves.
	poll(t, 10*time.Second, "the node online with its workloads after the restart", func() (bool, string) {
		n := e.node(t, a.id)
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if w := ws[id]; w.State != api.StateRunning || w.PID != before[id].PID {
				return false, fmt.Sprintf("%s %s pid %d", id, w.State, w.PID)
			}
		}
		return n.Status == api.NodeOnline && time.Since(start) > readopted+3*time.Second, n.Status
	})
	close(stop)
	wg.Wait()
	for _, s := range statuses {
		if s == api.NodeOffline {
			t.Fatalf("the node was offline during the agent's restart: %v", statuses)
		}
	}
	if len(moved) > 0 {
		t.Fatalf("workloads moved during the agent's restart: %v", moved)
	}
	t.Logf("agent restart: SIGTERM exit in %s, same %d pids re-adopted %s after the SIGTERM, node never offline (%d samples)",
		exited.Round(time.Millisecond), len(ids), readopted.Round(time.Millisecond), len(statuses))

	// SIGKILL: a dead node; its workloads (re-adopted ones included) die and move.
	_ = syscall.Kill(a.proc.pid(), syscall.SIGKILL)
	a.proc.kill()
	poll(t, 30*time.Second, "the workloads of the killed agent dead and running elsewhere", func() (bool, string) {
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			w := ws[id]
			if pidAlive(before[id].PID) {
				return false, fmt.Sprintf("old pid %d of %s alive", before[id].PID, id)
			}
			if w.Node == a.id || !noUp(w) {
				return false, fmt.Sprintf("%s on %s %s", id, w.Node, w.State)
			}
		}
		return true, ""
	})

	// An agent that does not come back within its grace: its workloads are
	// killed when the grace runs out, and move as off any dead node.
	b := &agentProc{id: "n4", listen: addr(freePort(t))}
	b.data = filepath.Join(tc.dir, b.id)
	tc.agents = append(tc.agents, b)
	tc.startAgent(b, "--restart-grace", "2s")
	poll(t, 30*time.Second, "n4 online", func() (bool, string) {
		var n api.Node
		if err := e.get("/nodes/n4", &n); err != nil {
			return false, err.Error()
		}
		return n.Status == api.NodeOnline, n.Status
	})
	for _, o := range tc.agents {
		if o != b && o != a {
			setEligible(o.id, false)
		}
	}
	late := e.submit(t, noSleepers("late", 2))
	lateBefore := e.waitUp(t, 30*time.Second, late)
	for _, o := range tc.agents {
		if o != b && o != a {
			setEligible(o.id, true)
		}
	}
	if err := b.proc.term(15 * time.Second); err != nil {
		t.Fatalf("agent SIGTERM: %v", err)
	}
	poll(t, 40*time.Second, "the workloads of the agent that did not come back dead and running elsewhere", func() (bool, string) {
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range late {
			if pidAlive(lateBefore[id].PID) {
				return false, fmt.Sprintf("old pid %d of %s alive", lateBefore[id].PID, id)
			}
			if w := ws[id]; w.Node == b.id || !noUp(w) {
				return false, fmt.Sprintf("%s on %s %s", id, w.Node, w.State)
			}
		}
		return true, ""
	})
}
