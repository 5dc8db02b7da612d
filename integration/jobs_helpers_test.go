package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// The helpers of TestJobs: the job it runs, calls of the /jobs API through
// whichever replica is alive, waits for deployments and instances, and a
// sampler of the instances that truly serve.

// jtName is the name of the job TestJobs runs.
const jtName = "web"

// jtServe is the shell line of the job's instances: an HTTP server on the
// port the agent hands out.
const jtServe = `exec python3 -m http.server "$MO_PORT_HTTP" --bind 127.0.0.1`

// jtSpec is the job file of TestJobs: count 3 instances of an HTTP server
// with a check, GREETING in their environment, replaced one at a time.
func jtSpec(greeting string) api.JobSpec {
	count, par := 3, 1
	return api.JobSpec{
		Name:    jtName,
		Count:   &count,
		Command: "sh",
		Args:    []string{"-c", jtServe},
		Env:     map[string]string{"GREETING": greeting},
		Spec: api.Spec{
			Ports: []string{"http"},
			Check: &api.Check{Type: api.CheckHTTP, Port: "http",
				Interval: api.Duration(500 * time.Millisecond), Timeout: api.Duration(400 * time.Millisecond)},
		},
		Update: &api.UpdateStrategy{MaxParallel: &par, MinHealthyTime: api.Duration(time.Second),
			HealthyDeadline: api.Duration(30 * time.Second), AutoRevert: true},
	}
}

// jobsEnv is the cluster of TestJobs and what its steps share.
type jobsEnv struct {
	tc    *testCluster
	probe *http.Client // plain HTTP to the instances, a short timeout (1s: the machine may be busy)
}

func newJobsEnv(tc *testCluster) *jobsEnv {
	return &jobsEnv{tc: tc, probe: &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do makes an API call through the first live replica that answers
// (callAny).
func (e *jobsEnv) do(method, path string, body any) (int, []byte, error) {
	return e.tc.callAny(method, path, body)
}

// must makes a call, fails the test unless it answers want, and decodes
// the answer into out (when not nil).
func (e *jobsEnv) must(t *testing.T, method, path string, body any, want int, out any) []byte {
	t.Helper()
	return e.tc.mustAny(t, method, path, body, want, out)
}

// getJSON GETs path through a live replica into out.
func (e *jobsEnv) getJSON(path string, out any) error {
	code, b, err := e.do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, b)
	}
	return json.Unmarshal(b, out)
}

func (e *jobsEnv) job(t *testing.T) api.Job {
	t.Helper()
	var j api.Job
	if err := e.getJSON("/jobs/"+jtName, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func (e *jobsEnv) versions(t *testing.T) api.JobVersions {
	t.Helper()
	var v api.JobVersions
	if err := e.getJSON("/jobs/"+jtName+"/versions", &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// instances lists every workload of the job, in any state.
func (e *jobsEnv) instances() ([]api.Workload, error) {
	var l api.WorkloadList
	err := e.getJSON("/workloads?job="+jtName, &l)
	return l.Workloads, err
}

func (e *jobsEnv) mustInstances(t *testing.T) []api.Workload {
	t.Helper()
	ws, err := e.instances()
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// jtLive reports whether a workload is pending, running or failed (being
// recovered): an instance the job still counts.
func jtLive(w api.Workload) bool {
	switch w.State {
	case api.StatePending, api.StateRunning, api.StateFailed:
		return true
	}
	return false
}

func jtVersion(w api.Workload) string {
	if w.JobVersion == nil {
		return "none"
	}
	return strconv.FormatUint(*w.JobVersion, 10)
}

func jtOfVersion(w api.Workload, v uint64) bool {
	return w.JobVersion != nil && *w.JobVersion == v
}

// jtDescribe is a one-line view of instances, for failure messages.
func jtDescribe(ws []api.Workload) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("%s v%s %s/%s node=%s pid=%d port=%d attempts=%d reason=%q",
			w.ID, jtVersion(w), w.State, w.Health, w.Node, w.PID, w.Ports["http"], w.Attempts, w.Reason))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, "; ")
}

// answers reports whether an HTTP server answers 200 on 127.0.0.1:port.
func (e *jobsEnv) answers(port int) bool {
	if port <= 0 {
		return false
	}
	resp, err := e.probe.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// servingNow reports whether an instance is running in the job's list with
// a live process and answers HTTP on its port.
func (e *jobsEnv) servingNow(w api.Workload) bool {
	return w.State == api.StateRunning && w.PID > 0 && pidAlive(w.PID) && e.answers(w.Ports["http"])
}

// jtEnviron reads a process's environment from /proc/PID/environ.
func jtEnviron(pid int) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out, nil
}

// jtCheckGreeting fails the test unless every listed instance's process has
// GREETING=want in its environment.
func jtCheckGreeting(t *testing.T, ws []api.Workload, want string) {
	t.Helper()
	for _, w := range ws {
		env, err := jtEnviron(w.PID)
		if err != nil {
			t.Fatalf("instance %s (pid %d): reading its environment: %v", w.ID, w.PID, err)
		}
		if got := env["GREETING"]; got != want {
			t.Fatalf("instance %s (pid %d, version %s) has GREETING=%q in its environment; want %q", w.ID, w.PID, jtVersion(w), got, want)
		}
		if env["MO_PORT_HTTP"] != strconv.Itoa(w.Ports["http"]) {
			t.Fatalf("instance %s (pid %d) has MO_PORT_HTTP=%q, its port is %d: is the pid the process the agent started?", w.ID, w.PID, env["MO_PORT_HTTP"], w.Ports["http"])
		}
	}
}

// waitSettled waits until the job has exactly n live instances, every one
// running with a live process, healthy, answering HTTP and of version v,
// and returns them.
func (e *jobsEnv) waitSettled(t *testing.T, n int, v uint64, d time.Duration) []api.Workload {
	t.Helper()
	var ws, running []api.Workload
	deadline := time.Now().Add(d)
	for {
		var err error
		ws, err = e.instances()
		if err == nil {
			running = running[:0]
			ok := true
			for _, w := range ws {
				if !jtLive(w) {
					continue
				}
				if w.State != api.StateRunning || w.Health != api.HealthHealthy || !jtOfVersion(w, v) || !e.servingNow(w) {
					ok = false
					break
				}
				running = append(running, w)
			}
			if ok && len(running) == n {
				return running
			}
		}
		if time.Now().After(deadline) {
			var live []api.Workload
			for _, w := range ws {
				if jtLive(w) {
					live = append(live, w)
				}
			}
			t.Fatalf("timed out after %s waiting for %d healthy instances of version %d answering HTTP; live instances: %s (error %v)", d, n, v, jtDescribe(live), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jtWaitGone waits until none of the given pids is alive.
func jtWaitGone(t *testing.T, d time.Duration, what string, pids []int) {
	t.Helper()
	waitFor(t, d, what, func() bool {
		for _, p := range pids {
			if pidAlive(p) {
				return false
			}
		}
		return true
	})
}

// jtPIDs returns the pids of instances with one.
func jtPIDs(ws []api.Workload) []int {
	var out []int
	for _, w := range ws {
		if w.PID > 0 {
			out = append(out, w.PID)
		}
	}
	return out
}

// jtFindVersion returns version v from the job's history.
func jtFindVersion(vs api.JobVersions, v uint64) (api.JobVersion, bool) {
	for _, x := range vs.Versions {
		if x.Version == v {
			return x, true
		}
	}
	return api.JobVersion{}, false
}

// waitVersion waits until version v's deployment, as the history shows it,
// is status, failing at once if it ends otherwise.
func (e *jobsEnv) waitVersion(t *testing.T, v uint64, status string, d time.Duration) api.JobVersion {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var vs api.JobVersions
		if err := e.getJSON("/jobs/"+jtName+"/versions", &vs); err == nil {
			if x, ok := jtFindVersion(vs, v); ok {
				switch x.Deployment {
				case status:
					return x
				case api.DeploymentRunning, "":
				default:
					var j api.Job
					_ = e.getJSON("/jobs/"+jtName, &j)
					ws, _ := e.instances()
					t.Fatalf("the deployment of version %d ended %s, want %s; job deployment %+v; instances: %s", v, x.Deployment, status, j.Deployment, jtDescribe(ws))
				}
			}
		}
		if time.Now().After(deadline) {
			var j api.Job
			_ = e.getJSON("/jobs/"+jtName, &j)
			ws, _ := e.instances()
			t.Fatalf("timed out after %s waiting for the deployment of version %d to be %s; job deployment %+v; instances: %s", d, v, status, j.Deployment, jtDescribe(ws))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthySampler counts, every 100 ms, the job's instances that truly
// serve: running in GET /workloads?job=web, with a live process, answering
// HTTP 200 on their port, and matching want. It keeps the minimum.
type healthySampler struct {
	e    *jobsEnv
	want func(api.Workload) bool
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	samples int
	failed  int // list calls that failed (not counted as samples)
	min     int
	minAt   time.Time
	minSeen string
}

func (e *jobsEnv) startSampler(t *testing.T, want func(api.Workload) bool) *healthySampler {
	s := &healthySampler{e: e, want: want, stop: make(chan struct{}), done: make(chan struct{}), min: -1}
	go s.run()
	t.Cleanup(func() { s.finish() })
	return s
}

func (s *healthySampler) run() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ws, err := s.e.instances()
		if err != nil {
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
		} else {
			n := 0
			var seen []string
			for _, w := range ws {
				if w.State != api.StateRunning || (s.want != nil && !s.want(w)) {
					continue
				}
				ok := s.e.servingNow(w)
				if ok {
					n++
				}
				seen = append(seen, fmt.Sprintf("%s v%s health=%s serving=%v", w.ID, jtVersion(w), w.Health, ok))
			}
			s.mu.Lock()
			s.samples++
			if s.min < 0 || n < s.min {
				s.min, s.minAt, s.minSeen = n, time.Now(), strings.Join(seen, "; ")
			}
			s.mu.Unlock()
		}
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// finish stops the sampler (once) and waits for it.
func (s *healthySampler) finish() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// result stops the sampler and returns the samples taken and the minimum.
func (s *healthySampler) result() (samples, minimum int, detail string) {
	s.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.min, fmt.Sprintf("at %s: %s (%d list calls failed)", s.minAt.Format("15:04:05.000"), s.minSeen, s.failed)
}

// jtNodes returns the sorted distinct nodes of instances.
func jtNodes(ws []api.Workload) []string {
	var out []string
	for _, w := range ws {
		if !slices.Contains(out, w.Node) {
			out = append(out, w.Node)
		}
	}
	sort.Strings(out)
	return out
}

// jtCheckSpread fails the test unless instances are spread over the 3
// nodes: none holds more than its share (n/3 rounded up).
func jtCheckSpread(t *testing.T, ws []api.Workload) {
	t.Helper()
	per := map[string]int{}
	for _, w := range ws {
		per[w.Node]++
	}
	share := (len(ws) + 2) / 3
	for node, k := range per {
		if k > share {
			t.Fatalf("%d of %d instances run on %s (want at most %d per node, spread over the 3): %s", k, len(ws), node, share, jtDescribe(ws))
		}
	}
}

// agentProcesses counts, from every live agent's own /status, the running
// processes of each of the job's workloads.
func (e *jobsEnv) agentProcesses(ids []string) map[string]int {
	inst := e.tc.runningInstances()
	out := map[string]int{}
	for _, id := range ids {
		if inst[id] > 0 {
			out[id] = inst[id]
		}
	}
	return out
}
