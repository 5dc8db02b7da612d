package integration

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// hookReceiver is the operator's webhook: it records every notification.
type hookReceiver struct {
	mu  sync.Mutex
	got []api.AlertNotification
	bad []string // requests that were not a notification
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n api.AlertNotification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil || r.Method != http.MethodPost || r.Header.Get("Authorization") != "" {
		h.mu.Lock()
		h.bad = append(h.bad, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		h.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, n)
	h.mu.Unlock()
}

// has reports whether a notification with that status, alert and subject came.
func (h *hookReceiver) has(status, name, subject string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.got {
		if n.Status == status && n.Alert.Name == name && n.Alert.Subject == subject {
			return true
		}
	}
	return false
}

func (h *hookReceiver) wait(t *testing.T, status, name, subject string) {
	t.Helper()
	waitFor(t, 20*time.Second, "webhook: "+status+" "+name+" "+subject, func() bool { return h.has(status, name, subject) })
}

// scrape reads a /metrics answer into "name{labels}" -> value.
func (tc *testCluster) scrape(address string) map[string]float64 {
	tc.t.Helper()
	code, b, err := tc.c.call("GET", address, "/metrics", nil)
	if err != nil || code != http.StatusOK {
		tc.t.Fatalf("GET %s/metrics: %d %v", address, code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tc.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// noSecretsInLogs fails if any process log of the cluster holds a secret.
func (tc *testCluster) noSecretsInLogs(secrets ...string) {
	tc.t.Helper()
	logs, _ := filepath.Glob(filepath.Join(tc.dir, "*.log"))
	if len(logs) == 0 {
		tc.t.Fatal("no logs to check")
	}
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			tc.t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				tc.t.Errorf("%s holds the secret %q", filepath.Base(p), s)
			}
		}
	}
}

// setCPUAndCheck makes the agents (started with --cpu-file) report cpu and
// waits until the leader's health view shows it.
func setCPUAndCheck(t *testing.T, tc *testCluster, files map[string]string, pct string) {
	t.Helper()
	want, _ := strconv.ParseFloat(pct, 64)
	for id, f := range files {
		setCPU(t, f, pct)
		a := tc.agentByID(id)
		waitFor(t, 10*time.Second, id+" reporting cpu "+pct, func() bool {
			st, err := tc.agentStatus(a)
			return err == nil && st.CPUUsage == want
		})
	}
	waitFor(t, 10*time.Second, "the leader seeing cpu "+pct, func() bool {
		var s api.HealthSummary
		l := tc.leader().http
		if code, _, err := tc.c.call("POST", l, "/health/check", nil); err != nil || code != http.StatusOK {
			return false
		}
		if tc.c.getJSON(l, "/health/summary", &s) != nil {
			return false
		}
		for _, d := range s.NodeDetails {
			if _, ok := files[d.NodeID]; ok && d.CPUUsage != want {
				return false
			}
		}
		return true
	})
}

// One cluster, every monitoring path: /metrics before and after an agent is
// killed; `scheduler events -f` through a follower shows the node going
// offline and its workloads recovering as it happens; each of the guide's
// four alerts fires and resolves, in /alerts and at the webhook; no log line
// holds the token.
func TestMonitoringAlertsEventsMetrics(t *testing.T) {
	hook := &hookReceiver{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	tc := newTestCluster(t, "--alert-webhook", srv.URL+"/alerts", "--health-interval", "1s")
	tc.startReplicas(3)
	cpu := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := "n" + strconv.Itoa(i)
		cpu[id] = filepath.Join(tc.dir, id+".cpu")
		setCPU(t, cpu[id], "5")
		tc.startAgents(1, "--cpu-file", cpu[id])
	}
	// A workload that always exits: permanently failed after 3 attempts,
	// while the rest goes on.
	crasher, err := tc.submit(tc.leader().http, api.SubmitRequest{Name: "crasher", Command: "sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := tc.submitSleepers(6)
	leader, f := tc.leader(), tc.followers()[0]

	// Follow the events through a follower.
	evLog := filepath.Join(tc.dir, "events-f.log")
	follow := startProc(t, "events-f", evLog, "scheduler", append([]string{"events", "-f", "--addr", f.http, "--token", tc.token}, tc.cliTLSFlags()...)...)
	waitFor(t, 10*time.Second, "events -f to print the leader's election", func() bool {
		s, _ := readFile(evLog)
		return strings.Contains(s, api.EventLeaderElected)
	})

	victim := tc.agents[0]
	var moved []string
	for id, n := range nodesOf(tc.workloads(), ids) {
		if n == victim.id {
			moved = append(moved, id)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no sleeper on %s", victim.id)
	}
	before, beforeF := tc.scrape(leader.http), tc.scrape(f.http)
	agentRunning := func(m map[string]float64) float64 { return m[`mo_agent_workloads{state="running"}`] }
	beforeAgents := agentRunning(tc.scrape(tc.agents[1].listen)) + agentRunning(tc.scrape(tc.agents[2].listen))

	victim.proc.kill()
	killed := time.Now()
	var out string
	waitFor(t, 20*time.Second, "events -f: the node offline and each of its workloads recovered", func() bool {
		out, _ = readFile(evLog)
		if !containsLine(out, api.EventNodeOffline, victim.id) {
			return false
		}
		for _, id := range moved {
			if !containsLine(out, api.EventWorkloadRecovered, id) {
				return false
			}
		}
		return true
	})
	t.Logf("events -f showed the recovery %s after the kill:\n%s", time.Since(killed).Round(time.Millisecond), out)
	if !follow.alive() {
		t.Fatal("events -f exited")
	}
	offAt := lineIndex(out, api.EventNodeOffline, victim.id)
	for _, id := range moved {
		if failedAt, recAt := lineIndex(out, api.EventWorkloadFailed, id), lineIndex(out, api.EventWorkloadRecovered, id); !(offAt < failedAt && failedAt < recAt) {
			t.Fatalf("events out of order for %s (offline %d, failed %d, recovered %d):\n%s", id, offAt, failedAt, recAt, out)
		}
	}

	// The counts moved.
	waitFor(t, 10*time.Second, "the workloads running elsewhere", func() bool { return allRunning(tc.workloads(), ids) })
	after, afterF := tc.scrape(leader.http), tc.scrape(f.http)
	afterAgents := agentRunning(tc.scrape(tc.agents[1].listen)) + agentRunning(tc.scrape(tc.agents[2].listen))
	moves := []struct {
		what          string
		before, after float64
		min           float64
	}{
		{"leader nodes offline", before[`mo_nodes{status="offline"}`], after[`mo_nodes{status="offline"}`], 1},
		{"follower nodes offline (replicated)", beforeF[`mo_nodes{status="offline"}`], afterF[`mo_nodes{status="offline"}`], 1},
		{"recoveries succeeded", before[`mo_recoveries_total{result="succeeded"}`], after[`mo_recoveries_total{result="succeeded"}`], float64(len(moved))},
		{"recovery durations observed", before["mo_recovery_duration_seconds_count"], after["mo_recovery_duration_seconds_count"], float64(len(moved))},
		{"detection latencies observed", before["mo_node_detection_latency_seconds_count"], after["mo_node_detection_latency_seconds_count"], 1},
		{"failed health checks", before[`mo_health_check_duration_seconds_count{result="error"}`], after[`mo_health_check_duration_seconds_count{result="error"}`], 1},
		{"node_offline events", before[`mo_events_total{kind="node_offline"}`], after[`mo_events_total{kind="node_offline"}`], 1},
		{"NodeOffline alerts active", before[`mo_alerts_active{name="NodeOffline"}`], after[`mo_alerts_active{name="NodeOffline"}`], 1},
		{"instances running on the other agents", beforeAgents, afterAgents, float64(len(moved))},
	}
	for _, m := range moves {
		if m.after-m.before < m.min {
			t.Errorf("%s: %v before, %v after, want +%v", m.what, m.before, m.after, m.min)
		}
	}
	if after[`mo_nodes{status="online"}`] != before[`mo_nodes{status="online"}`]-1 || after[`mo_raft_state{state="leader"}`] != 1 ||
		afterF[`mo_raft_state{state="follower"}`] != 1 || afterF["mo_leader"] != 0 || after["mo_leader"] != 1 || after["mo_raft_term"] < 1 {
		t.Errorf("state gauges: leader %v, follower %v", after, afterF)
	}
	if after[`mo_http_requests_total{code="200",method="GET",route="/workloads"}`] < 1 {
		t.Errorf("no API request counted by route")
	}
	tc.c.call("GET", leader.http, "/workloads/"+ids[0], nil)
	raw := tc.scrape(leader.http)
	if raw[`mo_http_requests_total{code="200",method="GET",route="/workloads/:id"}`] < 1 {
		t.Errorf("GET /workloads/ID is not counted under its route pattern")
	}
	for k := range raw {
		for _, id := range append([]string{victim.id + `"`, victim.listen}, ids...) {
			if strings.Contains(k, id) {
				t.Errorf("a metric label holds a node or workload id: %s", k)
			}
		}
	}

	// NodeOffline: in /alerts through a follower, in the CLI, at the webhook.
	hook.wait(t, api.AlertFiring, api.AlertNodeOffline, victim.id)
	var al api.AlertList
	if err := tc.c.getJSON(f.http, "/alerts", &al); err != nil || !hasAlert(al, api.AlertNodeOffline, victim.id) {
		t.Fatalf("/alerts via a follower: %+v %v", al, err)
	}
	cliOut, _, code := tc.cli("alerts", "--addr", f.http)
	if code != 0 || !strings.Contains(cliOut, "NAME") || !strings.Contains(cliOut, api.AlertNodeOffline) || !strings.Contains(cliOut, victim.id) {
		t.Fatalf("scheduler alerts:\n%s", cliOut)
	}

	// HighResponseTime: n2 is paused for 1.7 s while a forced check waits
	// for it, so it answers in over 1 s but under the 2 s timeout; then it
	// answers fast again. Should the check start late (a loaded machine) and
	// take under 1 s, nothing fires: pause again.
	slow := tc.agents[1]
	for attempt := 1; !hook.has(api.AlertFiring, api.AlertHighResponseTime, slow.id); attempt++ {
		if attempt > 3 {
			t.Fatal("HighResponseTime did not fire after three slow answers")
		}
		syscall.Kill(slow.proc.pid(), syscall.SIGSTOP)
		checked := make(chan struct{})
		go func() { defer close(checked); tc.c.call("POST", leader.http, "/health/check", nil) }()
		time.Sleep(1700 * time.Millisecond) // the scenario: a slow answer
		syscall.Kill(slow.proc.pid(), syscall.SIGCONT)
		<-checked
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) && !hook.has(api.AlertFiring, api.AlertHighResponseTime, slow.id) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	hook.wait(t, api.AlertResolved, api.AlertHighResponseTime, slow.id)

	// NodeOffline resolves when the node is back.
	tc.startAgent(victim, "--cpu-file", cpu[victim.id])
	hook.wait(t, api.AlertResolved, api.AlertNodeOffline, victim.id)

	// RecoveryFailed: the crasher gave up after 3 attempts; stopping it resolves it.
	hook.wait(t, api.AlertFiring, api.AlertRecoveryFailed, crasher[0])
	var w api.Workload
	if err := tc.c.getJSON(leader.http, "/workloads/"+crasher[0], &w); err != nil || w.State != api.StatePermanentlyFailed || w.Attempts != 3 {
		t.Fatalf("crasher: %+v %v", w, err)
	}
	if _, errOut, code := tc.cli("stop", crasher[0]); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	hook.wait(t, api.AlertResolved, api.AlertRecoveryFailed, crasher[0])

	// RecoveryQueueHigh: 11 workloads on n1 alone (n2, n3 over the CPU
	// limit), n1 killed: 11 wait in the queue; n2 fits again: they recover.
	setCPUAndCheck(t, tc, map[string]string{"n2": cpu["n2"], "n3": cpu["n3"]}, "95")
	many, err := tc.submit(leader.http, api.SubmitRequest{Name: "many", Command: "sleep", Args: []string{"600"}, Count: intp(11)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "11 workloads running on n1", func() bool {
		ws := tc.workloads()
		for _, n := range nodesOf(ws, many) {
			if n != victim.id {
				return false
			}
		}
		return allRunning(ws, many)
	})
	victim.proc.kill()
	hook.wait(t, api.AlertFiring, api.AlertRecoveryQueueHigh, "cluster")
	if err := tc.c.getJSON(leader.http, "/alerts", &al); err != nil || !hasAlert(al, api.AlertRecoveryQueueHigh, "cluster") {
		t.Fatalf("/alerts: %+v %v", al, err)
	}
	setCPU(t, cpu["n2"], "10")
	hook.wait(t, api.AlertResolved, api.AlertRecoveryQueueHigh, "cluster")
	waitFor(t, 20*time.Second, "the 11 recovered", func() bool { return allRunning(tc.workloads(), many) })

	hook.mu.Lock()
	bad, total := hook.bad, len(hook.got)
	hook.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("the webhook got requests that are not notifications: %v", bad)
	}
	t.Logf("the webhook got %d notifications", total)
	lb, _ := readFile(filepath.Join(tc.dir, leader.id+".log"))
	if !strings.Contains(lb, "alert firing: alert=NodeOffline") || !strings.Contains(lb, "alert resolved: alert=RecoveryQueueHigh") {
		t.Errorf("the leader's log has no structured alert lines")
	}
	follow.kill()
	tc.noSecretsInLogs(tc.token)
}

// A webhook that is down (a closed port) does not slow detection or
// recovery: the usual bounds of TestAgentKillRecovers hold, the deliveries
// are retried in the background. Logs are JSON (--log-json) and hold
// neither the token nor the webhook URL's secret path.
func TestWebhookDownDoesNotSlowRecovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/hooks/s3cr3t-path"
	ln.Close()
	tc := newTestCluster(t, "--alert-webhook", closed, "--log-json")
	tc.startReplicas(1)
	tc.startAgents(3, "--log-json")
	ids := tc.submitSleepers(3)
	victim := tc.agentByID(nodesOf(tc.workloads(), ids)[ids[0]])
	victim.proc.kill()
	killed := time.Now()
	waitFor(t, 10*time.Second, "the agent offline", func() bool { return tc.countNodes(api.NodeOffline) == 1 })
	detected := time.Since(killed)
	waitFor(t, 15*time.Second, "its workloads running elsewhere", func() bool {
		ws := tc.workloads()
		for _, n := range nodesOf(ws, ids) {
			if n == victim.id {
				return false
			}
		}
		return allRunning(ws, ids)
	})
	t.Logf("with the webhook down: offline after %s, recovered after %s", detected.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	l := tc.replicas[0]
	var al api.AlertList
	if err := tc.c.getJSON(l.http, "/alerts", &al); err != nil || !hasAlert(al, api.AlertNodeOffline, victim.id) {
		t.Fatalf("/alerts: %+v %v", al, err)
	}
	waitFor(t, 10*time.Second, "a failed delivery retried", func() bool {
		return tc.scrape(l.http)["mo_alert_webhook_retries_total"] >= 1
	})

	// Machine-readable logs: every line of the replica and the agents is a
	// JSON object; the alert is a structured event.
	sawAlert := false
	for _, name := range []string{l.id, "n1", "n2", "n3"} {
		b, _ := readFile(filepath.Join(tc.dir, name+".log"))
		for _, line := range strings.Split(strings.TrimSpace(b), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s.log: not JSON: %q", name, line)
			}
			if m["@message"] == "alert firing" && m["alert"] == api.AlertNodeOffline && m["subject"] == victim.id {
				sawAlert = true
			}
		}
	}
	if !sawAlert {
		t.Error("no JSON 'alert firing' line for NodeOffline")
	}
	tc.noSecretsInLogs(tc.token, "s3cr3t-path")
}

func hasAlert(l api.AlertList, name, subject string) bool {
	for _, a := range l.Alerts {
		if a.Name == name && a.Subject == subject && !a.Since.IsZero() && a.Summary != "" {
			return true
		}
	}
	return false
}

// containsLine reports whether a line of out holds both kind and subject.
func containsLine(out, kind, subject string) bool { return lineIndex(out, kind, subject) >= 0 }

// lineIndex returns the index of the first line that holds kind and subject, or -1.
func lineIndex(out, kind, subject string) int {
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == kind && f[3] == subject {
			return i
		}
	}
	return -1
}
