package main

import (
	"bytes"
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// fullWorkload is a running service with every lifecycle field set.
func fullWorkload() api.Workload {
	spec := api.Spec{
		Ports:     []string{"http", "admin"},
		Check:     &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/healthz"},
		Resources: &api.Resources{CPUMillicores: 500, MemoryMB: 256, Pids: 64},
	}
	spec.Normalize()
	return api.Workload{ID: "workload_1_1", Name: "web", Command: "python3", Args: []string{"-m", "http.server"}, Node: "n1", State: api.StateRunning,
		PID: 4242, Generation: 2, Spec: spec, Health: api.HealthHealthy, Restarts: 1, Ports: map[string]int{"http": 20001, "admin": 20002},
		Reason: "", CreatedAt: time.Unix(0, 0), UpdatedAt: time.Unix(0, 0)}
}

// rowOf returns the value printed after a "Label:" line, spaces collapsed.
func rowOf(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, label); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	return "<none>"
}

func TestPrintWorkloadShowsTheLifecycle(t *testing.T) {
	var b bytes.Buffer
	printWorkload(&b, fullWorkload(), "127.0.0.1:8080")
	out := b.String()
	for label, want := range map[string]string{
		"Type:":      "service",
		"Health:":    "healthy",
		"Restarts:":  "1",
		"Ports:":     "http: 127.0.0.1:20001",
		"Resources:": "500 millicores, 256 MiB memory, 64 pids",
		"Check:":     "http GET /healthz on port http every 5s, timeout 1s, unhealthy after 3 failures, grace 10s",
		"Restart:":   "3 attempts in place, delay 1s doubling up to 1m",
	} {
		if got := rowOf(out, label); got != want {
			t.Errorf("%s %q, want %q\n%s", label, got, want, out)
		}
	}
	// The second port goes on the next line, under the first.
	if !strings.Contains(out, "\n             admin: 127.0.0.1:20002\n") {
		t.Errorf("second port:\n%s", out)
	}
}

// A workload from before specs existed, completed batch workloads, and one
// that waits with a reason.
func TestPrintWorkloadDefaultsAndReason(t *testing.T) {
	var b bytes.Buffer
	printWorkload(&b, api.Workload{ID: "w", Command: "sleep", State: api.StatePending, Reason: "no node has 2000 millicores free (n2 has 1500)"}, "")
	out := b.String()
	for label, want := range map[string]string{"Type:": "service", "Health:": "unknown", "Ports:": "-", "Resources:": "-", "Check:": "-",
		"Reason:": "no node has 2000 millicores free (n2 has 1500)", "Restarts:": "0"} {
		if got := rowOf(out, label); got != want {
			t.Errorf("%s %q, want %q\n%s", label, got, want, out)
		}
	}
	if strings.Contains(out, "Restart:") {
		t.Errorf("a restart line without a restart policy:\n%s", out)
	}
	b.Reset()
	zero := 0
	printWorkload(&b, api.Workload{ID: "w", Command: "true", State: api.StateCompleted, Node: "n1", ExitCode: &zero, Spec: api.Spec{Type: api.TypeBatch, Ports: []string{"http"}}}, "")
	out = b.String()
	if rowOf(out, "Type:") != "batch" || rowOf(out, "State:") != "completed" || rowOf(out, "Exit code:") != "0" || rowOf(out, "Ports:") != "http: -" {
		t.Errorf("completed batch:\n%s", out)
	}
	// Without the node's address, the port number alone.
	b.Reset()
	printWorkload(&b, fullWorkload(), "")
	if got := rowOf(b.String(), "Ports:"); got != "http: 20001" {
		t.Errorf("ports without an address: %q", got)
	}
	// IPv6 addresses are bracketed.
	b.Reset()
	printWorkload(&b, fullWorkload(), "[::1]:8080")
	if got := rowOf(b.String(), "Ports:"); got != "http: [::1]:20001" {
		t.Errorf("ports at an IPv6 node: %q", got)
	}
}

func TestPrintWorkloadsHasAHealthColumn(t *testing.T) {
	w := fullWorkload()
	old := api.Workload{ID: "workload_1_2", Name: "old", Command: "sleep", State: api.StatePending}
	var b bytes.Buffer
	printWorkloads(&b, []api.Workload{w, old})
	lines := strings.Split(b.String(), "\n")
	if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"ID", "NAME", "STATE", "HEALTH", "NODE", "PID", "ATTEMPTS", "COMMAND"}) {
		t.Fatalf("header %q", got)
	}
	if got := strings.Fields(lines[1]); got[2] != "running" || got[3] != "healthy" || got[4] != "n1" {
		t.Fatalf("row %q", got)
	}
	if got := strings.Fields(lines[2]); got[2] != "pending" || got[3] != "unknown" || got[4] != "-" {
		t.Fatalf("row %q", got)
	}
	if !strings.Contains(b.String(), "2 workloads: 1 pending, 1 running") {
		t.Fatalf("summary:\n%s", b.String())
	}
	// The EXCLUSIVE column comes before STATE, when shown.
	w.Exclusive = true
	b.Reset()
	printWorkloads(&b, []api.Workload{w})
	if got := strings.Fields(strings.Split(b.String(), "\n")[0]); got[2] != "EXCLUSIVE" || got[3] != "STATE" || got[4] != "HEALTH" {
		t.Fatalf("header %q", got)
	}
}

// submit's flags build the spec; the scheduler validates it.
func TestSubmitSpecFlags(t *testing.T) {
	parseSpec := func(args ...string) api.Spec {
		t.Helper()
		fs := flag.NewFlagSet("submit", flag.ContinueOnError)
		sf := addSpecFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return sf.spec()
	}
	if s := parseSpec(); !reflect.DeepEqual(s, api.Spec{}) {
		t.Fatalf("no flags: %+v", s)
	}
	s := parseSpec("--type", "batch", "--port", "http", "--check", "http", "--check-path", "/healthz", "--check-interval", "2s",
		"--cpu-millicores", "500", "--memory-mb", "64", "--restart-attempts", "2", "--restart-delay", "500ms")
	want := api.Spec{Type: api.TypeBatch, Ports: []string{"http"},
		Check:     &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/healthz", Interval: api.Duration(2 * time.Second)},
		Restart:   &api.RestartPolicy{Attempts: 2, Delay: api.Duration(500 * time.Millisecond)},
		Resources: &api.Resources{CPUMillicores: 500, MemoryMB: 64}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("spec %+v\nwant %+v", s, want)
	}
	s = parseSpec("--check", "exec", "--check-command", "test -f /tmp/ok", "--port", "a,b")
	if s.Check.Command[0] != "test" || len(s.Check.Command) != 3 || s.Check.Port != "" || !reflect.DeepEqual(s.Ports, []string{"a", "b"}) {
		t.Fatalf("exec check: %+v %+v", s, s.Check)
	}
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	addSpecFlags(fs)
	if err := fs.Parse([]string{"--check-interval", "0s"}); err == nil {
		t.Fatal("a zero interval accepted")
	}
}

func TestSubmitCheckFlagsNeedCheck(t *testing.T) {
	var code int
	_, errOut := capture(t, func() {
		code = runSubmit([]string{"--addr", "127.0.0.1:1", "--name", "x", "--check-path", "/", "--", "sleep", "1"})
	})
	if code != exitUsage || !strings.Contains(errOut, "--check-path need --check") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

func TestSplitCheckCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"curl -f localhost", []string{"curl", "-f", "localhost"}},
		{`["sh","-c","curl -f localhost:8080"]`, []string{"sh", "-c", "curl -f localhost:8080"}},
		{`[not json`, []string{"[not json"}},
	}
	for _, c := range cases {
		if got := splitCheckCommand(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitCheckCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
