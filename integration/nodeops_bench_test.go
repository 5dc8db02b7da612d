package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Drain of a node running 20 workloads (one of them an HTTP server with a
// check): time from the drain request to the drain recorded done, every
// workload then running elsewhere, over MO_BENCH_DRAINS trials (5), each
// draining the next node. The other nodes are made ineligible while the
// 20 are submitted, so that they all land on the node to drain.
func TestBenchDrain(t *testing.T) {
	requireBench(t)
	trials := benchEnvInt("MO_BENCH_DRAINS", 5)
	tc := newTestCluster(t, "--health-interval", "1s")
	tc.startReplicas(3)
	tc.startAgents(3)
	e := &nodeOpsEnv{tc: tc}
	var ds []time.Duration
	for i := 0; i < trials; i++ {
		target := tc.agents[i%len(tc.agents)].id
		setEligible := func(id string, on bool) {
			e.must(t, http.MethodPost, "/nodes/"+id+"/eligibility", api.EligibilityRequest{Eligible: &on}, http.StatusOK, nil)
		}
		for _, a := range tc.agents {
			setEligible(a.id, a.id == target)
		}
		ids := e.submit(t, noSleepers(fmt.Sprintf("drain%d", i), 19))
		ids = append(ids, e.submit(t, noHTTPServer(fmt.Sprintf("drainhttp%d", i)))...)
		ws := e.waitUp(t, 30*time.Second, ids)
		for _, id := range ids {
			if ws[id].Node != target {
				t.Fatalf("workload %s on %s, want %s", id, ws[id].Node, target)
			}
		}
		for _, a := range tc.agents {
			setEligible(a.id, true)
		}
		start := time.Now()
		e.must(t, http.MethodPost, "/nodes/"+target+"/drain", api.DrainRequest{Enable: true, Deadline: api.Duration(5 * time.Minute)}, http.StatusOK, nil)
		poll(t, 60*time.Second, "the drain of "+target+" done", func() (bool, string) {
			n := e.node(t, target)
			return !n.Draining, fmt.Sprintf("draining %v, drain %+v", n.Draining, n.Drain)
		})
		d := time.Since(start)
		ws = e.waitUp(t, 10*time.Second, ids)
		for _, id := range ids {
			if ws[id].Node == target {
				t.Fatalf("workload %s still on the drained node", id)
			}
		}
		ds = append(ds, d)
		t.Logf("drain %d of %s: %s", i+1, target, d.Round(10*time.Millisecond))
		// Clear the workloads for the next trial.
		for _, id := range ids {
			e.must(t, http.MethodDelete, "/workloads/"+id, nil, http.StatusOK, nil)
		}
		setEligible(target, true)
	}
	fmt.Printf("\ndrain of a node running 20 workloads (19 sleep, 1 HTTP server with a check every 500 ms), %d trials: median %s, p99 %s\n",
		len(ds), roundDur(percentile(ds, 50)), roundDur(percentile(ds, 99)))
}
