package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Node operations with the real binaries (3 replicas, 3 agents, TLS as the
// harness speaks it): a drain of the busiest node, sampled every 100 ms,
// never runs fewer instances of its workloads than before it; draining and
// ineligible nodes take no new work but keep what they run; a drain kept
// under way by a batch workload refuses eligibility until it is cancelled;
// purge refuses an online node and forgets an offline, empty one; bad
// input is refused; and --gc-after removes stopped and completed
// workloads. The steps share one cluster and run in order, each on what
// the one before left.
func TestNodeOps(t *testing.T) {
	began := time.Now()
	tc := newTestCluster(t, "--health-interval", "1s", "--gc-after", "2s")
	tc.startReplicas(3)
	tc.startAgents(3)
	e := &nodeOpsEnv{tc: tc}
	t.Logf("nodeops: cluster of 3 replicas and 3 agents up in %s", time.Since(began).Round(time.Millisecond))
	for _, step := range []struct {
		name string
		run  func(*testing.T, *nodeOpsEnv)
	}{
		{"Drain", nodeOpsDrain},
		{"Ineligible", nodeOpsIneligible},
		{"DrainHeldByBatch", nodeOpsDrainHeld},
		{"Purge", nodeOpsPurge},
		{"BadInput", nodeOpsBadInput},
		{"GC", nodeOpsGC},
	} {
		if !t.Run(step.name, func(t *testing.T) { step.run(t, e) }) {
			t.Fatalf("step %s failed; the later steps build on it", step.name)
		}
	}
	t.Logf("nodeops: the whole test took %s", time.Since(began).Round(time.Millisecond))
}

// 1. 20 sleepers and an HTTP server with a check; the node holding the
// most of them is drained. Sampled every 100 ms from the agents, the
// drained workloads never have fewer running processes than before the
// drain (each replacement runs, and the server's is healthy, before the
// old instance stops). At the end the node is neither draining nor
// eligible, runs nothing, every drained workload runs elsewhere under a
// new generation, the old processes are gone, and the others were not
// touched.
func nodeOpsDrain(t *testing.T, e *nodeOpsEnv) {
	ids := e.submit(t, noSleepers("drainme", 20))
	web := e.submit(t, noHTTPServer("drainme-http"))[0]
	all := append(slices.Clone(ids), web)
	ws := e.waitUp(t, 45*time.Second, all)
	pre := ws

	// The node holding the most of them; on a tie the one holding the
	// HTTP server, so that one move waits for a check.
	per := map[string]int{}
	for _, id := range all {
		per[ws[id].Node]++
	}
	drained := ""
	for _, n := range slices.Sorted(maps.Keys(per)) {
		if drained == "" || per[n] > per[drained] || (per[n] == per[drained] && n == ws[web].Node) {
			drained = n
		}
	}
	e.drained = drained
	var moving, staying []string
	for _, id := range all {
		if ws[id].Node == drained {
			moving = append(moving, id)
		} else {
			staying = append(staying, id)
		}
	}
	webMoves := ws[web].Node == drained
	if !webMoves {
		t.Logf("nodeops: the HTTP server runs on %s, not on the drained %s: no move of this drain waits for a check", ws[web].Node, drained)
	}
	movingSet, allSet := noSet(moving), noSet(all)
	insts, err := e.instances(drained, allSet)
	if err != nil {
		t.Fatal(err)
	}
	before, perID := 0, map[string]int{}
	for _, in := range insts {
		perID[in.ID]++
		if movingSet[in.ID] {
			before++
		}
	}
	for _, id := range all {
		if perID[id] != 1 {
			t.Fatalf("before the drain the agents run %d instances of %s; want 1 (%v)", perID[id], id, perID)
		}
	}
	old := map[string]api.Workload{}
	var oldPIDs []int
	for _, id := range moving {
		old[id] = ws[id]
		oldPIDs = append(oldPIDs, ws[id].PID)
	}

	// The sampler counts what the agents run (the drained node's agent
	// read first) with a live pid: the drained workloads' instances, all
	// the test's instances, and the healthy instances of the HTTP server.
	allFewest, webFewest := -1, -1
	var allDetail, webDetail string
	s := startNodeSampler(t, func() (int, string, error) {
		insts, err := e.instances(drained, allSet)
		if err != nil {
			return 0, "", err
		}
		n, healthy := 0, 0
		where := map[string]int{}
		for _, in := range insts {
			if movingSet[in.ID] {
				n++
				where[in.node]++
			}
			if in.ID == web && in.Health == api.HealthHealthy {
				healthy++
			}
		}
		detail := fmt.Sprintf("%d instances of the drained workloads running, by node %v; %d of all %d; %d healthy of the HTTP server", n, where, len(insts), len(all), healthy)
		at := time.Now().Format("15:04:05.000")
		if allFewest < 0 || len(insts) < allFewest {
			allFewest, allDetail = len(insts), at+": "+detail
		}
		if webFewest < 0 || healthy < webFewest {
			webFewest, webDetail = healthy, at+": "+detail
		}
		return n, detail, nil
	})

	start := time.Now()
	var n api.Node
	e.must(t, http.MethodPost, "/nodes/"+drained+"/drain", map[string]any{"enable": true, "deadline": "2m"}, http.StatusOK, &n)
	if !n.Draining || n.Eligible || n.Drain == nil {
		t.Fatalf("POST /nodes/%s/drain answered %+v; want draining, not eligible, with a drain", drained, n)
	}
	if d := n.Drain.Deadline.Sub(start); d < 2*time.Minute-10*time.Second || d > 2*time.Minute+10*time.Second {
		t.Fatalf("the drain's deadline is %s after it was asked for; want 2m", d)
	}
	// Remaining counts each workload once, its old instance included while
	// its move is under way (a move may even have finished already).
	if n.Drain.Remaining < 1 || n.Drain.Remaining > len(moving) {
		t.Fatalf("the drain answered remaining %d; want the %d workloads on %s", n.Drain.Remaining, len(moving), drained)
	}

	var took time.Duration
	poll(t, 60*time.Second, "the drain done, every drained workload running elsewhere and the old processes gone", func() (bool, string) {
		var n api.Node
		if err := e.get("/nodes/"+drained, &n); err != nil {
			return false, err.Error()
		}
		if n.Draining {
			return false, fmt.Sprintf("%s draining, drain %+v", drained, n.Drain)
		}
		if took == 0 {
			took = time.Since(start)
		}
		if n.Eligible || n.Drain != nil || n.Allocated == nil || *n.Allocated != (api.Capacity{}) {
			t.Fatalf("after the drain %s shows eligible %v, drain %+v, allocated %+v; want ineligible, no drain, nothing allocated", drained, n.Eligible, n.Drain, n.Allocated)
		}
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		if on := noOn(ws, drained); len(on) > 0 {
			return false, "live on the drained node: " + noDescribe(noPick(ws, on))
		}
		for _, id := range moving {
			w, o := ws[id], old[id]
			if !noUp(w) || w.Node == drained || w.PID == o.PID || w.Generation <= o.Generation {
				return false, fmt.Sprintf("%s not yet moved: %s (was %s)", id, noDescribe([]api.Workload{w}), noDescribe([]api.Workload{o}))
			}
		}
		if ok, detail := noPIDsGone(oldPIDs); !ok {
			return false, "old processes " + detail
		}
		st, err := e.tc.agentStatus(e.tc.agentByID(drained))
		if err != nil {
			return false, err.Error()
		}
		for _, w := range st.Workloads {
			if w.State == api.InstanceRunning {
				return false, fmt.Sprintf("the agent of %s still reports %s running (pid %d)", drained, w.ID, w.PID)
			}
		}
		return true, ""
	})
	done := time.Since(start)
	samples, fewest, detail := s.result()
	t.Logf("nodeops: drain of %d workloads took %s, fewest running %d (of %d before; all %d of the test: fewest %d; %d samples); old processes gone after %s",
		len(moving), took.Round(100*time.Millisecond), fewest, before, len(all), allFewest, samples, done.Round(100*time.Millisecond))
	if samples < 3 {
		t.Fatalf("only %d samples during the drain", samples)
	}
	if fewest < before {
		t.Errorf("during the drain only %d instances of the %d drained workloads ran (want at least %d): %s", fewest, len(moving), before, detail)
	}
	if allFewest < len(all) {
		t.Errorf("during the drain only %d instances of the test's %d workloads ran: at %s", allFewest, len(all), allDetail)
	}
	if webMoves && webFewest < 1 {
		t.Errorf("during the drain no instance of the HTTP server %s was healthy: at %s", web, webDetail)
	}

	ws = e.mustWorkloads(t)
	if w := ws[web]; w.Health != api.HealthHealthy {
		t.Fatalf("the HTTP server after the drain: %s; want healthy", noDescribe([]api.Workload{w}))
	}
	for _, id := range staying {
		if w, o := ws[id], pre[id]; !noUp(w) || w.Node != o.Node || w.PID != o.PID || w.Generation != o.Generation {
			t.Fatalf("a workload not on the drained node changed: %s (was %s)", noDescribe([]api.Workload{w}), noDescribe([]api.Workload{o}))
		}
	}
	for _, kind := range []string{"node_drain_started", "node_drained"} {
		if len(e.events(t, kind, drained)) == 0 {
			t.Errorf("no %s event for %s", kind, drained)
		}
	}
}

// 2. With the drained node (ineligible since its drain) and a second node
// made ineligible, new workloads all land on the third; what ran on the
// ineligible node keeps running there, same process. Once both are
// eligible again, new workloads land on them.
func nodeOpsIneligible(t *testing.T, e *nodeOpsEnv) {
	var others []string
	for _, n := range e.nodes(t) {
		if n.ID != e.drained {
			others = append(others, n.ID)
		}
	}
	if len(others) != 2 {
		t.Fatalf("nodes other than %s: %v; want 2", e.drained, others)
	}
	off, open := others[0], others[1]
	ws := e.mustWorkloads(t)
	kept := noOn(ws, off)
	if len(kept) == 0 {
		t.Fatalf("nothing runs on %s to see it stay", off)
	}

	var n api.Node
	e.must(t, http.MethodPost, "/nodes/"+off+"/eligibility", map[string]any{"eligible": false}, http.StatusOK, &n)
	if n.Eligible || n.Draining || n.Status != api.NodeOnline {
		t.Fatalf("POST /nodes/%s/eligibility false answered %+v; want online, ineligible, not draining", off, n)
	}
	if d := e.node(t, e.drained); d.Eligible || d.Draining {
		t.Fatalf("the drained node %s shows eligible %v, draining %v; want neither", e.drained, d.Eligible, d.Draining)
	}
	ids := e.submit(t, noSleepers("elsewhere", 6))
	now := e.waitUp(t, 30*time.Second, ids)
	for _, w := range noPick(now, ids) {
		if w.Node != open {
			t.Fatalf("with %s draining-done and %s ineligible, a new workload landed on %s; want %s: %s", e.drained, off, w.Node, open, noDescribe(noPick(now, ids)))
		}
	}
	for _, id := range kept {
		if w, o := now[id], ws[id]; !noUp(w) || w.Node != off || w.PID != o.PID || w.Generation != o.Generation {
			t.Fatalf("a workload on the ineligible %s did not stay: %s (was %s)", off, noDescribe([]api.Workload{w}), noDescribe([]api.Workload{o}))
		}
	}
	if on := noOn(now, e.drained); len(on) > 0 {
		t.Fatalf("workloads placed on the drained node %s: %s", e.drained, noDescribe(noPick(now, on)))
	}

	for _, id := range []string{e.drained, off} {
		var n api.Node
		e.must(t, http.MethodPost, "/nodes/"+id+"/eligibility", map[string]any{"eligible": true}, http.StatusOK, &n)
		if !n.Eligible || n.Draining {
			t.Fatalf("POST /nodes/%s/eligibility true answered %+v; want eligible, not draining", id, n)
		}
	}
	// Enough new workloads that placement on the least loaded node gives
	// both re-enabled nodes some: their difference, and two more.
	per := noPerNode(now)
	k := per[off] - per[e.drained]
	if k < 0 {
		k = -k
	}
	k += 2
	again := e.submit(t, noSleepers("again", k))
	after := e.waitUp(t, 30*time.Second, again)
	landed := map[string]int{}
	for _, w := range noPick(after, again) {
		landed[w.Node]++
	}
	t.Logf("nodeops: %d new workloads with %s and %s eligible again (they ran %d and %d, %s ran %d) landed %v", k, e.drained, off, per[e.drained], per[off], open, per[open], landed)
	if landed[e.drained] == 0 || landed[off] == 0 {
		t.Fatalf("with %s and %s eligible again, %d new workloads landed %v; want some on each", e.drained, off, k, landed)
	}
}

// 3. A drain held by a batch workload (batch workloads may finish until
// the deadline): its services move off, the batch instance stays, and the
// node stays draining; enabling eligibility is a 409 until the drain is
// cancelled, which makes it eligible again with the batch instance still
// the same process, and every workload running exactly once.
func nodeOpsDrainHeld(t *testing.T, e *nodeOpsEnv) {
	req := noSleepers("drain-stays", 1)
	req.Spec.Type = api.TypeBatch
	e.batch = e.submit(t, req)[0]
	ws := e.waitUp(t, 30*time.Second, []string{e.batch})
	b := ws[e.batch]
	node := b.Node
	services := noOn(ws, node)
	services = slices.DeleteFunc(services, func(id string) bool { return id == e.batch })

	var n api.Node
	e.must(t, http.MethodPost, "/nodes/"+node+"/drain", map[string]any{"enable": true, "deadline": "10m"}, http.StatusOK, &n)
	if !n.Draining || n.Eligible {
		t.Fatalf("POST /nodes/%s/drain answered %+v; want draining, ineligible", node, n)
	}
	body := e.must(t, http.MethodPost, "/nodes/"+node+"/eligibility", map[string]any{"eligible": true}, http.StatusConflict, nil)
	if !strings.Contains(string(body), "draining") {
		t.Fatalf("eligibility of the draining %s refused with %s; want it to say the node is draining", node, body)
	}
	poll(t, 45*time.Second, fmt.Sprintf("the %d services of %s moved off, its batch workload left", len(services), node), func() (bool, string) {
		var n api.Node
		if err := e.get("/nodes/"+node, &n); err != nil {
			return false, err.Error()
		}
		if !n.Draining || n.Eligible || n.Drain == nil {
			t.Fatalf("with a batch workload on it and 10m to go, %s shows draining %v, eligible %v, drain %+v", node, n.Draining, n.Eligible, n.Drain)
		}
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		if on := noOn(ws, node); len(on) != 1 || on[0] != e.batch {
			return false, "live on " + node + ": " + noDescribe(noPick(ws, on))
		}
		for _, id := range services {
			if !noUp(ws[id]) {
				return false, "not moved yet: " + noDescribe([]api.Workload{ws[id]})
			}
		}
		if n.Drain.Remaining != 1 {
			return false, fmt.Sprintf("drain remaining %d", n.Drain.Remaining)
		}
		return true, ""
	})
	if w := e.mustWorkloads(t)[e.batch]; w.State != api.StateRunning || w.Node != node || w.PID != b.PID || !pidAlive(b.PID) {
		t.Fatalf("the batch workload on the draining %s: %s (was %s); want it left running", node, noDescribe([]api.Workload{w}), noDescribe([]api.Workload{b}))
	}

	e.must(t, http.MethodPost, "/nodes/"+node+"/drain", map[string]any{"enable": false}, http.StatusOK, &n)
	if n.Draining || !n.Eligible || n.Drain != nil {
		t.Fatalf("the cancel of the drain of %s answered %+v; want eligible, not draining, no drain", node, n)
	}
	if got := e.node(t, node); got.Draining || !got.Eligible {
		t.Fatalf("after the cancel GET /nodes/%s shows draining %v, eligible %v", node, got.Draining, got.Eligible)
	}
	poll(t, 30*time.Second, "every live workload running exactly once", func() (bool, string) {
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		insts, err := e.instances("", nil)
		if err != nil {
			return false, err.Error()
		}
		count := map[string]int{}
		for _, in := range insts {
			count[in.ID]++
		}
		for _, w := range ws {
			if noLive(w) && (!noUp(w) || count[w.ID] != 1) {
				return false, fmt.Sprintf("%s with %d instances running", noDescribe([]api.Workload{w}), count[w.ID])
			}
		}
		return true, ""
	})
	if w := e.mustWorkloads(t)[e.batch]; w.State != api.StateRunning || w.Node != node || w.PID != b.PID || !pidAlive(b.PID) {
		t.Fatalf("the batch workload after the cancel: %s (was %s); want it still running, the same process", noDescribe([]api.Workload{w}), noDescribe([]api.Workload{b}))
	}
	// Eligible again, and the least loaded: new work lands there.
	ids := e.submit(t, noSleepers("after-cancel", 2))
	now := e.waitUp(t, 30*time.Second, ids)
	landed := map[string]int{}
	for _, w := range noPick(now, ids) {
		landed[w.Node]++
	}
	if landed[node] == 0 {
		t.Fatalf("after the cancel of its drain, %s (running %d workloads) got none of 2 new ones: %v; per node %v", node, 1, landed, noPerNode(ws))
	}
}

// 4. DELETE /nodes/{id}: an online node is a 409 and stays; once its agent
// is killed with SIGKILL, its node offline and its workloads moved, the
// node is purged and no longer listed.
func nodeOpsPurge(t *testing.T, e *nodeOpsEnv) {
	ws := e.mustWorkloads(t)
	per := noPerNode(ws)
	// The victim: the node with the fewest workloads other than the one
	// holding the batch workload (so that it is not the one moved).
	victim := ""
	for _, n := range e.nodes(t) {
		if n.ID == ws[e.batch].Node || n.Status != api.NodeOnline {
			continue
		}
		if victim == "" || per[n.ID] < per[victim] {
			victim = n.ID
		}
	}
	if victim == "" {
		t.Fatal("no online node to purge")
	}
	body := e.must(t, http.MethodDelete, "/nodes/"+victim, nil, http.StatusConflict, nil)
	if !strings.Contains(string(body), "online") {
		t.Fatalf("DELETE of the online %s refused with %s; want it to say it is online", victim, body)
	}
	if n := e.node(t, victim); n.Status != api.NodeOnline {
		t.Fatalf("after the refused purge %s is %s", victim, n.Status)
	}
	moving := noOn(ws, victim)
	var oldPIDs []int
	for _, id := range moving {
		oldPIDs = append(oldPIDs, ws[id].PID)
	}

	killed := time.Now()
	e.tc.agentByID(victim).proc.kill()
	var offlineAfter time.Duration
	poll(t, 45*time.Second, fmt.Sprintf("%s offline and its %d workloads running elsewhere", victim, len(moving)), func() (bool, string) {
		var n api.Node
		if err := e.get("/nodes/"+victim, &n); err != nil {
			return false, err.Error()
		}
		if n.Status != api.NodeOffline {
			return false, victim + " is " + n.Status
		}
		if offlineAfter == 0 {
			offlineAfter = time.Since(killed)
		}
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range moving {
			if w := ws[id]; !noUp(w) || w.Node == victim {
				return false, "not moved yet: " + noDescribe([]api.Workload{w})
			}
		}
		if on := noOn(ws, victim); len(on) > 0 {
			return false, "live on " + victim + ": " + noDescribe(noPick(ws, on))
		}
		return noPIDsGone(oldPIDs)
	})
	t.Logf("nodeops: %s offline %s after its agent was killed, its %d workloads running elsewhere after %s",
		victim, offlineAfter.Round(100*time.Millisecond), len(moving), time.Since(killed).Round(100*time.Millisecond))

	var purged map[string]string
	e.must(t, http.MethodDelete, "/nodes/"+victim, nil, http.StatusOK, &purged)
	if purged["purged"] != victim {
		t.Fatalf("DELETE /nodes/%s answered %v", victim, purged)
	}
	for _, n := range e.nodes(t) {
		if n.ID == victim {
			t.Fatalf("GET /nodes still lists the purged %s: %+v", victim, n)
		}
	}
	e.must(t, http.MethodGet, "/nodes/"+victim, nil, http.StatusNotFound, nil)
	e.must(t, http.MethodDelete, "/nodes/"+victim, nil, http.StatusNotFound, nil)
	if got := len(e.nodes(t)); got != 2 {
		t.Fatalf("GET /nodes lists %d nodes after the purge; want 2", got)
	}
}

// 5. Unknown nodes are 404s; a drain deadline that is not a duration, or
// not positive, is a 400 and starts nothing.
func nodeOpsBadInput(t *testing.T, e *nodeOpsEnv) {
	const ghost = "no-such-node"
	e.must(t, http.MethodDelete, "/nodes/"+ghost, nil, http.StatusNotFound, nil)
	e.must(t, http.MethodPost, "/nodes/"+ghost+"/drain", map[string]any{"enable": true, "deadline": "10m"}, http.StatusNotFound, nil)
	e.must(t, http.MethodPost, "/nodes/"+ghost+"/eligibility", map[string]any{"eligible": false}, http.StatusNotFound, nil)
	e.must(t, http.MethodGet, "/nodes/"+ghost, nil, http.StatusNotFound, nil)
	node := e.nodes(t)[0].ID
	for _, deadline := range []string{"ten minutes", "-5m"} {
		body := e.must(t, http.MethodPost, "/nodes/"+node+"/drain", map[string]any{"enable": true, "deadline": deadline}, http.StatusBadRequest, nil)
		if !strings.Contains(string(body), "deadline") && !strings.Contains(string(body), "duration") {
			t.Errorf("a drain with deadline %q refused with %s; want it to name the deadline", deadline, body)
		}
	}
	e.must(t, http.MethodPost, "/nodes/"+node+"/eligibility", map[string]any{}, http.StatusBadRequest, nil)
	if n := e.node(t, node); n.Draining || !n.Eligible {
		t.Fatalf("after the refused calls %s shows draining %v, eligible %v", node, n.Draining, n.Eligible)
	}
}

// 6. With --gc-after 2s, stopped and completed workloads leave GET
// /workloads and GET /state within seconds, the running ones stay; POST
// /gc answers with counts. serve refuses a --gc-after below 1s.
func nodeOpsGC(t *testing.T, e *nodeOpsEnv) {
	stopped := e.submit(t, noSleepers("gcme", 3))
	e.waitUp(t, 30*time.Second, stopped)
	done := api.SubmitRequest{Name: "gcdone", Command: "true", Spec: api.Spec{Type: api.TypeBatch}}
	completed := e.submit(t, done)[0]
	poll(t, 30*time.Second, "the batch workload completed", func() (bool, string) {
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		w := ws[completed]
		return w.State == api.StateCompleted, noDescribe([]api.Workload{w})
	})
	for _, id := range stopped {
		e.must(t, http.MethodDelete, "/workloads/"+id, nil, http.StatusOK, nil)
	}
	stoppedAt := time.Now()
	ws := e.mustWorkloads(t)
	var running []string
	for id, w := range ws {
		if noLive(w) {
			running = append(running, id)
		}
	}
	gone := append(slices.Clone(stopped), completed)
	byGC := 0
	poll(t, 20*time.Second, "the stopped and completed workloads collected", func() (bool, string) {
		var res map[string]int
		code, b, err := e.call(http.MethodPost, "/gc", nil)
		if err != nil {
			return false, err.Error()
		}
		if code != http.StatusOK || json.Unmarshal(b, &res) != nil {
			t.Fatalf("POST /gc: %d %s", code, b)
		}
		for _, k := range []string{"workloads", "nodes", "jobs"} {
			if _, ok := res[k]; !ok {
				t.Fatalf("POST /gc answered %s; want the counts of workloads, nodes and jobs", b)
			}
		}
		byGC += res["workloads"]
		ws, err := e.workloads()
		if err != nil {
			return false, err.Error()
		}
		st, err := e.stateWorkloads()
		if err != nil {
			return false, err.Error()
		}
		for _, id := range gone {
			if _, ok := ws[id]; ok {
				return false, "GET /workloads still lists " + noDescribe([]api.Workload{ws[id]})
			}
			if st[id] {
				return false, "GET /state still holds " + id
			}
		}
		return true, ""
	})
	t.Logf("nodeops: %d stopped and completed workloads collected %s after the stops (POST /gc removed %d of them, the leader's loop the rest)",
		len(gone), time.Since(stoppedAt).Round(100*time.Millisecond), byGC)
	if byGC > len(gone) {
		t.Fatalf("POST /gc counted %d workloads removed; only %d were collectable", byGC, len(gone))
	}
	for _, id := range gone {
		e.must(t, http.MethodGet, "/workloads/"+id, nil, http.StatusNotFound, nil)
	}
	ws = e.mustWorkloads(t)
	st, err := e.stateWorkloads()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range running {
		if !noLive(ws[id]) || !st[id] {
			t.Fatalf("a live workload was collected: %s (in GET /state: %v)", noDescribe([]api.Workload{ws[id]}), st[id])
		}
	}
	var res api.GCResponse
	e.must(t, http.MethodPost, "/gc", nil, http.StatusOK, &res)
	if res != (api.GCResponse{}) {
		t.Fatalf("a second POST /gc with nothing to collect answered %+v", res)
	}

	for _, flag := range []string{"--gc-after", "--node-gc-after"} {
		out, code := runScheduler(t, "serve", "--id", "s9", "--http", addr(freePort(t)), "--raft", addr(freePort(t)),
			"--data", t.TempDir(), "--bootstrap", "--token", "t", flag, "500ms")
		if code != 2 || !strings.Contains(out, flag) {
			t.Fatalf("scheduler serve %s 500ms: exit %d, %q; want exit 2 naming %s", flag, code, out, flag)
		}
	}
}
