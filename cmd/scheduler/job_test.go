package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// jobAPI fakes the scheduler's job API: a handler per "METHOD /path", and a
// record of every call.
type jobAPI struct {
	mu     sync.Mutex
	calls  []string          // "METHOD /path?query", in order
	bodies map[string][]byte // the last body of each "METHOD /path"
	routes map[string]http.HandlerFunc
	addr   string
}

func newJobAPI(t *testing.T, routes map[string]http.HandlerFunc) *jobAPI {
	t.Helper()
	if routes == nil {
		routes = map[string]http.HandlerFunc{}
	}
	a := &jobAPI{bodies: map[string][]byte{}, routes: routes}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		a.mu.Lock()
		call := key
		if r.URL.RawQuery != "" {
			call += "?" + r.URL.RawQuery
		}
		a.calls = append(a.calls, call)
		a.bodies[key] = b
		h := a.routes[key]
		a.mu.Unlock()
		if h == nil {
			api.WriteError(w, http.StatusNotFound, "no route "+key)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	a.addr = strings.TrimPrefix(srv.URL, "http://")
	return a
}

// route sets the handler of "METHOD /path".
func (a *jobAPI) route(key string, h http.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.routes[key] = h
}

// all returns every call so far.
func (a *jobAPI) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// called returns the calls whose "METHOD /path" is key.
func (a *jobAPI) called(key string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, c := range a.calls {
		if c == key || strings.HasPrefix(c, key+"?") {
			out = append(out, c)
		}
	}
	return out
}

func (a *jobAPI) body(key string) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bodies[key]
}

// answer answers v as JSON.
func answer(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func answerErr(status int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { api.WriteError(w, status, msg) }
}

// inTurn answers the jobs one per call, the last one from then on.
func inTurn(jobs ...api.Job) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		j := jobs[min(i, len(jobs)-1)]
		i++
		mu.Unlock()
		answer(j)(w, r)
	}
}

func depl(v uint64, status string, healthy, desired, placed int) *api.Deployment {
	return &api.Deployment{Version: v, Status: status, Healthy: healthy, Desired: desired, Placed: placed, StartedAt: time.Unix(1700000000, 0)}
}

func jobAt(v uint64, d *api.Deployment) api.Job {
	return api.Job{Name: "web", Status: api.JobRunning, Version: v, Count: 3, Deployment: d,
		Instances: map[string]int{api.StateRunning: 3}, Health: map[string]int{api.HealthHealthy: 3}}
}

func revertOf(d *api.Deployment, of uint64) *api.Deployment {
	d.RevertOf = &of
	return d
}

// fastPoll makes job run look at the job every few milliseconds.
func fastPoll(t *testing.T) {
	oldPoll, oldWait := jobPollInterval, deploymentAppearWait
	jobPollInterval, deploymentAppearWait = 5*time.Millisecond, 500*time.Millisecond
	t.Cleanup(func() { jobPollInterval, deploymentAppearWait = oldPoll, oldWait })
}

const webJobFile = `{"job": {"web": {"count": 3, "command": "sleep", "args": ["600"], "env": {"GREETING": "bonjour"}}}}`

func writeJobFile(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web.json")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// version2 is the answer to a run that made version 2, changing the env.
func version2() api.JobRunResponse {
	return api.JobRunResponse{Name: "web", Version: 2, Count: 3, Plan: api.JobPlan{Name: "web", Changes: true, Version: 2, NewVersion: true,
		CountFrom: 3, CountTo: 3, Replace: 3, Diff: []api.FieldDiff{{Op: "~", Field: "env.GREETING", Old: `"hello"`, New: `"bonjour"`}}}}
}

// runJobCmd runs a job subcommand against the fake and returns its exit
// code and output.
func runJobCmd(t *testing.T, a *jobAPI, args ...string) (int, string, string) {
	t.Helper()
	var code int
	full := append([]string{args[0], "--addr", a.addr, "--timeout", "2s"}, args[1:]...)
	out, errOut := capture(t, func() { code = runJob(full) })
	return code, out, errOut
}

// wantInOrder fails unless every line is in out, in this order.
func wantInOrder(t *testing.T, out string, lines ...string) {
	t.Helper()
	rest := out
	for _, l := range lines {
		i := strings.Index(rest, l+"\n")
		if i < 0 {
			t.Fatalf("output lacks %q (in order):\n%s", l, out)
		}
		rest = rest[i+len(l):]
	}
}

func TestJobRunFollowsToSuccess(t *testing.T) {
	fastPoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /jobs": answer(version2()),
		"GET /jobs/web": inTurn(
			jobAt(1, depl(1, api.DeploymentSuccessful, 3, 3, 3)), // the deployment of 2 not there yet
			jobAt(2, depl(2, api.DeploymentRunning, 0, 3, 1)),
			jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)),
			jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)),
			jobAt(2, depl(2, api.DeploymentSuccessful, 3, 3, 3))),
	})
	code, out, errOut := runJobCmd(t, a, "run", "--var", "greeting=bonjour", writeJobFile(t, webJobFile))
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	wantInOrder(t, out,
		"job web: version 2 (env.GREETING changed), count 3",
		"deployment of version 2: 0/3 healthy, 1 placed",
		"deployment of version 2: 1/3 healthy, 2 placed",
		"deployment of version 2: successful (3/3 healthy)")
	if strings.Count(out, "1/3 healthy, 2 placed") != 1 {
		t.Errorf("an unchanged state printed twice:\n%s", out)
	}
	// The file goes to POST /jobs as the flat job.
	var spec api.JobSpec
	if err := json.Unmarshal(a.body("POST /jobs"), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "web" || spec.CountOr() != 3 || spec.Command != "sleep" || spec.Env["GREETING"] != "bonjour" {
		t.Fatalf("posted %s", a.body("POST /jobs"))
	}
}

// A failed, cancelled or reverted deployment exits 1; a reverted one is
// followed through the revert's own rollout, whether run saw the reverted
// status or only the revert that followed it.
func TestJobRunFailedCancelledReverted(t *testing.T) {
	failed := depl(2, api.DeploymentFailed, 1, 3, 3)
	failed.Description = "workload_1_4 not healthy within healthy_deadline 1m"
	history := api.JobVersions{Name: "web", Versions: []api.JobVersion{
		{Version: 3, RevertOf: new(uint64(1)), Deployment: api.DeploymentSuccessful, Stable: true},
		{Version: 2, Deployment: api.DeploymentReverted},
		{Version: 1, Deployment: api.DeploymentSuccessful, Stable: true},
	}}
	revertLines := []string{
		"job web went back to version 1, rolled out as version 3",
		"deployment of version 3 (revert to 1): 1/3 healthy, 3 placed",
		"deployment of version 3 (revert to 1): successful (3/3 healthy)",
	}
	cases := []struct {
		name     string
		jobs     []api.Job
		versions api.JobVersions
		want     []string
	}{
		{"failed", []api.Job{jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)), jobAt(2, failed)}, history,
			[]string{"deployment of version 2: 1/3 healthy, 2 placed", "deployment of version 2: failed (1/3 healthy): workload_1_4 not healthy within healthy_deadline 1m"}},
		{"cancelled", []api.Job{jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)), jobAt(3, depl(2, api.DeploymentCancelled, 1, 3, 2))}, history,
			[]string{"deployment of version 2: cancelled (1/3 healthy)", "job web: version 3 replaced version 2"}},
		{"reverted, seen", []api.Job{
			jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)),
			jobAt(2, depl(2, api.DeploymentReverted, 1, 3, 3)),
			jobAt(3, revertOf(depl(3, api.DeploymentRunning, 1, 3, 3), 1)),
			jobAt(3, revertOf(depl(3, api.DeploymentSuccessful, 3, 3, 3), 1))}, history,
			append([]string{"deployment of version 2: reverted (1/3 healthy)"}, revertLines...)},
		{"reverted between two looks", []api.Job{
			jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)),
			jobAt(3, revertOf(depl(3, api.DeploymentRunning, 1, 3, 3), 1)),
			jobAt(3, revertOf(depl(3, api.DeploymentSuccessful, 3, 3, 3), 1))}, history,
			append([]string{"deployment of version 2: reverted"}, revertLines...)},
		{"replaced between two looks", []api.Job{
			jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)),
			jobAt(3, depl(3, api.DeploymentRunning, 0, 3, 1))},
			api.JobVersions{Versions: []api.JobVersion{{Version: 3, Deployment: api.DeploymentRunning}, {Version: 2, Deployment: api.DeploymentCancelled}}},
			[]string{"deployment of version 2: cancelled; job web is at version 3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fastPoll(t)
			a := newJobAPI(t, map[string]http.HandlerFunc{
				"POST /jobs":             answer(version2()),
				"GET /jobs/web":          inTurn(tc.jobs...),
				"GET /jobs/web/versions": answer(tc.versions),
			})
			code, out, errOut := runJobCmd(t, a, "run", writeJobFile(t, webJobFile))
			if code != exitFail {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			wantInOrder(t, out, tc.want...)
			if n := len(a.called("POST /jobs/web/revert")) + len(a.called("DELETE /jobs/web")); n != 0 {
				t.Fatalf("run touched the job: %v", a.all())
			}
		})
	}
}

// With --json, stdout is the final job alone; the progress goes to stderr.
func TestJobRunJSON(t *testing.T) {
	fastPoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /jobs":    answer(version2()),
		"GET /jobs/web": inTurn(jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)), jobAt(2, depl(2, api.DeploymentSuccessful, 3, 3, 3))),
	})
	code, out, errOut := runJobCmd(t, a, "run", "--json", writeJobFile(t, webJobFile))
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var j api.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("stdout is not a job: %v\n%s", err, out)
	}
	if j.Version != 2 || j.Deployment == nil || j.Deployment.Status != api.DeploymentSuccessful {
		t.Fatalf("final job %+v", j)
	}
	wantInOrder(t, errOut, "job web: version 2 (env.GREETING changed), count 3", "deployment of version 2: successful (3/3 healthy)")
}

// --detach submits and returns: no look at the deployment.
func TestJobRunDetach(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{"POST /jobs": answer(version2())})
	path := writeJobFile(t, webJobFile)
	code, out, errOut := runJobCmd(t, a, "run", "--detach", "--json", path)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var resp api.JobRunResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Version != 2 || resp.Plan.Diff[0].Field != "env.GREETING" {
		t.Fatalf("stdout %v %+v\n%s", err, resp, out)
	}
	code, out, _ = runJobCmd(t, a, "run", "--detach", path)
	if code != exitOK || !strings.Contains(out, "job web: version 2 (env.GREETING changed), count 3\nnot following the deployment") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if got := a.called("GET /jobs/web"); len(got) != 0 {
		t.Fatalf("--detach followed: %v", got)
	}
}

// A run that changes nothing says so and exits 0; one that only changes
// the count, or leaves nothing to place, may have no rollout to follow.
func TestJobRunWithoutARollout(t *testing.T) {
	unchanged := api.JobRunResponse{Name: "web", Version: 1, Count: 3, Plan: api.JobPlan{Name: "web", Version: 1, CountFrom: 3, CountTo: 3}}
	scaled := api.JobRunResponse{Name: "web", Version: 1, Count: 5, Plan: api.JobPlan{Name: "web", Changes: true, Version: 1, CountFrom: 3, CountTo: 5, Create: 2}}
	toZero := api.JobRunResponse{Name: "web", Version: 2, Count: 0, Plan: api.JobPlan{Name: "web", Changes: true, Version: 2, NewVersion: true, CountFrom: 3, CountTo: 0, Stop: 3,
		Diff: []api.FieldDiff{{Op: "~", Field: "command", Old: `"sleep"`, New: `"true"`}}}}
	cases := []struct {
		name string
		resp api.JobRunResponse
		jobs []api.Job
		want []string
	}{
		{"unchanged", unchanged, nil, []string{"job web is unchanged at version 1"}},
		{"count only", scaled, []api.Job{jobAt(1, depl(1, api.DeploymentSuccessful, 3, 3, 3))},
			[]string{"job web: version 1 (spec unchanged), count 3 => 5", "job web: no rollout to follow; count 3: 3 running (3 healthy)"}},
		{"count only, no deployment", scaled, []api.Job{jobAt(1, nil)}, []string{"job web: no rollout to follow; count 3: 3 running (3 healthy)"}},
		{"count only, rollout under way", scaled, []api.Job{jobAt(1, depl(1, api.DeploymentRunning, 3, 5, 4)), jobAt(1, depl(1, api.DeploymentSuccessful, 5, 5, 5))},
			[]string{"deployment of version 1: 3/5 healthy, 4 placed", "deployment of version 1: successful (5/5 healthy)"}},
		{"to 0, no deployment", toZero, []api.Job{{Name: "web", Status: api.JobRunning, Version: 2, Deployment: depl(1, api.DeploymentSuccessful, 3, 3, 3)}},
			[]string{"job web: version 2 (command changed), count 3 => 0", "job web: nothing to roll out; count 0, no instances"}},
		{"to 0, at once successful", toZero, []api.Job{jobAt(2, depl(2, api.DeploymentSuccessful, 0, 0, 0))},
			[]string{"deployment of version 2: successful (0/0 healthy)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fastPoll(t)
			routes := map[string]http.HandlerFunc{"POST /jobs": answer(tc.resp)}
			if tc.jobs != nil {
				routes["GET /jobs/web"] = inTurn(tc.jobs...)
			}
			a := newJobAPI(t, routes)
			code, out, errOut := runJobCmd(t, a, "run", writeJobFile(t, webJobFile))
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			wantInOrder(t, out, tc.want...)
		})
	}
}

// A bad job file is a usage error that names the file; nothing is sent.
func TestJobRunBadFile(t *testing.T) {
	a := newJobAPI(t, nil)
	bad := writeJobFile(t, `{"job": {"web": {"count": "three"}}}`)
	missing := filepath.Join(t.TempDir(), "nosuch.hcl")
	for _, sub := range []string{"run", "plan"} {
		for _, path := range []string{bad, missing} {
			code, _, errOut := runJobCmd(t, a, sub, path)
			if code != exitUsage || !strings.Contains(errOut, "scheduler job "+sub+": ") || !strings.Contains(errOut, path) {
				t.Errorf("%s %s: exit %d, %q", sub, path, code, errOut)
			}
		}
	}
	if calls := a.all(); len(calls) != 0 {
		t.Fatalf("calls with a bad file: %v", calls)
	}
}

// Ctrl-C stops following and leaves the job alone.
func TestJobRunInterruptLeavesTheJob(t *testing.T) {
	fastPoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{"GET /jobs/web": answer(jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)))})
	f := &follower{c: testClient(2*time.Second, a.addr), name: "web", out: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var code int
	_, errOut := capture(t, func() { code = f.follow(ctx, version2()) })
	if code != exitFail || !strings.Contains(errOut, "interrupted: stopped following; the job is left as it is (version 2)") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	for _, c := range a.all() {
		if c != "GET /jobs/web" {
			t.Fatalf("call %q while following", c)
		}
	}
}

// Following goes through the other replicas when one stops answering for
// the leader, as every command does.
func TestJobRunFollowsTheReplicas(t *testing.T) {
	fastPoll(t)
	gone := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /jobs":    answer(version2()),
		"GET /jobs/web": answerErr(http.StatusServiceUnavailable, "no leader elected yet; retry"),
	})
	other := newJobAPI(t, map[string]http.HandlerFunc{
		"GET /jobs/web": inTurn(jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2)), jobAt(2, depl(2, api.DeploymentSuccessful, 3, 3, 3))),
	})
	var code int
	out, errOut := capture(t, func() {
		code = runJob([]string{"run", "--addr", gone.addr + "," + other.addr, "--timeout", "2s", writeJobFile(t, webJobFile)})
	})
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	wantInOrder(t, out, "deployment of version 2: successful (3/3 healthy)")
	if len(other.called("GET /jobs/web")) < 2 {
		t.Fatalf("the other replica was not asked: %v", other.all())
	}
}

func TestJobPlanExitCodes(t *testing.T) {
	changes := api.JobPlan{Name: "web", Changes: true, Version: 2, NewVersion: true, CountFrom: 3, CountTo: 5, Create: 1, Replace: 3,
		Diff: []api.FieldDiff{{Op: "~", Field: "env.GREETING", Old: `"hello"`, New: `"bonjour"`}, {Op: "+", Field: "ports", New: `["http"]`}, {Op: "-", Field: "exclusive", Old: "true"}}}
	a := newJobAPI(t, map[string]http.HandlerFunc{"POST /jobs": answer(changes)})
	path := writeJobFile(t, webJobFile)
	code, out, errOut := runJobCmd(t, a, "plan", path)
	if code != exitFail {
		t.Fatalf("changes: exit %d, want 1\n%s%s", code, out, errOut)
	}
	want := `~ job "web"
  ~ env.GREETING: "hello" => "bonjour"
  + ports: ["http"]
  - exclusive: true

count: 3 => 5
instances: 1 to create, 3 to replace, 0 in place, 0 to stop
version: 1 => 2
`
	if out != want {
		t.Fatalf("plan output:\n%s\nwant:\n%s", out, want)
	}
	if got := a.called("POST /jobs"); !slices.Equal(got, []string{"POST /jobs?plan=true"}) {
		t.Fatalf("calls %v", got)
	}

	a.route("POST /jobs", answer(api.JobPlan{Name: "web", Version: 2, CountFrom: 3, CountTo: 3, CountNote: "5 kept from a scale; the file says 3"}))
	code, out, _ = runJobCmd(t, a, "plan", path)
	if code != exitOK || !strings.Contains(out, `  job "web" (no changes)`) || !strings.Contains(out, "count: 3 (5 kept from a scale; the file says 3)\n") || !strings.Contains(out, "version: 2 (unchanged)\n") {
		t.Fatalf("no changes: exit %d\n%s", code, out)
	}

	a.route("POST /jobs", answer(api.JobPlan{Name: "web", New: true, Changes: true, NewVersion: true, CountTo: 3, Create: 3,
		Diff: []api.FieldDiff{{Op: "+", Field: "command", New: `"sleep"`}}}))
	code, out, _ = runJobCmd(t, a, "plan", "--json", path)
	var plan api.JobPlan
	if err := json.Unmarshal([]byte(out), &plan); code != exitFail || err != nil || !plan.New || plan.Create != 3 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = runJobCmd(t, a, "plan", path)
	if code != exitFail || !strings.HasPrefix(out, "+ job \"web\" (new)\n  + command: \"sleep\"\n") || !strings.Contains(out, "version: 0 (new)\n") {
		t.Fatalf("new job: exit %d\n%s", code, out)
	}

	// A failed call is 2, like any error: 1 means changes.
	a.route("POST /jobs", answerErr(http.StatusBadRequest, "update.max_parallel: 0: want 1 to 1000"))
	code, _, errOut = runJobCmd(t, a, "plan", path)
	if code != exitUsage || !strings.Contains(errOut, "update.max_parallel: 0: want 1 to 1000") {
		t.Fatalf("400: exit %d, %q", code, errOut)
	}
	code, _, _ = runJobCmd(t, a, "plan")
	if code != exitUsage {
		t.Fatalf("no file: exit %d", code)
	}
}

// scale checks the count before any call; the server's 404 and 409 exit 1
// with its message.
func TestJobScale(t *testing.T) {
	a := newJobAPI(t, nil)
	for _, n := range []string{"-1", "1001", "three"} {
		code, _, errOut := runJobCmd(t, a, "scale", "web", n)
		if code != exitUsage || !strings.Contains(errOut, "from 0 to 1000") {
			t.Errorf("scale web %s: exit %d, %q", n, code, errOut)
		}
	}
	if code, _, _ := runJobCmd(t, a, "scale", "Not_A_Name", "3"); code != exitUsage {
		t.Errorf("a name that is no DNS label: exit %d", code)
	}
	if calls := a.all(); len(calls) != 0 {
		t.Fatalf("calls %v", calls)
	}

	a.route("POST /jobs/nosuch/scale", answerErr(http.StatusNotFound, `job "nosuch" not found`))
	a.route("POST /jobs/stopped/scale", answerErr(http.StatusConflict, `job "stopped" is stopped: run it again first`))
	a.route("POST /jobs/web/scale", answer(api.Job{Name: "web", Status: api.JobRunning, Version: 2, Count: 5}))
	for name, msg := range map[string]string{"nosuch": `job "nosuch" not found`, "stopped": `job "stopped" is stopped`} {
		code, _, errOut := runJobCmd(t, a, "scale", name, "5")
		if code != exitFail || !strings.Contains(errOut, msg) {
			t.Errorf("scale %s: exit %d, %q", name, code, errOut)
		}
	}
	code, out, _ := runJobCmd(t, a, "scale", "--json", "web", "5")
	var j api.Job
	if err := json.Unmarshal([]byte(out), &j); code != exitOK || err != nil || j.Count != 5 {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if b := string(a.body("POST /jobs/web/scale")); strings.TrimSpace(b) != `{"count":5}` {
		t.Fatalf("body %s", b)
	}
	code, out, _ = runJobCmd(t, a, "scale", "web", "0")
	if code != exitOK || out != "job web: count 5 (version 2 unchanged)\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
}

func TestJobRevert(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /jobs/web/revert": func(w http.ResponseWriter, r *http.Request) {
			var req api.JobRevertRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			switch {
			case req.Version == nil:
				api.WriteError(w, http.StatusBadRequest, "version missing")
			case *req.Version == 2:
				api.WriteError(w, http.StatusConflict, "version 2 is the current version")
			case *req.Version == 9:
				api.WriteError(w, http.StatusNotFound, `job "web" has no version 9`)
			default:
				answer(api.JobRunResponse{Name: "web", Version: 3, Count: 3, Plan: api.JobPlan{Changes: true, NewVersion: true, Version: 3}})(w, r)
			}
		},
	})
	for v, msg := range map[string]string{"2": "version 2 is the current version", "9": `job "web" has no version 9`} {
		code, _, errOut := runJobCmd(t, a, "revert", "web", v)
		if code != exitFail || !strings.Contains(errOut, msg) {
			t.Errorf("revert web %s: exit %d, %q", v, code, errOut)
		}
	}
	if code, _, _ := runJobCmd(t, a, "revert", "web", "-1"); code != exitUsage {
		t.Errorf("revert to -1: exit %d", code)
	}
	code, out, _ := runJobCmd(t, a, "revert", "web", "1")
	if code != exitOK || !strings.Contains(out, "job web: back to version 1, rolled out as version 3, count 3\n") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = runJobCmd(t, a, "revert", "--json", "web", "1")
	var resp api.JobRunResponse
	if err := json.Unmarshal([]byte(out), &resp); code != exitOK || err != nil || resp.Version != 3 {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
}

func TestJobStatus(t *testing.T) {
	v2 := uint64(2)
	web := jobAt(2, depl(2, api.DeploymentRunning, 1, 3, 2))
	web.Spec = api.JobSpec{Name: "web", Command: "sleep", Args: []string{"600"}}
	web.Instances = map[string]int{api.StateRunning: 3, api.StateStopped: 1}
	web.Health = map[string]int{api.HealthHealthy: 1, api.HealthUnknown: 2}
	web.Deployment.Description = "waiting for workload_1_5 to be healthy"
	db := api.Job{Name: "db", Status: api.JobStopped, Version: 0, Count: 1}
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"GET /jobs":        answer(api.JobList{Jobs: []api.Job{web, db}}),
		"GET /jobs/web":    answer(web),
		"GET /jobs/nosuch": answerErr(http.StatusNotFound, `job "nosuch" not found`),
		"GET /workloads": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("job") != "web" {
				api.WriteError(w, http.StatusBadRequest, "want job=web")
				return
			}
			answer(api.WorkloadList{Workloads: []api.Workload{
				{ID: "workload_1_5", Node: "n1", State: api.StateRunning, Health: api.HealthHealthy, Restarts: 1, Job: "web", JobVersion: &v2},
				{ID: "workload_1_2", State: api.StatePending, Job: "web"},
			}})(w, r)
		},
	})
	code, out, _ := runJobCmd(t, a, "status")
	lines := strings.Split(out, "\n")
	if code != exitOK || !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "STATUS", "VERSION", "COUNT", "RUNNING", "HEALTHY", "DEPLOYMENT"}) ||
		!slices.Equal(strings.Fields(lines[1]), []string{"web", "running", "2", "3", "3", "1", "running", "(1/3)"}) ||
		!slices.Equal(strings.Fields(lines[2]), []string{"db", "stopped", "0", "1", "0", "0", "-"}) {
		t.Fatalf("exit %d\n%s", code, out)
	}

	code, out, _ = runJobCmd(t, a, "status", "web")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for label, want := range map[string]string{
		"Status:":     "running",
		"Version:":    "2",
		"Count:":      "3",
		"Command:":    "sleep 600",
		"Instances:":  "3 running, 1 stopped",
		"Health:":     "1 healthy, 2 unknown",
		"Deployment:": "version 2 running: 1/3 healthy, 2 placed",
	} {
		if got := rowOf(out, label); got != want {
			t.Errorf("%s %q, want %q\n%s", label, got, want, out)
		}
	}
	if !strings.Contains(out, "waiting for workload_1_5 to be healthy") {
		t.Errorf("no description:\n%s", out)
	}
	var table []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ID ") || strings.HasPrefix(l, "workload_") {
			table = append(table, strings.Join(strings.Fields(l), " "))
		}
	}
	if !slices.Equal(table, []string{"ID VERSION NODE STATE HEALTH RESTARTS", "workload_1_5 2 n1 running healthy 1", "workload_1_2 - - pending unknown 0"}) {
		t.Errorf("instances %q\n%s", table, out)
	}

	code, out, _ = runJobCmd(t, a, "status", "--json", "web")
	var j struct {
		api.Job
		Workloads []api.Workload `json:"workloads"`
	}
	if err := json.Unmarshal([]byte(out), &j); code != exitOK || err != nil || j.Version != 2 || j.Deployment.Healthy != 1 || len(j.Workloads) != 2 {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = runJobCmd(t, a, "status", "--json")
	var list api.JobList
	if err := json.Unmarshal([]byte(out), &list); code != exitOK || err != nil || len(list.Jobs) != 2 {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	code, _, errOut := runJobCmd(t, a, "status", "nosuch")
	if code != exitFail || !strings.Contains(errOut, `job "nosuch" not found`) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestJobHistoryAndStop(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"GET /jobs/web/versions": answer(api.JobVersions{Name: "web", Versions: []api.JobVersion{
			{Version: 2, SubmittedAt: at, RevertOf: new(uint64(0)), Deployment: api.DeploymentRunning},
			{Version: 1, SubmittedAt: at, Deployment: api.DeploymentFailed},
			{Version: 0, SubmittedAt: at, Deployment: api.DeploymentSuccessful, Stable: true},
		}}),
		"DELETE /jobs/web": answer(api.Job{Name: "web", Status: api.JobStopped, Version: 2, Count: 3}),
	})
	code, out, _ := runJobCmd(t, a, "history", "web")
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"VERSION SUBMITTED DEPLOYMENT STABLE NOTE",
		"2 2025-01-02 03:04:05 running no current, revert of 0",
		"1 2025-01-02 03:04:05 failed no -",
		"0 2025-01-02 03:04:05 successful yes -",
	}
	if code != exitOK || !slices.Equal(rows, want) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = runJobCmd(t, a, "history", "--json", "web")
	var vs api.JobVersions
	if err := json.Unmarshal([]byte(out), &vs); code != exitOK || err != nil || len(vs.Versions) != 3 || *vs.Versions[0].RevertOf != 0 {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}

	code, out, _ = runJobCmd(t, a, "stop", "web")
	if code != exitOK || out != "job web: stopped at version 2; its instances are being stopped\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
	code, out, _ = runJobCmd(t, a, "stop", "--json", "web")
	var j api.Job
	if err := json.Unmarshal([]byte(out), &j); code != exitOK || err != nil || j.Status != api.JobStopped {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	code, _, errOut := runJobCmd(t, a, "stop", "db")
	if code != exitFail || !strings.Contains(errOut, "no route DELETE /jobs/db") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

// job alone or job help lists the subcommands; each has its -h.
func TestJobHelp(t *testing.T) {
	var code int
	_, errOut := capture(t, func() { code = runJob(nil) })
	if code != exitUsage || !strings.Contains(errOut, "Subcommands:") || !strings.Contains(errOut, "  revert NAME VERSION") {
		t.Fatalf("job: exit %d\n%s", code, errOut)
	}
	out, _ := capture(t, func() { code = runJob([]string{"help"}) })
	if code != exitOK || !strings.Contains(out, "  run [--var NAME=VALUE]... [--detach] FILE") {
		t.Fatalf("job help: exit %d\n%s", code, out)
	}
	_, errOut = capture(t, func() { code = runJob([]string{"nosuch"}) })
	if code != exitUsage || !strings.Contains(errOut, `unknown subcommand "nosuch"`) {
		t.Fatalf("job nosuch: exit %d\n%s", code, errOut)
	}
	for _, c := range jobCommands() {
		out, _ := capture(t, func() { code = runJob([]string{"help", c.name}) })
		for _, want := range []string{"Usage: scheduler job " + c.name, "Flags:", "-json", "Example", "  scheduler job " + c.name} {
			if code != exitOK || !strings.Contains(out, want) {
				t.Errorf("job help %s: exit %d, lacks %q\n%s", c.name, code, want, out)
			}
		}
	}
	out, _ = capture(t, func() { runComplete([]string{"flags", "job", "run"}) })
	if !strings.Contains(out, "--var\n") || !strings.Contains(out, "--detach\n") {
		t.Errorf("flags of job run:\n%s", out)
	}
	out, _ = capture(t, func() { runComplete([]string{"job-commands"}) })
	if out != "run\nplan\nstatus\nscale\nhistory\nrevert\nstop\nhelp\n" {
		t.Errorf("job-commands: %q", out)
	}
}
