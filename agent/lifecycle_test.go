package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// testHelperEnv makes the test binary play a workload (see runTestHelper).
const testHelperEnv = "MO_AGENT_TEST_HELPER"

// runTestHelper is the test binary run as a workload: "http" serves GET
// /health on 127.0.0.1:$MO_PORT_HTTP.
func runTestHelper(kind string) int {
	switch kind {
	case "http":
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv(api.PortEnv("http")))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("serving on %s\n", ln.Addr())
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		_ = http.Serve(ln, mux)
		return 1
	}
	fmt.Fprintf(os.Stderr, "unknown test helper %q\n", kind)
	return 2
}

// httpServer is a start request for the test binary serving HTTP on its port "http".
func httpServer(t testing.TB, id string, spec api.Spec) api.StartRequest {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec.Ports = []string{"http"}
	return api.StartRequest{ID: id, Command: exe, Generation: 1, Term: 1, Env: map[string]string{testHelperEnv: "http"}, Spec: spec}
}

func dur(d time.Duration) api.Duration { return api.Duration(d) }

func withPortRange(r PortRange) testOption {
	return func(c *Config, _ *agentOptions) { c.PortRange = r }
}

func withRestartResetAfter(d time.Duration) testOption {
	return func(_ *Config, o *agentOptions) { o.restartResetAfter = d }
}

// waitUntil polls id's entry of GET /status until cond holds.
func (ta *testAgent) waitUntil(id string, timeout time.Duration, what string, cond func(api.AgentWorkload) bool) api.AgentWorkload {
	ta.t.Helper()
	var w api.AgentWorkload
	waitFor(ta.t, timeout, id+" "+what, func() bool {
		w, _ = ta.instance(id)
		return cond(w)
	})
	return w
}

// logs returns the whole output of id.
func (ta *testAgent) logs(id string) string {
	ta.t.Helper()
	code, out, _ := ta.do(http.MethodGet, "/workloads/"+id+"/logs?tail=all", testToken, nil)
	if code != http.StatusOK {
		ta.t.Fatalf("logs of %s: %d %s", id, code, out)
	}
	return string(out)
}

// lines reads a file of the workload's directory as lines.
func (ta *testAgent) lines(id, name string) []string {
	ta.t.Helper()
	b, err := os.ReadFile(filepath.Join(ta.cfg.DataDir, "workloads", id, name))
	if err != nil && !os.IsNotExist(err) {
		ta.t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// A batch that exits 0 has completed: exited 0, never restarted, whatever
// its restart policy; one that exits non-zero is restarted.
func TestBatchExitZeroIsNeverRestarted(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("batch", "echo hi", 1, 1)
	req.Spec = api.Spec{Type: api.TypeBatch, Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(50 * time.Millisecond)}}
	ta.mustStart(req)
	w := ta.waitState("batch", api.InstanceExited)
	if w.ExitCode == nil || *w.ExitCode != 0 || w.Restarts != 0 || w.Reason != "" || w.Error != "" || w.Health != api.HealthUnknown {
		t.Fatalf("completed batch: %+v", w)
	}
	if got := ta.logs("batch"); got != "hi\n" {
		t.Fatalf("output %q, want just hi", got)
	}

	bad := sh("batch-bad", "echo run; exit 2", 1, 1)
	bad.Spec = api.Spec{Type: api.TypeBatch, Restart: &api.RestartPolicy{Attempts: 1, Delay: dur(50 * time.Millisecond)}}
	ta.mustStart(bad)
	w = ta.waitUntil("batch-bad", 10*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	if w.Restarts != 1 || w.Reason != "restarted once; last: exited with code 2" || w.Error != w.Reason {
		t.Fatalf("failing batch: %+v", w)
	}
	if n := strings.Count(ta.logs("batch-bad"), "run\n"); n != 2 {
		t.Fatalf("the failing batch ran %d times, want 2", n)
	}
	if w, _ := ta.instance("batch"); w.State != api.InstanceExited || w.Restarts != 0 {
		t.Fatalf("the completed batch changed: %+v", w)
	}
	if n := ta.sup.lifecycle.restarts.Load(); n != 1 {
		t.Fatalf("%d restarts counted, want 1", n)
	}
}

// A service that keeps exiting is restarted in place with a delay that
// doubles, keeps its generation and output, and fails with the reason once
// its attempts run out.
func TestServiceRestartsWithGrowingDelays(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("flaky", `date +%s%N >> starts; echo "run $$"; exit 3`, 4, 2)
	base := 200 * time.Millisecond
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(base), MaxDelay: dur(10 * time.Second)}}
	ta.mustStart(req)
	w := ta.waitUntil("flaky", 20*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	if w.Restarts != 3 || w.Generation != 4 || w.ExitCode == nil || *w.ExitCode != 3 ||
		w.Reason != "restarted 3 times; last: exited with code 3" || w.Error != w.Reason {
		t.Fatalf("failed instance: %+v", w)
	}
	starts := ta.lines("flaky", "starts")
	if len(starts) != 4 {
		t.Fatalf("%d runs, want 4: %v", len(starts), starts)
	}
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		a, _ := strconv.ParseInt(starts[i-1], 10, 64)
		b, _ := strconv.ParseInt(starts[i], 10, 64)
		gaps = append(gaps, time.Duration(b-a))
	}
	t.Logf("gaps between runs: %v", gaps)
	for i, g := range gaps {
		if want := base << i; g < want {
			t.Errorf("restart %d came %s after the run before it, sooner than its delay %s", i+1, g, want)
		}
		if i > 0 && g <= gaps[i-1] {
			t.Errorf("the delays do not grow: %v", gaps)
		}
	}
	out := ta.logs("flaky")
	for _, want := range []string{
		"[agent: restart 1 of 3 in 200ms: exited with code 3]\n",
		"[agent: restart 2 of 3 in 400ms: exited with code 3]\n",
		"[agent: restart 3 of 3 in 800ms: exited with code 3]\n",
		"[agent: not restarting: restarted 3 times; last: exited with code 3]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}
	var pids []string
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "run "); ok && !slices.Contains(pids, p) {
			pids = append(pids, p)
		}
	}
	if len(pids) != 4 {
		t.Errorf("want 4 runs with 4 pids in one output, got %v:\n%s", pids, out)
	}
	// The leader's repeated start of the generation gets the failure.
	if code, resp := ta.start(req); code != http.StatusUnprocessableEntity || !strings.Contains(resp.Error, "restarted 3 times") {
		t.Errorf("repeated start of the failed generation: %d %+v", code, resp)
	}
}

// The restart count starts again once a run has lasted long enough.
func TestRestartCountResetsAfterSteadyRun(t *testing.T) {
	ta := newTestAgent(t, withRestartResetAfter(150*time.Millisecond))
	req := sh("steady", "sleep 0.3; exit 1", 1, 1)
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 1, Delay: dur(20 * time.Millisecond)}}
	ta.mustStart(req)
	ta.waitUntil("steady", 20*time.Second, "restarted 3 times", func(w api.AgentWorkload) bool {
		if w.State == api.InstanceFailed {
			t.Fatalf("failed although each run lasted past the reset: %+v", w)
		}
		return w.Restarts >= 3
	})
	if code, w, msg := ta.stop("steady", 1, 1); code != http.StatusOK || w.State != api.InstanceStopped {
		t.Fatalf("stop: %d %+v %s", code, w, msg)
	}
	out := ta.logs("steady")
	if strings.Count(out, "restart 1 of 1") < 3 || strings.Contains(out, "restart 2 of") {
		t.Fatalf("the count did not reset:\n%s", out)
	}
}

// A stop while the instance waits to restart calls the restart off at once,
// gives its ports back, and nothing runs again.
func TestStopDuringRestartDelay(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("waiting", `date +%s%N >> starts; exit 1`, 1, 1)
	req.Spec = api.Spec{Ports: []string{"http"}, Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(time.Second)}}
	ta.mustStart(req)
	w := ta.waitState("waiting", api.InstanceRestarting)
	if w.Restarts != 1 || w.Reason != "exited with code 1" || w.Ports["http"] == 0 || w.ExitedAt != nil {
		t.Fatalf("waiting instance: %+v", w)
	}
	begin := time.Now()
	code, w, msg := ta.stop("waiting", 1, 1)
	if code != http.StatusOK || w.State != api.InstanceStopped || len(w.Ports) != 0 || w.ExitedAt == nil {
		t.Fatalf("stop: %d %+v %s", code, w, msg)
	}
	if took := time.Since(begin); took > 500*time.Millisecond {
		t.Errorf("the stop took %s", took)
	}
	if n := ta.sup.cfg.ports.inUse(); n != 0 {
		t.Errorf("%d ports still held", n)
	}
	// Past the delay, nothing has started again.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := len(ta.lines("waiting", "starts")); n != 1 {
			t.Fatalf("%d runs after the stop, want 1", n)
		}
		if w, _ := ta.instance("waiting"); w.State != api.InstanceStopped {
			t.Fatalf("state %s after the stop", w.State)
		}
	}
	if out := ta.logs("waiting"); !strings.Contains(out, "[agent: restart called off: stop requested]") {
		t.Errorf("output:\n%s", out)
	}
}

// A newer generation replaces an instance waiting to restart.
func TestNewGenerationReplacesRestartingInstance(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("gen", "exit 1", 1, 1)
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(time.Minute)}}
	ta.mustStart(req)
	ta.waitState("gen", api.InstanceRestarting)
	next := sh("gen", "sleep 600", 2, 1)
	resp := ta.mustStart(next)
	t.Cleanup(func() { killGroup(t, resp.PID) })
	if w, _ := ta.instance("gen"); w.State != api.InstanceRunning || w.Generation != 2 || w.Restarts != 0 {
		t.Fatalf("after the new generation: %+v", w)
	}
}

// The agent's shutdown calls pending restarts off without waiting for them.
func TestShutdownCancelsPendingRestarts(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("pending", "exit 1", 1, 1)
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(time.Minute)}}
	ta.mustStart(req)
	ta.waitState("pending", api.InstanceRestarting)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	if err := ta.sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if w, _ := ta.instance("pending"); w.State != api.InstanceStopped {
		t.Fatalf("after shutdown: %+v", w)
	}
}

// A SIGSTOPped HTTP server fails its check, is killed without a stop grace
// and restarted in place, on the same port, and is healthy again.
func TestUnhealthyHTTPServerIsRestarted(t *testing.T) {
	ta := newTestAgent(t, withGrace(10*time.Second))
	spec := api.Spec{
		Check: &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/health", Interval: dur(time.Second),
			Timeout: dur(500 * time.Millisecond), Failures: 2, Grace: dur(300 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(200 * time.Millisecond)},
	}
	resp := ta.mustStart(httpServer(t, "web", spec))
	t.Cleanup(func() { killGroup(t, resp.PID) })
	w := ta.waitUntil("web", 10*time.Second, "healthy", func(w api.AgentWorkload) bool { return w.Health == api.HealthHealthy })
	port := w.Ports["http"]
	if port < DefaultPortRange.Low || port > DefaultPortRange.High {
		t.Fatalf("port %d out of the range", port)
	}

	if err := syscall.Kill(resp.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	w = ta.waitUntil("web", 15*time.Second, "running with a new pid", func(w api.AgentWorkload) bool {
		return w.State == api.InstanceRunning && w.PID != resp.PID
	})
	newPID := time.Since(stopped)
	t.Cleanup(func() { killGroup(t, w.PID) })
	w = ta.waitUntil("web", 10*time.Second, "healthy again", func(w api.AgentWorkload) bool { return w.Health == api.HealthHealthy })
	healthy := time.Since(stopped)
	t.Logf("SIGSTOP to new pid: %s, to healthy: %s", newPID.Round(time.Millisecond), healthy.Round(time.Millisecond))
	if newPID > 4*time.Second {
		t.Errorf("the new pid came %s after SIGSTOP, want within 4 s", newPID)
	}
	if w.Restarts != 1 || w.Ports["http"] != port || w.Generation != 1 {
		t.Fatalf("restarted instance: %+v (port was %d)", w, port)
	}
	if running(resp.PID) {
		t.Fatal("the stopped server still exists")
	}
	out := ta.logs("web")
	if !strings.Contains(out, "[agent: restart 1 of 3 in 200ms: unhealthy: GET /health: timeout]") || strings.Count(out, "serving on") != 2 {
		t.Fatalf("output:\n%s", out)
	}
	if ok, fail := ta.sup.lifecycle.checksOK.Load(), ta.sup.lifecycle.checksFail.Load(); ok < 2 || fail < 2 {
		t.Errorf("checks counted: %d ok, %d failed", ok, fail)
	}
	_, body, _ := ta.do(http.MethodGet, "/metrics", testToken, nil)
	for _, want := range []string{`mo_agent_instances_by_health{health="healthy"} 1`, `mo_agent_restarts_total 1`, `mo_agent_health_checks_total{result="fail"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in the metrics", want)
		}
	}
}

// A tcp check passes while the port listens; one nothing listens on fails,
// restarts, and the instance fails with the reason.
func TestTCPCheck(t *testing.T) {
	ta := newTestAgent(t)
	spec := api.Spec{Check: &api.Check{Type: api.CheckTCP, Port: "http", Interval: dur(200 * time.Millisecond), Grace: dur(100 * time.Millisecond)}}
	resp := ta.mustStart(httpServer(t, "tcp-ok", spec))
	t.Cleanup(func() { killGroup(t, resp.PID) })
	ta.waitUntil("tcp-ok", 10*time.Second, "healthy", func(w api.AgentWorkload) bool { return w.Health == api.HealthHealthy })

	deaf := sh("tcp-deaf", "exec sleep 600", 1, 1)
	deaf.Spec = api.Spec{Ports: []string{"db"},
		Check:   &api.Check{Type: api.CheckTCP, Port: "db", Interval: dur(100 * time.Millisecond), Failures: 2, Grace: dur(50 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 1, Delay: dur(50 * time.Millisecond)}}
	ta.mustStart(deaf)
	w := ta.waitUntil("tcp-deaf", 10*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	want := fmt.Sprintf("restarted once; last: unhealthy: tcp connect to port %d: connection refused", mustPort(t, ta, "tcp-deaf"))
	if w.Reason != want || w.Health != api.HealthUnhealthy || w.ExitCode == nil || *w.ExitCode != 137 || len(w.Ports) != 0 {
		t.Fatalf("got %+v, want reason %q", w, want)
	}
	if w, _ := ta.instance("tcp-ok"); w.Health != api.HealthHealthy || w.Restarts != 0 {
		t.Fatalf("the healthy one: %+v", w)
	}
}

// mustPort finds the port a workload was given in its output's restart line.
func mustPort(t *testing.T, ta *testAgent, id string) int {
	t.Helper()
	out := ta.logs(id)
	_, rest, ok := strings.Cut(out, "tcp connect to port ")
	if !ok {
		t.Fatalf("no port in the output:\n%s", out)
	}
	p, _ := strconv.Atoi(strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })[0])
	return p
}

// An exec check runs in the instance's directory with its environment; its
// failure restarts the instance, and one that hangs is killed at the timeout.
func TestExecCheck(t *testing.T) {
	ta := newTestAgent(t)
	req := sh("exec", `echo "$MO_PORT_HTTP" > port; : > healthy; exec sleep 600`, 1, 1)
	req.Spec = api.Spec{Ports: []string{"http"},
		Check: &api.Check{Type: api.CheckExec, Command: []string{"sh", "-c", `test -f healthy && test "$(cat port)" = "$MO_PORT_HTTP"`},
			Interval: dur(100 * time.Millisecond), Failures: 2, Grace: dur(50 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 2, Delay: dur(50 * time.Millisecond)}}
	first := ta.mustStart(req)
	w := ta.waitUntil("exec", 10*time.Second, "healthy", func(w api.AgentWorkload) bool { return w.Health == api.HealthHealthy })
	if err := os.Remove(filepath.Join(ta.cfg.DataDir, "workloads", "exec", "healthy")); err != nil {
		t.Fatal(err)
	}
	w = ta.waitUntil("exec", 10*time.Second, "healthy after a restart", func(w api.AgentWorkload) bool {
		return w.State == api.InstanceRunning && w.PID != first.PID && w.Health == api.HealthHealthy
	})
	t.Cleanup(func() { killGroup(t, w.PID) })
	if w.Restarts != 1 {
		t.Fatalf("%+v", w)
	}
	if out := ta.logs("exec"); !strings.Contains(out, "[agent: restart 1 of 2 in 50ms: unhealthy: exec check: exit code 1]") {
		t.Fatalf("output:\n%s", out)
	}

	hung := sh("exec-hung", "exec sleep 600", 1, 1)
	hung.Spec = api.Spec{
		Check: &api.Check{Type: api.CheckExec, Command: []string{"sh", "-c", "echo $$ >> probes; exec sleep 600"},
			Interval: dur(100 * time.Millisecond), Timeout: dur(200 * time.Millisecond), Failures: 1, Grace: dur(50 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 0}}
	ta.mustStart(hung)
	w = ta.waitUntil("exec-hung", 10*time.Second, "to end", func(w api.AgentWorkload) bool { return w.State == api.InstanceExited })
	if w.Reason != "unhealthy: exec check: timeout after 200ms" || w.Restarts != 0 {
		t.Fatalf("%+v", w)
	}
	probes := ta.lines("exec-hung", "probes")
	if len(probes) == 0 {
		t.Fatal("no probe ran")
	}
	for _, p := range probes {
		if pid, _ := strconv.Atoi(p); running(pid) {
			t.Errorf("probe %d still runs", pid)
		}
	}
}

// Instances asking for ports get different ones, as MO_PORT_<LABEL>, and
// give them back when they end.
func TestPortsByLabel(t *testing.T) {
	ta := newTestAgent(t)
	seen := map[int]string{}
	for i := range 3 {
		id := fmt.Sprintf("p%d", i)
		req := sh(id, `echo "port=$MO_PORT_HTTP"; exec sleep 600`, 1, 1)
		req.Spec = api.Spec{Ports: []string{"http"}}
		resp := ta.mustStart(req)
		t.Cleanup(func() { killGroup(t, resp.PID) })
	}
	for i := range 3 {
		id := fmt.Sprintf("p%d", i)
		w, _ := ta.instance(id)
		p := w.Ports["http"]
		if p == 0 || len(w.Ports) != 1 {
			t.Fatalf("%s ports %v", id, w.Ports)
		}
		if other, dup := seen[p]; dup {
			t.Fatalf("%s and %s both have port %d", id, other, p)
		}
		seen[p] = id
		want := fmt.Sprintf("port=%d\n", p)
		waitFor(t, 5*time.Second, id+" to print its port", func() bool { return ta.logs(id) == want })
	}
	if n := ta.sup.cfg.ports.inUse(); n != 3 {
		t.Fatalf("%d ports held, want 3", n)
	}
	for i := range 3 {
		if code, w, msg := ta.stop(fmt.Sprintf("p%d", i), 1, 1); code != http.StatusOK || len(w.Ports) != 0 {
			t.Fatalf("stop: %d %+v %s", code, w, msg)
		}
	}
	if n := ta.sup.cfg.ports.inUse(); n != 0 {
		t.Fatalf("%d ports held after the stops", n)
	}
}

// A start whose ports cannot be picked fails with a clear error.
func TestPortsExhausted(t *testing.T) {
	r := freePortPair(t)
	ta := newTestAgent(t, withPortRange(r))
	req := sh("two", "exec sleep 600", 1, 1)
	req.Spec = api.Spec{Ports: []string{"a", "b"}}
	resp := ta.mustStart(req)
	t.Cleanup(func() { killGroup(t, resp.PID) })
	more := sh("three", "exec sleep 600", 1, 1)
	more.Spec = api.Spec{Ports: []string{"c"}}
	code, out, _ := ta.do(http.MethodPost, "/workloads", testToken, mustJSON(t, more))
	if code != http.StatusInternalServerError || !strings.Contains(string(out), `no free port for port label \"c\" in the range `+r.String()) {
		t.Fatalf("start without a free port: %d %s", code, out)
	}
	if w, _ := ta.instance("three"); w.State != api.InstanceFailed {
		t.Fatalf("%+v", w)
	}
	if _, _, msg := ta.stop("two", 1, 1); msg != "" {
		t.Fatal(msg)
	}
	more.Generation = 2
	resp = ta.mustStart(more)
	t.Cleanup(func() { killGroup(t, resp.PID) })
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// freePortPair finds two neighbouring ports that can be bound.
func freePortPair(t *testing.T) PortRange {
	t.Helper()
	for p := 41000 + os.Getpid()%2000*2; p < 65000; p += 2 {
		if canBind(p) && canBind(p+1) {
			return PortRange{Low: p, High: p + 1}
		}
	}
	t.Fatal("no two free ports")
	return PortRange{}
}

// An exclusive instance is restarted in place while the lease holds, and
// not once the lease has lapsed since its run ended.
func TestExclusiveRestartNeedsAnUnbrokenLease(t *testing.T) {
	ta := newTestAgent(t)
	now := boottime()
	ta.lease.recordSent(7, now)
	ta.lease.renew(now+time.Minute, 1)
	req := sh("solo", "exit 1", 1, 1)
	req.Exclusive, req.HeartbeatSeq = true, 7
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 2, Delay: dur(50 * time.Millisecond)}}
	ta.mustStart(req)
	w := ta.waitUntil("solo", 10*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	if w.Restarts != 2 || !strings.HasPrefix(w.Reason, "restarted 2 times") {
		t.Fatalf("under the lease: %+v", w)
	}

	req = sh("solo2", "exit 1", 1, 1)
	req.Exclusive, req.HeartbeatSeq = true, 7
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 2, Delay: dur(time.Second)}}
	ta.mustStart(req)
	ta.waitState("solo2", api.InstanceRestarting)
	// The lease lapses and comes back while the instance waits.
	ta.lease.mu.Lock()
	ta.lease.until = boottime()
	ta.lease.mu.Unlock()
	ta.lease.renew(boottime()+time.Minute, 1)
	w = ta.waitUntil("solo2", 10*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	if !strings.Contains(w.Error, "lapsed since the exclusive workload last ran") {
		t.Fatalf("after a lapse: %+v", w)
	}
}
