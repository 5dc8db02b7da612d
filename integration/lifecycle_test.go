package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/micro-orchestrator/mo/api"
)

// The workload lifecycle with the real binaries: batch workloads, health
// checks that restart a hung instance, growing restart delays and the move
// once they run out, memory limits, stop killing what left the process
// group, ports, placement by declared resources and the refusal of bad
// specs. The cases share two clusters (one of three replicas and three
// agents, one of a replica and a single agent) and run side by side.
func TestLifecycle(t *testing.T) {
	t.Run("OneNode", func(t *testing.T) {
		t.Parallel()
		tc := newTestCluster(t)
		tc.startReplicas(1)
		tc.startAgents(1)
		lifecyclePortsOnOneNode(t, tc)
	})
	t.Run("ThreeNodes", func(t *testing.T) {
		t.Parallel()
		tc := startFullCluster(t)
		// The longest first, so that they overlap.
		for _, c := range []struct {
			name string
			run  func(*testing.T, *testCluster)
		}{
			{"RestartDelaysGrowThenMoves", lifecycleRestartDelays},
			{"HungServerIsRestarted", lifecycleHungServer},
			{"BatchCompletes", lifecycleBatch},
			{"MemoryLimitOOMKilled", lifecycleOOM},
			{"StopKillsEscapedChildren", lifecycleStopKillsEscaped},
			{"TooLargeStaysPending", lifecycleTooLarge},
			{"BadSpecRefused", lifecycleBadSpec},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(t, tc)
			})
		}
	})
}

// testprog is the path of the test workload program built by TestMain.
func testprog() string { return filepath.Join(binDir, "testprog") }

// lcWorkload reads one workload through the first live replica that answers.
func (tc *testCluster) lcWorkload(id string) (api.Workload, error) {
	var w api.Workload
	err := errors.New("no live replica")
	for _, r := range tc.replicas {
		if r.proc == nil || !r.proc.alive() {
			continue
		}
		if err = tc.c.getJSON(r.http, "/workloads/"+id, &w); err == nil {
			return w, nil
		}
	}
	return w, err
}

// lcInstance returns an agent's newest instance of workload id, from its
// /status.
func (tc *testCluster) lcInstance(a *agentProc, id string) (api.AgentWorkload, bool) {
	st, err := tc.agentStatus(a)
	if err != nil {
		return api.AgentWorkload{}, false
	}
	var out api.AgentWorkload
	found := false
	for _, w := range st.Workloads {
		if w.ID == id && (!found || w.Generation >= out.Generation) {
			out, found = w, true
		}
	}
	return out, found
}

// lcSubmit runs scheduler submit with args and returns the one ID it prints.
func (tc *testCluster) lcSubmit(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := tc.cli(append([]string{"submit"}, args...)...)
	if code != 0 {
		t.Fatalf("submit %q: exit %d: %s%s", args, code, out, errOut)
	}
	ids := strings.Fields(out)
	if len(ids) != 1 {
		t.Fatalf("submit %q printed %q, want one ID", args, out)
	}
	return ids[0]
}

// lcStop stops workloads at the end of a case, so that nothing of it goes
// on failing (and alerting) while the other cases run.
func (tc *testCluster) lcStop(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if code, b, err := tc.c.call("DELETE", tc.leader().http, "/workloads/"+id, nil); err != nil || code != http.StatusOK {
			t.Errorf("stop %s: %d %s %v", id, code, b, err)
		}
	}
}

// lcPlaced waits until workload id is running with a pid on a node, and
// returns it.
func (tc *testCluster) lcPlaced(t *testing.T, id string, d time.Duration) api.Workload {
	t.Helper()
	var w api.Workload
	waitFor(t, d, id+" running", func() bool {
		var err error
		w, err = tc.lcWorkload(id)
		return err == nil && w.State == api.StateRunning && w.Node != "" && w.PID > 0
	})
	return w
}

// agentLogs reads the whole output an agent keeps of workload id.
func (tc *testCluster) agentLogs(a *agentProc, id string) string {
	_, b, _ := tc.c.call("GET", a.listen, "/workloads/"+id+"/logs?tail=all", nil)
	return string(b)
}

// 1. A batch workload that exits 0 is completed, its output kept, never
// restarted, and raises no alert.
func lifecycleBatch(t *testing.T, tc *testCluster) {
	id := tc.lcSubmit(t, "--name", "lc-batch", "--type", "batch", "--", "echo", "hello")
	var w api.Workload
	waitFor(t, 30*time.Second, "the batch workload completed", func() bool {
		var err error
		w, err = tc.lcWorkload(id)
		return err == nil && w.State == api.StateCompleted
	})
	if w.ExitCode == nil || *w.ExitCode != 0 || w.Node == "" {
		t.Errorf("completed workload: exit code %v, node %q; want 0 and its node kept", w.ExitCode, w.Node)
	}
	out, errOut, code := tc.cli("logs", id)
	if code != 0 || !strings.Contains(out, "hello\n") {
		t.Errorf("scheduler logs %s: exit %d, %q %q; want hello", id, code, out, errOut)
	}
	if strings.Count(out, "hello") != 1 || strings.Contains(out, "[agent: restart") {
		t.Errorf("the batch workload ran more than once:\n%s", out)
	}
	// Two recovery passes later it is still completed, as it was.
	time.Sleep(2500 * time.Millisecond)
	after, err := tc.lcWorkload(id)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != api.StateCompleted || after.Generation != w.Generation || after.Attempts != 0 || after.Restarts != 0 || len(after.History) != 1 {
		t.Errorf("the completed batch workload changed: state %s, generation %d→%d, attempts %d, restarts %d, %d placements",
			after.State, w.Generation, after.Generation, after.Attempts, after.Restarts, len(after.History))
	}
	var alerts api.AlertList
	if err := tc.c.getJSON(tc.leader().http, "/alerts", &alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts.Alerts {
		if a.Workload == id || a.Subject == id {
			t.Errorf("alert for the completed batch workload: %+v", a)
		}
	}
}

// 2. An HTTP server that hangs (SIGSTOP) fails its check and is killed and
// started again in place, then healthy again.
func lifecycleHungServer(t *testing.T, tc *testCluster) {
	id := tc.lcSubmit(t, "--name", "lc-hang", "--port", "http", "--check", "http", "--check-interval", "1s",
		"--check-timeout", "500ms", "--check-failures", "2", "--check-grace", "1s", "--restart-delay", "200ms", "--", testprog(), "http")
	w := tc.lcPlaced(t, id, 30*time.Second)
	a := tc.agentByID(w.Node)
	var old api.AgentWorkload
	waitFor(t, 20*time.Second, "the server healthy on its agent", func() bool {
		var ok bool
		old, ok = tc.lcInstance(a, id)
		return ok && old.State == api.InstanceRunning && old.Health == api.HealthHealthy && old.PID > 0
	})
	killIfOurs(t, old.PID, "testprog")

	if err := syscall.Kill(old.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	var now api.AgentWorkload
	waitFor(t, 15*time.Second, "a new pid in the agent's /status", func() bool {
		var ok bool
		now, ok = tc.lcInstance(a, id)
		return ok && now.State == api.InstanceRunning && now.PID > 0 && now.PID != old.PID
	})
	toNewPID := time.Since(hung)
	killIfOurs(t, now.PID, "testprog")
	waitFor(t, 15*time.Second, "the new run healthy on its agent", func() bool {
		in, ok := tc.lcInstance(a, id)
		return ok && in.PID == now.PID && in.Health == api.HealthHealthy
	})
	toHealthy := time.Since(hung)
	t.Logf("hung (SIGSTOP) → new pid: %s; hung → healthy again: %s", toNewPID.Round(time.Millisecond), toHealthy.Round(time.Millisecond))
	if toNewPID > 4*time.Second {
		t.Errorf("the hung server got a new pid only %s after SIGSTOP, want within 4s (check every 1s, 2 failures, 500ms timeout, 200ms restart delay)", toNewPID)
	}
	waitFor(t, 10*time.Second, "the hung process gone", func() bool { return !pidAlive(old.PID) })
	waitFor(t, 15*time.Second, "GET /workloads/{id} healthy with the new pid", func() bool {
		w, err := tc.lcWorkload(id)
		return err == nil && w.State == api.StateRunning && w.Health == api.HealthHealthy && w.PID == now.PID && w.Restarts == 1
	})
	if logs := tc.agentLogs(a, id); !strings.Contains(logs, "[agent: restart 1 of 3 in 200ms: unhealthy: GET /") {
		t.Errorf("the output does not say why it was restarted:\n%s", logs)
	}
	tc.lcStop(t, id)
}

// killIfOurs kills pid at the end of the test if it is still a process
// whose command line holds what (and so not a pid reused meanwhile).
func killIfOurs(t *testing.T, pid int, what string) {
	t.Cleanup(func() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(what)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// 3. A service that exits at once is restarted in place after 1s, 2s and 4s,
// then fails and recovery moves it to another node.
func lifecycleRestartDelays(t *testing.T, tc *testCluster) {
	id := tc.lcSubmit(t, "--name", "lc-crash", "--restart-attempts", "3", "--restart-delay", "1s", "--", "sh", "-c", "echo run; exit 1")
	var w api.Workload
	waitFor(t, 30*time.Second, "the crashing workload placed", func() bool {
		var err error
		w, err = tc.lcWorkload(id)
		return err == nil && w.Node != "" && w.Generation > 0
	})
	first := tc.agentByID(w.Node)
	// Each run is an instance with its own start time: poll the agent's
	// /status until the policy has run out.
	var starts []time.Time
	var last api.AgentWorkload
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		in, ok := tc.lcInstance(first, id)
		if ok && in.Generation == w.Generation {
			last = in
			if n := len(starts); !in.StartedAt.IsZero() && (n == 0 || in.StartedAt.After(starts[n-1])) {
				starts = append(starts, in.StartedAt)
			}
			if in.State == api.InstanceFailed {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs := tc.agentLogs(first, id)
	if last.State != api.InstanceFailed || !strings.Contains(last.Reason, "restarted 3 times") {
		t.Fatalf("on %s the instance is %s (%q), want failed after 3 restarts; output:\n%s", first.id, last.State, last.Reason, logs)
	}
	if len(starts) != 4 {
		t.Fatalf("saw %d runs on %s (%v), want 4 (1 + 3 restarts)", len(starts), first.id, starts)
	}
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]))
	}
	t.Logf("restarts in place on %s came %s, %s, %s apart (policy: 1s doubling)", first.id,
		gaps[0].Round(time.Millisecond), gaps[1].Round(time.Millisecond), gaps[2].Round(time.Millisecond))
	if gaps[0] < 800*time.Millisecond || gaps[0] > 3*time.Second {
		t.Errorf("first restart %s after the first run, want about 1s", gaps[0])
	}
	for i := 1; i < len(gaps); i++ {
		if r := float64(gaps[i]) / float64(gaps[i-1]); r < 1.4 || r > 3 {
			t.Errorf("restart gap %d is %.2f times the one before (%s after %s), want about 2", i+1, r, gaps[i], gaps[i-1])
		}
	}
	for _, want := range []string{"[agent: restart 1 of 3 in 1s: exited with code 1]", "[agent: restart 2 of 3 in 2s:",
		"[agent: restart 3 of 3 in 4s:", "[agent: not restarting: restarted 3 times; last: exited with code 1]"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the output lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "run\n"); n != 4 {
		t.Errorf("the output shows %d runs, want 4:\n%s", n, logs)
	}
	var moved api.Workload
	waitFor(t, 30*time.Second, "the failed workload moved to another node", func() bool {
		var err error
		moved, err = tc.lcWorkload(id)
		return err == nil && moved.Generation > w.Generation && moved.Node != "" && moved.Node != first.id
	})
	if moved.Attempts != w.Attempts+1 {
		t.Errorf("after the move attempts is %d, want %d", moved.Attempts, w.Attempts+1)
	}
	t.Logf("moved from %s to %s (attempts %d→%d, generation %d→%d)", first.id, moved.Node, w.Attempts, moved.Attempts, w.Generation, moved.Generation)
	tc.lcStop(t, id)
}

// 4. A workload that outgrows its memory limit is killed by the OOM killer
// and says so.
func lifecycleOOM(t *testing.T, tc *testCluster) {
	for _, a := range tc.agents {
		if b, _ := os.ReadFile(a.proc.log); bytes.Contains(b, []byte("cgroups unavailable")) {
			t.Skipf("agent %s logged \"cgroups unavailable\": no memory limit to enforce on this machine", a.id)
		}
	}
	ids, err := tc.submit(tc.leader().http, api.SubmitRequest{Name: "lc-oom", Command: testprog(), Args: []string{"alloc", "300"},
		Spec: api.Spec{Resources: &api.Resources{MemoryMB: 64}}})
	if err != nil {
		t.Fatal(err)
	}
	id := ids[0]
	defer tc.lcStop(t, id)
	where := ""
	waitFor(t, 30*time.Second, "the reason \"OOM killed\"", func() bool {
		if w, err := tc.lcWorkload(id); err == nil && strings.Contains(w.Reason, "OOM killed") {
			where = fmt.Sprintf("the workload's reason (state %s): %q", w.State, w.Reason)
			return true
		}
		var ev api.EventList
		if tc.c.getJSON(tc.leader().http, "/events?limit=200", &ev) == nil {
			for _, e := range ev.Events {
				if e.Workload == id && strings.Contains(e.Message, "OOM killed") {
					where = fmt.Sprintf("event %s: %q", e.Kind, e.Message)
					return true
				}
			}
		}
		return false
	})
	t.Logf("OOM seen in %s", where)
}

// 5. Stop kills the processes of the instance that left its process group
// and cleared their environment (setsid, env -i).
func lifecycleStopKillsEscaped(t *testing.T, tc *testCluster) {
	marker := fmt.Sprintf("1000.%d%06d", os.Getpid()%1000, time.Now().UnixNano()%1000000)
	id := tc.lcSubmit(t, "--name", "lc-escape", "--", "sh", "-c",
		`setsid sh -c "exec env -i sleep `+marker+`" & exec sleep `+marker)
	tc.lcPlaced(t, id, 30*time.Second)
	var pids []int
	waitFor(t, 20*time.Second, "both sleeps running", func() bool {
		pids = pidsWithArg(marker)
		return len(pids) == 2
	})
	for _, p := range pids {
		killIfOurs(t, p, marker)
	}
	sessions := map[int]bool{}
	emptyEnv := 0
	for _, p := range pids {
		sid, _ := unix.Getsid(p)
		sessions[sid] = true
		if env, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/environ"); err == nil && len(env) == 0 {
			emptyEnv++
		}
	}
	if len(sessions) != 2 || emptyEnv != 1 {
		t.Fatalf("want one sleep in a session of its own with an empty environment: %d sessions, %d empty environments", len(sessions), emptyEnv)
	}
	t.Logf("sleeps %v: one in a session of its own with an empty environment", pids)
	if out, errOut, code := tc.cli("stop", id); code != 0 {
		t.Fatalf("scheduler stop: exit %d: %s%s", code, out, errOut)
	}
	waitFor(t, 15*time.Second, "every process of the stopped workload gone", func() bool { return len(pidsWithArg(marker)) == 0 })
}

// pidsWithArg lists the live (not zombie) processes with arg in their argv.
func pidsWithArg(arg string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				if pidAlive(pid) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// 6. Instances on one node get a port each, answer on it, and the CLI shows
// it at the node's address.
func lifecyclePortsOnOneNode(t *testing.T, tc *testCluster) {
	out, errOut, code := tc.cli("submit", "--name", "lc-web", "--count", "3", "--port", "http", "--", testprog(), "http")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s%s", code, out, errOut)
	}
	ids := strings.Fields(out)
	if len(ids) != 3 {
		t.Fatalf("submit printed %q, want 3 IDs", out)
	}
	ports := map[int]string{}
	for _, id := range ids {
		var w api.Workload
		waitFor(t, 30*time.Second, id+" running with its port", func() bool {
			var err error
			w, err = tc.lcWorkload(id)
			return err == nil && w.State == api.StateRunning && w.Ports["http"] > 0 && w.PID > 0
		})
		killIfOurs(t, w.PID, "testprog")
		p := w.Ports["http"]
		if other, dup := ports[p]; dup {
			t.Fatalf("%s and %s both got port %d", other, id, p)
		}
		ports[p] = id
		if w.Node != tc.agents[0].id {
			t.Errorf("%s runs on %q, want %s", id, w.Node, tc.agents[0].id)
		}
		var body string
		waitFor(t, 10*time.Second, fmt.Sprintf("%s answering on port %d", id, p), func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p) + "/")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == http.StatusOK
		})
		if want := "ok " + strconv.Itoa(w.PID); strings.TrimSpace(body) != want {
			t.Errorf("port %d answered %q, want %q (the instance's own pid)", p, body, want)
		}
		shown, errOut, code := tc.cli("workload", id)
		if want := "http: 127.0.0.1:" + strconv.Itoa(p); code != 0 || !strings.Contains(shown, want) {
			t.Errorf("scheduler workload %s: exit %d, no %q in:\n%s%s", id, code, want, shown, errOut)
		}
	}
	t.Logf("ports: %v", ports)
}

// 7. A workload no node can hold is accepted and waits pending, saying which
// resource is short and which node comes closest.
func lifecycleTooLarge(t *testing.T, tc *testCluster) {
	cpu := tc.lcSubmit(t, "--name", "lc-huge-cpu", "--cpu-millicores", "1000000", "--", "sleep", "600")
	code, b, err := tc.c.call("POST", tc.leader().http, "/workloads",
		api.SubmitRequest{Name: "lc-huge-mem", Command: "sleep", Args: []string{"600"}, Spec: api.Spec{Resources: &api.Resources{MemoryMB: 10_000_000}}})
	if err != nil || code != http.StatusCreated {
		t.Fatalf("submit of a workload too large for any node: %d %s %v, want 201", code, b, err)
	}
	var resp api.SubmitResponse
	if err := jsonUnmarshal(b, &resp); err != nil || len(resp.IDs) != 1 {
		t.Fatalf("submit answer %s: %v", b, err)
	}
	mem := resp.IDs[0]
	defer tc.lcStop(t, cpu, mem)
	for _, c := range []struct{ id, want string }{
		{cpu, "no node has 1000000 millicores free (n"},
		{mem, "no node has 10000000 MiB of memory free (n"},
	} {
		var w api.Workload
		waitFor(t, 20*time.Second, c.id+" pending with a reason", func() bool {
			var err error
			w, err = tc.lcWorkload(c.id)
			return err == nil && w.Reason != ""
		})
		if w.State != api.StatePending || !strings.Contains(w.Reason, c.want) || !strings.HasSuffix(w.Reason, ")") || w.Node != "" {
			t.Errorf("%s: state %s, node %q, reason %q; want pending, no node, and a reason with %q and the closest node's free amount", c.id, w.State, w.Node, w.Reason, c.want)
		}
		t.Logf("%s: %s", c.id, w.Reason)
	}
	time.Sleep(2500 * time.Millisecond) // a few placement passes
	for _, id := range []string{cpu, mem} {
		if w, err := tc.lcWorkload(id); err != nil || w.State != api.StatePending || w.Node != "" || w.Attempts != 0 {
			t.Errorf("%s no longer waits: %+v %v", id, w, err)
		}
	}
}

// 8. A bad spec is refused with 400, naming the problem, and creates nothing.
func lifecycleBadSpec(t *testing.T, tc *testCluster) {
	cases := []struct {
		name, spec, want string
	}{
		{"check type", `"check":{"type":"grpc"}`, `unknown type "grpc"`},
		{"check port not in ports", `"ports":["http"],"check":{"type":"http","port":"web"}`, `port "web" is not one of ports`},
		{"check port without ports", `"check":{"type":"tcp","port":"http"}`, `is not one of ports`},
		{"duration 0s", `"ports":["http"],"check":{"type":"http","port":"http","interval":"0s"}`, `must be positive`},
		{"duration -1s", `"restart":{"attempts":1,"delay":"-1s"}`, `must be positive`},
		{"duration abc", `"ports":["http"],"check":{"type":"tcp","port":"http","timeout":"abc"}`, `want a number with a unit`},
		{"duration a number", `"restart":{"attempts":1,"max_delay":5}`, `a duration is a string`},
		{"negative cpu", `"resources":{"cpu_millicores":-1}`, `resources.cpu_millicores -1`},
		{"negative memory", `"resources":{"memory_mb":-64}`, `resources.memory_mb -64`},
		{"negative pids", `"resources":{"pids":-1}`, `resources.pids -1`},
		{"cpu beyond any machine", `"resources":{"cpu_millicores":100000000}`, `resources.cpu_millicores 100000000`},
		{"negative attempts", `"restart":{"attempts":-1}`, `restart.attempts -1`},
		{"port label upper case", `"ports":["HTTP"]`, `port label "HTTP"`},
		{"port label with a dash", `"ports":["a-b"]`, `port label "a-b"`},
		{"port label twice", `"ports":["web","web"]`, `listed twice`},
		{"exec check empty command", `"check":{"type":"exec","command":[]}`, `needs a command`},
		{"exec check no command", `"check":{"type":"exec"}`, `needs a command`},
		{"exec check blank command", `"check":{"type":"exec","command":[" "]}`, `needs a command`},
		{"unknown type", `"type":"cron"`, `type "cron"`},
	}
	l := tc.leader()
	targets := []*replica{l, tc.followers()[0]}
	for i, c := range cases {
		name := fmt.Sprintf("lc-bad-%d", i)
		body := `{"name":"` + name + `","command":"sleep","args":["60"],` + c.spec + `}`
		target := targets[i%len(targets)]
		code, b, err := tc.c.call("POST", target.http, "/workloads", body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var e api.Error
		if code != http.StatusBadRequest || jsonUnmarshal(b, &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s via %s: %d %s; want 400 naming %q", c.name, target.id, code, b, c.want)
		}
	}
	// The CLI's flags reach the same checks.
	for _, args := range [][]string{
		{"--check", "http", "--port", "http", "--check-interval", "0s"},
		{"--check", "exec"},
		{"--port", "HTTP"},
		{"--cpu-millicores", "-5"},
	} {
		full := append(append([]string{"submit", "--name", "lc-bad-cli"}, args...), "--", "sleep", "60")
		if out, errOut, code := tc.cli(full...); code == 0 || strings.TrimSpace(errOut) == "" {
			t.Errorf("scheduler %q: exit %d (%s%s), want a refusal that says why", full, code, out, errOut)
		}
	}
	var l2 api.WorkloadList
	if err := tc.c.getJSON(l.http, "/workloads", &l2); err != nil {
		t.Fatal(err)
	}
	for _, w := range l2.Workloads {
		if strings.HasPrefix(w.Name, "lc-bad-") {
			t.Errorf("a refused spec created %s (%s)", w.ID, w.Name)
		}
	}
}
