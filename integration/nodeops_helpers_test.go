package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// The helpers of TestNodeOps: calls of the API through whichever replica
// answers, views of nodes and workloads, polling with a last-seen detail,
// the instances the agents truly run, and a 100 ms sampler.

// nodeOpsEnv is the cluster of TestNodeOps and what its steps hand on to
// the next.
type nodeOpsEnv struct {
	tc *testCluster
	// drained is the node drained in the first step (ineligible after it).
	drained string
	// batch is the id of the batch workload that keeps a drain under way
	// in the second step.
	batch string
}

// call makes an API call through the live replicas in turn (callAny).
func (e *nodeOpsEnv) call(method, path string, body any) (int, []byte, error) {
	return e.tc.callAny(method, path, body)
}

// must makes a call, fails the test unless it answers want, and decodes
// the answer into out when out is not nil. It returns the body.
func (e *nodeOpsEnv) must(t *testing.T, method, path string, body any, want int, out any) []byte {
	t.Helper()
	return e.tc.mustAny(t, method, path, body, want, out)
}

// get GETs path into out.
func (e *nodeOpsEnv) get(path string, out any) error {
	code, b, err := e.call(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

func (e *nodeOpsEnv) node(t *testing.T, id string) api.Node {
	t.Helper()
	var n api.Node
	e.must(t, http.MethodGet, "/nodes/"+id, nil, http.StatusOK, &n)
	return n
}

func (e *nodeOpsEnv) nodes(t *testing.T) []api.Node {
	t.Helper()
	var l api.NodeList
	e.must(t, http.MethodGet, "/nodes", nil, http.StatusOK, &l)
	return l.Nodes
}

// workloads returns every workload by id.
func (e *nodeOpsEnv) workloads() (map[string]api.Workload, error) {
	var l api.WorkloadList
	if err := e.get("/workloads", &l); err != nil {
		return nil, err
	}
	out := make(map[string]api.Workload, len(l.Workloads))
	for _, w := range l.Workloads {
		out[w.ID] = w
	}
	return out, nil
}

func (e *nodeOpsEnv) mustWorkloads(t *testing.T) map[string]api.Workload {
	t.Helper()
	ws, err := e.workloads()
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// submit posts a workload and returns its ids.
func (e *nodeOpsEnv) submit(t *testing.T, req api.SubmitRequest) []string {
	t.Helper()
	var resp api.SubmitResponse
	e.must(t, http.MethodPost, "/workloads", req, http.StatusCreated, &resp)
	want := 1
	if req.Count != nil {
		want = *req.Count
	}
	if len(resp.IDs) != want {
		t.Fatalf("submission of %d %q answered %d ids", want, req.Name, len(resp.IDs))
	}
	return resp.IDs
}

// noSleepers is a submission of n workloads that sleep for 10 minutes.
func noSleepers(name string, n int) api.SubmitRequest {
	return api.SubmitRequest{Name: name, Command: "sleep", Args: []string{"600"}, Count: intp(n)}
}

// noHTTPServer is a submission of one HTTP server with an http check on
// its port, checked every 500 ms.
func noHTTPServer(name string) api.SubmitRequest {
	return api.SubmitRequest{Name: name, Command: testprog(), Args: []string{"http"}, Spec: api.Spec{
		Ports: []string{"http"},
		Check: &api.Check{Type: api.CheckHTTP, Port: "http",
			Interval: api.Duration(500 * time.Millisecond), Timeout: api.Duration(400 * time.Millisecond)},
	}}
}

// poll calls cond every 50 ms until it holds, and fails the test after d
// with what and cond's last detail.
func poll(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", d, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noUp reports whether a workload runs with a live process, and, when it
// has a check, is healthy.
func noUp(w api.Workload) bool {
	return w.State == api.StateRunning && w.PID > 0 && pidAlive(w.PID) && w.MoveFrom == nil &&
		(w.Spec.Check == nil || w.Health == api.HealthHealthy)
}

// waitUp waits until every listed workload is up (noUp) and returns them.
func (e *nodeOpsEnv) waitUp(t *testing.T, d time.Duration, ids []string) map[string]api.Workload {
	t.Helper()
	var ws map[string]api.Workload
	poll(t, d, fmt.Sprintf("%d workloads running", len(ids)), func() (bool, string) {
		var err error
		if ws, err = e.workloads(); err != nil {
			return false, err.Error()
		}
		var down []api.Workload
		for _, id := range ids {
			if w, ok := ws[id]; !ok || !noUp(w) {
				down = append(down, w)
			}
		}
		return len(down) == 0, "not up: " + noDescribe(down)
	})
	return ws
}

// noDescribe is a one-line view of workloads, for failure messages.
func noDescribe(ws []api.Workload) string {
	var parts []string
	for _, w := range ws {
		s := fmt.Sprintf("%s %s/%s node=%s gen=%d pid=%d", w.ID, w.State, w.Health, w.Node, w.Generation, w.PID)
		if m := w.MoveFrom; m != nil {
			s += fmt.Sprintf(" move_from=%s/gen %d/pid %d", m.Node, m.Generation, m.PID)
		}
		if w.Reason != "" {
			s += fmt.Sprintf(" reason=%q", w.Reason)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, "; ")
}

// noPick returns the listed workloads from ws, sorted by id.
func noPick(ws map[string]api.Workload, ids []string) []api.Workload {
	var out []api.Workload
	for _, id := range ids {
		if w, ok := ws[id]; ok {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// noOn returns the ids of the live workloads placed on node, sorted.
func noOn(ws map[string]api.Workload, node string) []string {
	var out []string
	for id, w := range ws {
		if w.Node == node && noLive(w) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// noLive reports whether a workload is pending, running or failed (being
// recovered).
func noLive(w api.Workload) bool {
	switch w.State {
	case api.StatePending, api.StateRunning, api.StateFailed:
		return true
	}
	return false
}

// noPerNode counts the live workloads of each node.
func noPerNode(ws map[string]api.Workload) map[string]int {
	out := map[string]int{}
	for _, w := range ws {
		if noLive(w) && w.Node != "" {
			out[w.Node]++
		}
	}
	return out
}

// noInstance is one instance an agent reports running with a live pid.
type noInstance struct {
	node string
	api.AgentWorkload
}

// instances returns the instances of the listed workloads (all of them
// when ids is nil) that the live agents report running with a live pid.
// The agent of node first is read first: a move stops its old instance
// only once the new one runs, so reading the old node before the others
// never misses both.
func (e *nodeOpsEnv) instances(first string, ids map[string]bool) ([]noInstance, error) {
	agents := slices.Clone(e.tc.agents)
	sort.SliceStable(agents, func(i, j int) bool { return agents[i].id == first && agents[j].id != first })
	var out []noInstance
	for _, a := range agents {
		if a.proc == nil || !a.proc.alive() {
			continue
		}
		st, err := e.tc.agentStatus(a)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %v", a.id, err)
		}
		for _, w := range st.Workloads {
			if w.State == api.InstanceRunning && (ids == nil || ids[w.ID]) && w.PID > 0 && pidAlive(w.PID) {
				out = append(out, noInstance{node: a.id, AgentWorkload: w})
			}
		}
	}
	return out, nil
}

// noSet is a set of ids.
func noSet(ids ...[]string) map[string]bool {
	out := map[string]bool{}
	for _, l := range ids {
		for _, id := range l {
			out[id] = true
		}
	}
	return out
}

// noPIDsGone reports whether none of pids is alive, and which are.
func noPIDsGone(pids []int) (bool, string) {
	var alive []string
	for _, p := range pids {
		if pidAlive(p) {
			alive = append(alive, fmt.Sprint(p))
		}
	}
	return len(alive) == 0, "alive: " + strings.Join(alive, ",")
}

// sampler calls count every 100 ms until stopped and keeps the fewest it
// saw, with the detail of that sample. A sample whose count fails is not
// counted.
type sampler struct {
	count func() (int, string, error)
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu       sync.Mutex
	samples  int
	failed   int
	lastErr  error
	fewest   int
	fewestAt time.Time
	detail   string
}

func startNodeSampler(t *testing.T, count func() (int, string, error)) *sampler {
	s := &sampler{count: count, stop: make(chan struct{}), done: make(chan struct{}), fewest: -1}
	go s.run()
	t.Cleanup(s.finish)
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		n, detail, err := s.count()
		s.mu.Lock()
		if err != nil {
			s.failed++
			s.lastErr = err
		} else {
			s.samples++
			if s.fewest < 0 || n < s.fewest {
				s.fewest, s.fewestAt, s.detail = n, time.Now(), detail
			}
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// finish stops the sampler (once) and waits for it.
func (s *sampler) finish() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// result stops the sampler and returns the samples counted, the fewest
// seen and a description of that sample.
func (s *sampler) result() (samples, fewest int, detail string) {
	s.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.fewest, fmt.Sprintf("at %s: %s (%d samples failed, last error %v)",
		s.fewestAt.Format("15:04:05.000"), s.detail, s.failed, s.lastErr)
}

// stateWorkloads returns the ids of the workloads in GET /state.
func (e *nodeOpsEnv) stateWorkloads() (map[string]bool, error) {
	var st struct {
		Workloads map[string]json.RawMessage `json:"workloads"`
	}
	if err := e.get("/state", &st); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for id := range st.Workloads {
		out[id] = true
	}
	return out, nil
}

// events returns the leader's recent events of kind about node.
func (e *nodeOpsEnv) events(t *testing.T, kind, node string) []api.Event {
	t.Helper()
	var l api.EventList
	e.must(t, http.MethodGet, "/events?limit=1000", nil, http.StatusOK, &l)
	var out []api.Event
	for _, ev := range l.Events {
		if ev.Kind == kind && (ev.Node == node || ev.Subject == node) {
			out = append(out, ev)
		}
	}
	return out
}

// runScheduler runs the scheduler binary with args and returns its
// combined output and exit code; it fails the test if it does not exit
// within 10 s.
func runScheduler(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), args...)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("running scheduler %s: %v", strings.Join(args, " "), err)
		}
		return out.String(), 0
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("scheduler %s did not exit within 10s:\n%s", strings.Join(args, " "), out.String())
		return "", -1
	}
}
