package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A drain survives a leader failover: the leader is killed right after it
// accepted the drain; the new leader carries it on from the replicated
// state, never with fewer running instances than before, and at the end
// every workload runs exactly once, elsewhere.
func TestDrainSurvivesLeaderKill(t *testing.T) {
	tc := newTestCluster(t, "--health-interval", "1s")
	tc.startReplicas(3)
	tc.startAgents(3)
	e := &nodeOpsEnv{tc: tc}
	target := tc.agents[0].id
	setEligible := func(id string, on bool) {
		e.must(t, http.MethodPost, "/nodes/"+id+"/eligibility", api.EligibilityRequest{Eligible: &on}, http.StatusOK, nil)
	}
	for _, a := range tc.agents[1:] {
		setEligible(a.id, false)
	}
	ids := e.submit(t, noSleepers("failoverdrain", 19))
	ids = append(ids, e.submit(t, noHTTPServer("failoverdrainhttp"))...)
	e.waitUp(t, 30*time.Second, ids)
	for _, a := range tc.agents[1:] {
		setEligible(a.id, true)
	}
	set := noSet(ids)
	s := startNodeSampler(t, func() (int, string, error) {
		insts, err := e.instances(target, set)
		if err != nil {
			return 0, "", err
		}
		return len(insts), fmt.Sprintf("%d instances running", len(insts)), nil
	})
	old := tc.leader()
	e.must(t, http.MethodPost, "/nodes/"+target+"/drain", api.DrainRequest{Enable: true, Deadline: api.Duration(5 * time.Minute)}, http.StatusOK, nil)
	old.proc.kill()
	killedAt := time.Now()
	poll(t, 60*time.Second, "the drain done under the new leader", func() (bool, string) {
		var n api.Node
		if err := e.get("/nodes/"+target, &n); err != nil {
			return false, err.Error()
		}
		if n.Draining {
			return false, fmt.Sprintf("draining, %+v", n.Drain)
		}
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if w := ws[id]; w.Node == target || !noUp(w) {
				return false, fmt.Sprintf("%s on %s %s", id, w.Node, w.State)
			}
		}
		return true, ""
	})
	took := time.Since(killedAt)
	samples, fewest, detail := s.result()
	if fewest < len(ids) {
		t.Fatalf("fewest running instances during the drain %d, want %d: %s", fewest, len(ids), detail)
	}
	poll(t, 15*time.Second, "every workload running exactly once", func() (bool, string) {
		insts, err := e.instances(target, set)
		if err != nil {
			return false, err.Error()
		}
		per := map[string]int{}
		for _, in := range insts {
			per[in.ID]++
		}
		for _, id := range ids {
			if per[id] != 1 {
				return false, fmt.Sprintf("%s runs %d times", id, per[id])
			}
		}
		return true, ""
	})
	t.Logf("nodeops: drain with the leader killed at its start finished %s after the kill, fewest running %d of %d (%d samples)",
		took.Round(100*time.Millisecond), fewest, len(ids), samples)
}
