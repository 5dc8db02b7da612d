package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Jobs with the real binaries (3 replicas, 3 agents): a job of 3 HTTP
// servers with a health check is run, updated one instance at a time while
// at least 2 keep serving, updated to a broken version that is reverted on
// its own, scaled, rolled back by hand, updated through a leader killed
// with SIGKILL, refused bad input, and stopped. The steps share one cluster
// and run in order, each on what the one before left.
func TestJobs(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not on PATH: the job's instances are python3 -m http.server")
	}
	began := time.Now()
	tc := newTestCluster(t, "--health-interval", "1s")
	tc.startReplicas(3)
	tc.startAgents(3)
	e := newJobsEnv(tc)
	t.Logf("jobs: cluster of 3 replicas and 3 agents up in %s", time.Since(began).Round(time.Millisecond))
	for _, step := range []struct {
		name string
		run  func(*testing.T, *jobsEnv)
	}{
		{"Run", jobsRun},
		{"RollingUpdate", jobsRollingUpdate},
		{"FailingUpdateReverted", jobsFailingUpdate},
		{"Scale", jobsScale},
		{"HistoryAndRevert", jobsHistoryAndRevert},
		{"LeaderKilledMidUpdate", jobsLeaderKill},
		{"NodeKilledMidUpdate", jobsNodeKill},
		{"BadInput", jobsBadInput},
		{"Stop", jobsStop},
	} {
		if !t.Run(step.name, func(t *testing.T) { step.run(t, e) }) {
			t.Fatalf("step %s failed; the later steps build on it", step.name)
		}
	}
	t.Logf("jobs: the whole test took %s", time.Since(began).Round(time.Millisecond))
}

// runJob posts a job file and returns the answer.
func (e *jobsEnv) runJob(t *testing.T, spec api.JobSpec) api.JobRunResponse {
	t.Helper()
	var resp api.JobRunResponse
	e.must(t, "POST", "/jobs", spec, http.StatusOK, &resp)
	return resp
}

// 1. POST /jobs: 3 instances running and healthy, on 3 nodes; the
// deployment of version 0 successful.
func jobsRun(t *testing.T, e *jobsEnv) {
	// Spreading needs every node to be a candidate: answered a health check
	// of this leader (a node not yet checked takes nothing).
	waitFor(t, 20*time.Second, "every node answered a health check", func() bool {
		var hs api.HealthSummary
		if e.getJSON("/health/summary", &hs) != nil || len(hs.NodeDetails) != 3 {
			return false
		}
		for _, d := range hs.NodeDetails {
			if d.Status != api.NodeOnline || d.ResponseTime == nil {
				return false
			}
		}
		return true
	})
	start := time.Now()
	resp := e.runJob(t, jtSpec("v1"))
	if resp.Version != 0 || resp.Count != 3 || !resp.Plan.New || resp.Plan.Create != 3 {
		t.Fatalf("POST /jobs answered %+v; want version 0, count 3, a new job creating 3", resp)
	}
	e.waitVersion(t, 0, api.DeploymentSuccessful, 45*time.Second)
	ws := e.waitSettled(t, 3, 0, 15*time.Second)
	jtCheckSpread(t, ws)
	jtCheckGreeting(t, ws, "v1")
	j := e.job(t)
	if j.Status != api.JobRunning || j.Version != 0 || j.Count != 3 || j.Deployment == nil ||
		j.Deployment.Version != 0 || j.Deployment.Status != api.DeploymentSuccessful || j.Health[api.HealthHealthy] != 3 {
		t.Fatalf("GET /jobs/web: %+v; want running at version 0, count 3, 3 healthy, deployment 0 successful", j)
	}
	t.Logf("jobs: run of 3 instances healthy on %v in %s", jtNodes(ws), time.Since(start).Round(time.Millisecond))
}

// 2. A new env: instances replaced one at a time, never fewer than 2
// serving; the update ends successful at version 1, every instance's
// process has the new env and none of version 0 runs.
func jobsRollingUpdate(t *testing.T, e *jobsEnv) {
	oldWs := e.mustInstances(t)
	s := e.startSampler(t, nil)
	start := time.Now()
	resp := e.runJob(t, jtSpec("v2"))
	if resp.Version != 1 || !resp.Plan.NewVersion || resp.Plan.Replace != 3 {
		t.Fatalf("POST /jobs answered %+v; want version 1 replacing 3 instances", resp)
	}
	e.waitVersion(t, 1, api.DeploymentSuccessful, 60*time.Second)
	took := time.Since(start)
	ws := e.waitSettled(t, 3, 1, 15*time.Second)
	jtCheckSpread(t, ws)
	samples, minimum, detail := s.result()
	t.Logf("jobs: rolling update of 3 instances took %s, minimum healthy %d (%d samples)", took.Round(100*time.Millisecond), minimum, samples)
	if samples < 10 {
		t.Fatalf("only %d samples during the update", samples)
	}
	if minimum < 2 {
		t.Fatalf("during the rolling update only %d instances served (want at least count - max_parallel = 2): %s", minimum, detail)
	}
	jtCheckGreeting(t, ws, "v2")
	for _, w := range e.mustInstances(t) {
		if jtOfVersion(w, 0) && jtLive(w) {
			t.Fatalf("an instance of version 0 is still live: %s", jtDescribe([]api.Workload{w}))
		}
	}
	jtWaitGone(t, 10*time.Second, "the processes of version 0 gone", jtPIDs(oldWs))
	if d := e.job(t).Deployment; d == nil || d.Version != 1 || d.Status != api.DeploymentSuccessful || d.Healthy != 3 {
		t.Fatalf("job deployment %+v; want version 1 successful with 3 healthy", d)
	}
}

// 3. An update that cannot start: its deployment fails and is reverted to
// version 1 as a new version; 2 instances of the good spec serve
// throughout, and at the end all 3 do, with GREETING=v2.
func jobsFailingUpdate(t *testing.T, e *jobsEnv) {
	good := jtSpec("v2")
	oldSpec := func(w api.Workload) bool {
		return w.Env["GREETING"] == "v2" && len(w.Args) == 2 && w.Args[1] == jtServe
	}
	s := e.startSampler(t, oldSpec)
	start := time.Now()
	broken := jtSpec("v2")
	broken.Args = []string{"-c", "echo broken; exit 3"}
	resp := e.runJob(t, broken)
	if resp.Version != 2 || resp.Plan.Replace != 3 {
		t.Fatalf("POST /jobs answered %+v; want version 2 replacing 3 instances", resp)
	}
	failed := e.waitVersion(t, 2, api.DeploymentReverted, 60*time.Second)
	failedAfter := time.Since(start)
	if failed.Stable {
		t.Fatalf("version 2 is marked stable: %+v", failed)
	}
	var revert api.JobVersion
	for _, v := range e.versions(t).Versions {
		if v.RevertOf != nil && *v.RevertOf == 1 && v.Version > 2 {
			revert = v
		}
	}
	if revert.RevertOf == nil {
		t.Fatalf("no version with revert_of 1 after the failed deployment: %+v", e.versions(t))
	}
	if revert.Version != 3 || strings.Join(revert.Spec.Args, " ") != strings.Join(good.Args, " ") || revert.Spec.Env["GREETING"] != "v2" {
		t.Fatalf("the revert is version %d with args %q env %v; want version 3 with the spec of version 1", revert.Version, revert.Spec.Args, revert.Spec.Env)
	}
	e.waitVersion(t, revert.Version, api.DeploymentSuccessful, 45*time.Second)
	for _, w := range e.mustInstances(t) {
		if jtOfVersion(w, 2) && jtLive(w) {
			t.Fatalf("an instance of the broken version 2 is still live: %s", jtDescribe([]api.Workload{w}))
		}
	}
	ws := e.waitSettled(t, 3, revert.Version, 15*time.Second)
	jtCheckSpread(t, ws)
	took := time.Since(start)
	samples, minimum, detail := s.result()
	t.Logf("jobs: failing update detected after %s, reverted and healthy after %s, minimum healthy of the old spec %d (%d samples)",
		failedAfter.Round(100*time.Millisecond), took.Round(100*time.Millisecond), minimum, samples)
	if minimum < 2 {
		t.Fatalf("during the failing update only %d instances of the old spec served (want at least 2): %s", minimum, detail)
	}
	jtCheckGreeting(t, ws, "v2")
	j := e.job(t)
	if j.Version != revert.Version || j.Deployment == nil || j.Deployment.RevertOf == nil || *j.Deployment.RevertOf != 1 {
		t.Fatalf("GET /jobs/web: version %d, deployment %+v; want version %d, a deployment with revert_of 1", j.Version, j.Deployment, revert.Version)
	}
	if j.Spec.Args[1] != jtServe {
		t.Fatalf("the job's current spec has args %q; want the good ones", j.Spec.Args)
	}
}

// 4. Scale to 5, then to 2; then a run of the file (count 3, as at its
// last run) keeps the scaled count.
func jobsScale(t *testing.T, e *jobsEnv) {
	v := e.job(t).Version
	start := time.Now()
	var j api.Job
	e.must(t, "POST", "/jobs/web/scale", api.JobScaleRequest{Count: intp(5)}, http.StatusOK, &j)
	if j.Count != 5 || j.Version != v {
		t.Fatalf("scale to 5 answered count %d version %d; want 5 and version %d unchanged", j.Count, j.Version, v)
	}
	ws := e.waitSettled(t, 5, v, 30*time.Second)
	t.Logf("jobs: scale 3 -> 5 healthy in %s, on nodes %v", time.Since(start).Round(100*time.Millisecond), jtNodes(ws))
	jtCheckSpread(t, ws)

	start = time.Now()
	e.must(t, "POST", "/jobs/web/scale", api.JobScaleRequest{Count: intp(2)}, http.StatusOK, &j)
	if j.Count != 2 {
		t.Fatalf("scale to 2 answered count %d", j.Count)
	}
	kept := e.waitSettled(t, 2, v, 20*time.Second)
	jtCheckSpread(t, kept)
	var gone []int
	keep := map[string]bool{kept[0].ID: true, kept[1].ID: true}
	for _, w := range ws {
		if !keep[w.ID] {
			gone = append(gone, w.PID)
		}
	}
	jtWaitGone(t, 10*time.Second, "the processes of the 3 stopped instances gone", gone)
	var ids []string
	for _, w := range e.mustInstances(t) {
		ids = append(ids, w.ID)
	}
	if procs := e.agentProcesses(ids); len(procs) != 2 || procs[kept[0].ID] != 1 || procs[kept[1].ID] != 1 {
		t.Fatalf("the agents run %v; want one process of each of %s and %s", procs, kept[0].ID, kept[1].ID)
	}
	t.Logf("jobs: scale 5 -> 2 in %s", time.Since(start).Round(100*time.Millisecond))

	// The same file again (count 3, as at the last run): the plan changes
	// nothing and says why the count stays 2.
	var plan api.JobPlan
	e.must(t, "POST", "/jobs?plan=true", jtSpec("v2"), http.StatusOK, &plan)
	if plan.Changes || plan.NewVersion || plan.CountTo != 2 || plan.CountFrom != 2 || plan.CountNote == "" || len(plan.Diff) != 0 {
		t.Fatalf("plan of the unchanged file: %+v; want no changes, count 2 -> 2 with a note", plan)
	}
	resp := e.runJob(t, jtSpec("v2"))
	if resp.Version != v || resp.Count != 2 || resp.Plan.Changes {
		t.Fatalf("run of the unchanged file answered %+v; want version %d, count 2, no changes", resp, v)
	}
	if j := e.job(t); j.Count != 2 || j.Version != v {
		t.Fatalf("after the run of the unchanged file the job has count %d version %d; want 2 and %d", j.Count, j.Version, v)
	}
	e.waitSettled(t, 2, v, 5*time.Second)
}

// 5. The history, newest first; a revert by hand to version 0 rolls its
// spec out as a new version; a revert to an unknown version is a 404, to
// the current one a 409.
func jobsHistoryAndRevert(t *testing.T, e *jobsEnv) {
	vs := e.versions(t)
	var got []string
	for i, v := range vs.Versions {
		rev := ""
		if v.RevertOf != nil {
			rev = fmt.Sprintf(" revert_of %d", *v.RevertOf)
		}
		got = append(got, fmt.Sprintf("%d %s%s", v.Version, v.Deployment, rev))
		if i > 0 && v.Version >= vs.Versions[i-1].Version {
			t.Fatalf("versions not newest first: %v", got)
		}
	}
	want := []string{"3 successful revert_of 1", "2 reverted", "1 successful", "0 successful"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("history %v; want %v", got, want)
	}
	t.Logf("jobs: history %s", strings.Join(got, ", "))

	start := time.Now()
	var resp api.JobRunResponse
	e.must(t, "POST", "/jobs/web/revert", api.JobRevertRequest{Version: uint64p(0)}, http.StatusOK, &resp)
	if resp.Version != 4 || resp.Count != 2 {
		t.Fatalf("revert to 0 answered %+v; want version 4 with count 2", resp)
	}
	v4 := e.waitVersion(t, 4, api.DeploymentSuccessful, 45*time.Second)
	if v4.RevertOf == nil || *v4.RevertOf != 0 || v4.Spec.Env["GREETING"] != "v1" {
		t.Fatalf("version 4: %+v; want revert_of 0 with GREETING v1", v4)
	}
	ws := e.waitSettled(t, 2, 4, 15*time.Second)
	jtCheckSpread(t, ws)
	jtCheckGreeting(t, ws, "v1")
	t.Logf("jobs: revert to version 0 rolled out in %s", time.Since(start).Round(100*time.Millisecond))

	for _, c := range []struct {
		version uint64
		want    int
	}{{999, http.StatusNotFound}, {4, http.StatusConflict}} {
		code, b, err := e.do("POST", "/jobs/web/revert", api.JobRevertRequest{Version: uint64p(c.version)})
		if err != nil || code != c.want {
			t.Fatalf("revert to %d: %d %s %v; want %d", c.version, code, b, err, c.want)
		}
	}
	if j := e.job(t); j.Version != 4 {
		t.Fatalf("the refused reverts changed the job: version %d", j.Version)
	}
}

// 6. The leader killed with SIGKILL while a rolling update is half done:
// the new leader finishes it, with exactly count instances, all of the new
// version, none started twice.
func jobsLeaderKill(t *testing.T, e *jobsEnv) {
	// Back to 3 instances, so that the update has more than one to replace.
	e.must(t, "POST", "/jobs/web/scale", api.JobScaleRequest{Count: intp(3)}, http.StatusOK, nil)
	e.waitSettled(t, 3, 4, 30*time.Second)

	resp := e.runJob(t, jtSpec("v3"))
	if resp.Version != 5 || resp.Count != 3 {
		t.Fatalf("POST /jobs answered %+v; want version 5 with count 3", resp)
	}
	start := time.Now()
	var j api.Job
	waitFor(t, 30*time.Second, "the update to version 5 under way with a new instance running", func() bool {
		if e.getJSON("/jobs/"+jtName, &j) != nil || j.Deployment == nil || j.Deployment.Version != 5 {
			return false
		}
		if j.Deployment.Status != api.DeploymentRunning {
			t.Fatalf("the deployment of version 5 ended (%+v) before the leader could be killed", j.Deployment)
		}
		ws, err := e.instances()
		if err != nil {
			return false
		}
		for _, w := range ws {
			if jtOfVersion(w, 5) && w.State == api.StateRunning {
				return j.Deployment.Placed >= 1
			}
		}
		return false
	})
	old := e.tc.leader()
	old.proc.kill()
	killedAt := time.Now()
	t.Logf("jobs: killed leader %s %s into the update (deployment placed %d, healthy %d of %d)",
		old.id, killedAt.Sub(start).Round(100*time.Millisecond), j.Deployment.Placed, j.Deployment.Healthy, j.Deployment.Desired)
	nl := e.tc.leader()
	if nl == old {
		t.Fatal("the killed replica still leads")
	}
	e.waitVersion(t, 5, api.DeploymentSuccessful, 60*time.Second)
	finished := time.Since(killedAt)
	ws := e.waitSettled(t, 3, 5, 15*time.Second)
	jtCheckSpread(t, ws)
	t.Logf("jobs: new leader %s finished the update %s after the kill", nl.id, finished.Round(100*time.Millisecond))
	jtCheckGreeting(t, ws, "v3")

	all := e.mustInstances(t)
	var of5, ids []string
	for _, w := range all {
		ids = append(ids, w.ID)
		if jtOfVersion(w, 5) {
			of5 = append(of5, w.ID)
		}
	}
	if len(of5) != 3 {
		var v5 []api.Workload
		for _, w := range all {
			if jtOfVersion(w, 5) {
				v5 = append(v5, w)
			}
		}
		t.Fatalf("%d workloads were created for version 5 (want exactly count = 3: none started twice): %s", len(of5), jtDescribe(v5))
	}
	for _, id := range of5 {
		var w api.Workload
		if err := e.getJSON("/workloads/"+id, &w); err != nil {
			t.Fatal(err)
		}
		if len(w.History) != 1 || w.Attempts != 0 {
			t.Fatalf("instance %s of version 5 was placed %d times (attempts %d): %+v", id, len(w.History), w.Attempts, w.History)
		}
	}
	// What the agents run: one process for each of the 3, nothing else of the job.
	waitFor(t, 10*time.Second, "the agents running exactly the 3 instances of version 5", func() bool {
		procs := e.agentProcesses(ids)
		if len(procs) != 3 {
			return false
		}
		for _, id := range of5 {
			if procs[id] != 1 {
				return false
			}
		}
		return true
	})
}

// 6b. kill -9 of an agent in the middle of a rolling update: the node's
// instances are recovered elsewhere and the deployment still ends
// successful, with count instances of the new version running.
func jobsNodeKill(t *testing.T, e *jobsEnv) {
	resp := e.runJob(t, jtSpec("v4"))
	v := resp.Version
	var victim *agentProc
	waitFor(t, 30*time.Second, "a new instance of the update running", func() bool {
		ws, err := e.instances()
		if err != nil {
			return false
		}
		var newNode string
		for _, w := range ws {
			if jtOfVersion(w, v) && w.State == api.StateRunning {
				newNode = w.Node
			}
		}
		if newNode == "" {
			return false
		}
		// Kill a node that still runs an old instance.
		for _, w := range ws {
			if !jtOfVersion(w, v) && w.State == api.StateRunning && w.Node != newNode {
				victim = e.tc.agentByID(w.Node)
				return victim != nil
			}
		}
		return false
	})
	victim.proc.kill()
	killedAt := time.Now()
	e.waitVersion(t, v, api.DeploymentSuccessful, 90*time.Second)
	ws := e.waitSettled(t, 3, v, 30*time.Second)
	for _, w := range ws {
		if w.Node == victim.id {
			t.Fatalf("instance %s still on the killed node %s", w.ID, victim.id)
		}
	}
	jtCheckGreeting(t, ws, "v4")
	t.Logf("jobs: agent %s killed during the update to version %d; the update ended successful %s later",
		victim.id, v, time.Since(killedAt).Round(100*time.Millisecond))
}

// 7. Bad job files: each a 400 naming the field, and the job unchanged.
// Scaling an unknown job is a 404.
func jobsBadInput(t *testing.T, e *jobsEnv) {
	before := e.job(t)
	nVersions := len(e.versions(t).Versions)
	good, err := json.Marshal(jtSpec("v9"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	update := func(m map[string]any) map[string]any { return m["update"].(map[string]any) }
	cases := []struct {
		name, body, field string
	}{
		{"count -1", with(func(m map[string]any) { m["count"] = -1 }), "count"},
		{"count 1001", with(func(m map[string]any) { m["count"] = 1001 }), "count"},
		{"max_parallel 0", with(func(m map[string]any) { update(m)["max_parallel"] = 0 }), "update.max_parallel"},
		{"duration 5 seconds", with(func(m map[string]any) { update(m)["min_healthy_time"] = "5 seconds" }), "update.min_healthy_time"},
		{"unknown field", with(func(m map[string]any) { m["colour"] = "red" }), "colour"},
		{"name not a DNS label", with(func(m map[string]any) { m["name"] = "Web_1" }), "name"},
		{"malformed JSON", `{"name":"web","count":3,,"command":"sh"}`, "malformed JSON"},
		{"truncated JSON", string(good[:len(good)/2]), "invalid JSON"},
	}
	for _, c := range cases {
		for _, path := range []string{"/jobs", "/jobs?plan=true"} {
			code, b, err := e.do("POST", path, c.body)
			if err != nil {
				t.Fatalf("%s: POST %s: %v", c.name, path, err)
			}
			var msg api.Error
			_ = json.Unmarshal(b, &msg)
			if code != http.StatusBadRequest || !strings.Contains(msg.Error, c.field) {
				t.Errorf("%s: POST %s answered %d %s; want 400 naming %s", c.name, path, code, b, c.field)
			}
		}
	}
	code, b, err := e.do("POST", "/jobs/nosuchjob/scale", api.JobScaleRequest{Count: intp(2)})
	if err != nil || code != http.StatusNotFound {
		t.Errorf("scale of an unknown job: %d %s %v; want 404", code, b, err)
	}
	after := e.job(t)
	if after.Version != before.Version || after.Count != before.Count || !after.UpdatedAt.Equal(before.UpdatedAt) ||
		after.Status != before.Status || len(e.versions(t).Versions) != nVersions {
		t.Errorf("bad input changed the job: version %d->%d, count %d->%d, updated %s->%s", before.Version, after.Version,
			before.Count, after.Count, before.UpdatedAt, after.UpdatedAt)
	}
	if code, _, _ := e.do("GET", "/jobs/Web_1", nil); code != http.StatusNotFound {
		t.Errorf("GET /jobs/Web_1 after the refused run: %d; want 404", code)
	}
}

// 8. DELETE /jobs/web stops every instance, their processes end, the job
// shows stopped; scaling it then is a 409.
func jobsStop(t *testing.T, e *jobsEnv) {
	var running []api.Workload
	for _, w := range e.mustInstances(t) {
		if w.State == api.StateRunning {
			running = append(running, w)
		}
	}
	if len(running) != 3 {
		t.Fatalf("%d running instances before the stop; want 3", len(running))
	}
	start := time.Now()
	var j api.Job
	e.must(t, "DELETE", "/jobs/web", nil, http.StatusOK, &j)
	if j.Status != api.JobStopped {
		t.Fatalf("DELETE /jobs/web answered status %q; want stopped", j.Status)
	}
	waitFor(t, 15*time.Second, "every instance of the job stopped", func() bool {
		ws, err := e.instances()
		if err != nil {
			return false
		}
		for _, w := range ws {
			if jtLive(w) {
				return false
			}
		}
		return true
	})
	for _, w := range e.mustInstances(t) {
		for _, r := range running {
			if w.ID == r.ID && w.State != api.StateStopped {
				t.Fatalf("instance %s is %s after the stop; want stopped", w.ID, w.State)
			}
		}
	}
	jtWaitGone(t, 10*time.Second, "the processes of the stopped job gone", jtPIDs(running))
	t.Logf("jobs: stop of 3 instances, processes gone, in %s", time.Since(start).Round(time.Millisecond))
	if j := e.job(t); j.Status != api.JobStopped || j.Health[api.HealthHealthy] != 0 {
		t.Fatalf("GET /jobs/web after the stop: status %q, health %v; want stopped with nothing running", j.Status, j.Health)
	}
	code, b, err := e.do("POST", "/jobs/web/scale", api.JobScaleRequest{Count: intp(2)})
	if err != nil || code != http.StatusConflict {
		t.Fatalf("scale of the stopped job: %d %s %v; want 409", code, b, err)
	}
}

func uint64p(v uint64) *uint64 { return &v }
