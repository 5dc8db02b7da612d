package integration

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Bad input gets a clear JSON error with the right status and changes nothing,
// whether it reaches the leader or a follower.
func TestBadInputChangesNothing(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	ids, err := tc.submit(tc.leader().http, api.SubmitRequest{Name: "good", Command: "sleep", Args: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	l := tc.leader()
	// With no node the leader records why the good workload waits; let that
	// settle before the state is compared.
	waitFor(t, 20*time.Second, "the good workload's wait reason", func() bool {
		var w api.Workload
		return tc.c.getJSON(l.http, "/workloads/"+ids[0], &w) == nil && w.Reason != ""
	})
	_, before, _ := tc.c.call("GET", l.http, "/state", nil)
	big := `{"name":"x","command":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name, method, path string
		body               string
		want               int
	}{
		{"malformed", "POST", "/workloads", `{"name":"x",`, 400},
		{"not json", "POST", "/workloads", `hello`, 400},
		{"empty", "POST", "/workloads", ``, 400},
		{"unknown field", "POST", "/workloads", `{"name":"x","command":"true","colour":"red"}`, 400},
		{"missing name", "POST", "/workloads", `{"command":"true"}`, 400},
		{"blank name", "POST", "/workloads", `{"name":"  ","command":"true"}`, 400},
		{"missing command", "POST", "/workloads", `{"name":"x"}`, 400},
		{"count zero", "POST", "/workloads", `{"name":"x","command":"true","count":0}`, 400},
		{"count negative", "POST", "/workloads", `{"name":"x","command":"true","count":-3}`, 400},
		{"count too big", "POST", "/workloads", `{"name":"x","command":"true","count":1001}`, 400},
		{"count wrong type", "POST", "/workloads", `{"name":"x","command":"true","count":"3"}`, 400},
		{"args wrong type", "POST", "/workloads", `{"name":"x","command":"true","args":"-l"}`, 400},
		{"env wrong type", "POST", "/workloads", `{"name":"x","command":"true","env":["A=1"]}`, 400},
		{"exclusive a string", "POST", "/workloads", `{"name":"x","command":"true","exclusive":"yes"}`, 400},
		{"exclusive a number", "POST", "/workloads", `{"name":"x","command":"true","exclusive":1}`, 400},
		{"heartbeat for another node", "POST", "/nodes/n1/heartbeat", `{"node_id":"n2","seq":1}`, 400},
		{"heartbeat malformed", "POST", "/nodes/n1/heartbeat", `{"seq":"one"}`, 400},
		{"relay malformed", "POST", "/cluster/heartbeats", `{"beats":["n1"]}`, 400},
		{"bad env name", "POST", "/workloads", `{"name":"x","command":"true","env":{"A=B":"1"}}`, 400},
		{"trailing data", "POST", "/workloads", `{"name":"x","command":"true"} {}`, 400},
		{"array body", "POST", "/workloads", `[{"name":"x","command":"true"}]`, 400},
		{"too big", "POST", "/workloads", big, 413},
		{"stop unknown", "DELETE", "/workloads/workload_1_999999", ``, 404},
		{"get unknown", "GET", "/workloads/workload_1_999999", ``, 404},
		{"register without address", "POST", "/nodes", `{"id":"n9"}`, 400},
		{"register bad address", "POST", "/nodes", `{"id":"n9","address":"nohost"}`, 400},
		{"join without fields", "POST", "/cluster/join", `{"id":"s9"}`, 400},
		{"remove without id", "POST", "/cluster/remove", `{}`, 400},
		{"no such route", "GET", "/nope", ``, 404},
		{"wrong method", "PUT", "/workloads", `{}`, 405},
	}
	for _, target := range []*replica{l, tc.followers()[0]} {
		for _, c := range cases {
			code, b, err := tc.c.call(c.method, target.http, c.path, c.body)
			if err != nil {
				t.Fatalf("%s via %s: %v", c.name, target.id, err)
			}
			if code != c.want {
				t.Errorf("%s via %s: status %d, want %d (%s)", c.name, target.id, code, c.want, b)
				continue
			}
			var e api.Error
			if err := jsonUnmarshal(b, &e); err != nil || e.Error == "" {
				t.Errorf("%s via %s: body %q is not a JSON error", c.name, target.id, b)
			}
		}
	}
	_, after, _ := tc.c.call("GET", l.http, "/state", nil)
	if !bytes.Equal(before, after) {
		t.Fatalf("bad input changed the state:\nbefore %s\nafter %s", before, after)
	}
}

// Every scheduler endpoint answers 401 without the token and with a wrong one.
func TestSchedulerRequiresToken(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(1)
	paths := []struct{ method, path string }{
		{"GET", "/workloads"}, {"POST", "/workloads"}, {"GET", "/workloads/x"}, {"DELETE", "/workloads/x"},
		{"GET", "/workloads/x/logs"}, {"GET", "/nodes"}, {"POST", "/nodes"}, {"GET", "/state"},
		{"GET", "/cluster/status"}, {"GET", "/cluster/self"}, {"POST", "/cluster/join"}, {"POST", "/cluster/remove"},
		{"GET", "/health/summary"}, {"POST", "/health/check"}, {"GET", "/recovery/metrics"}, {"GET", "/nope"},
	}
	for _, tok := range []string{"", "wrong-token"} {
		c := newClient(tok)
		for _, p := range paths {
			code, b, err := c.call(p.method, tc.replicas[0].http, p.path, `{"name":"x","command":"true"}`)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d %s, want 401", p.method, p.path, tok, code, b)
			}
		}
	}
	var list api.WorkloadList
	if err := tc.c.getJSON(tc.replicas[0].http, "/workloads", &list); err != nil || len(list.Workloads) != 0 {
		t.Fatalf("unauthorised submissions changed state: %v %v", list, err)
	}
}

// A replica refuses to start without a token unless --insecure.
func TestServeRefusesWithoutToken(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), "serve", "--id", "s1", "--http", addr(freePort(t)), "--raft", addr(freePort(t)), "--data", dir, "--bootstrap")
	cmd.Env = envWithout("SCHEDULER_TOKEN")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "token") {
		t.Fatalf("want exit 2 mentioning the token, got %v: %s", err, out)
	}
	// Binding a wildcard without an advertise address is refused too.
	cmd = exec.Command(filepath.Join(binDir, "scheduler"), "serve", "--id", "s1", "--http", "0.0.0.0:0", "--raft", addr(freePort(t)), "--data", dir, "--bootstrap", "--token", "t")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "advertise") {
		t.Fatalf("wildcard bind: want exit 2 mentioning --advertise-http, got %v: %s", err, out)
	}
}

// A --join list where no replica answers: keeps retrying, then exits with a
// clear error after the bounded time.
func TestJoinGivesUp(t *testing.T) {
	dir := t.TempDir()
	dead := addr(freePort(t))
	p := startProc(t, "s2", filepath.Join(dir, "s2.log"), "scheduler", "serve", "--id", "s2", "--http", addr(freePort(t)), "--raft", addr(freePort(t)),
		"--data", filepath.Join(dir, "data"), "--token", "t", "--join", dead, "--join-timeout", "3s")
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the replica did not give up joining")
	}
	b, _ := os.ReadFile(p.log)
	if p.err == nil || !strings.Contains(string(b), "could not join") || !strings.Contains(string(b), dead) {
		t.Fatalf("want a failed exit naming the join address, got %v:\n%s", p.err, b)
	}
	if !strings.Contains(string(b), "retrying") {
		t.Fatalf("no retry log line:\n%s", b)
	}
}

func envWithout(name string) []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
