package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// fastNodePoll makes node drain look at the node every few milliseconds.
func fastNodePoll(t *testing.T) {
	old := nodePollInterval
	nodePollInterval = 5 * time.Millisecond
	t.Cleanup(func() { nodePollInterval = old })
}

// drainDeadline is the deadline of the drains in these tests.
var drainDeadline = time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)

// draining is node n1 with a drain under way and left workloads on it.
func draining(left int) api.Node {
	return api.Node{ID: "n1", Address: "127.0.0.1:8081", Status: api.NodeOnline, Eligible: false, Draining: true,
		Drain: &api.DrainStatus{StartedAt: drainDeadline.Add(-time.Minute), Deadline: drainDeadline, Remaining: left}}
}

// drained is node n1 after its drain finished.
func drained() api.Node {
	return api.Node{ID: "n1", Address: "127.0.0.1:8081", Status: api.NodeOnline, Eligible: false}
}

// nodesInTurn answers the nodes one per call, the last one from then on.
func nodesInTurn(nodes ...api.Node) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := nodes[min(i, len(nodes)-1)]
		i++
		mu.Unlock()
		answer(n)(w, r)
	}
}

// runNodeCmd runs a node subcommand against the fake and returns its exit
// code and output.
func runNodeCmd(t *testing.T, a *jobAPI, args ...string) (int, string, string) {
	t.Helper()
	var code int
	full := append([]string{args[0], "--addr", a.addr, "--timeout", "2s"}, args[1:]...)
	out, errOut := capture(t, func() { code = runNode(full) })
	return code, out, errOut
}

// leftLine is the progress line of a drain of n1 with left workloads.
func leftLine(left string) string {
	return "drain of n1: " + left + " left, deadline " + clockTime(drainDeadline, time.Now())
}

const drainFinished = "drain of n1 finished: it takes no new work until 'scheduler node eligibility n1 --enable'"

func TestNodeDrainFollowsToTheEnd(t *testing.T) {
	fastNodePoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/drain": answer(draining(4)),
		"GET /nodes/n1":        nodesInTurn(draining(4), draining(4), draining(2), draining(1), draining(0), drained()),
	})
	code, out, errOut := runNodeCmd(t, a, "drain", "n1", "--deadline", "10m")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	wantInOrder(t, out, leftLine("4 workloads"), leftLine("2 workloads"), leftLine("1 workload"), leftLine("0 workloads"), drainFinished)
	if strings.Count(out, "4 workloads left") != 1 {
		t.Errorf("a line repeated while nothing changed:\n%s", out)
	}
	var body map[string]any
	if err := json.Unmarshal(a.body("POST /nodes/n1/drain"), &body); err != nil || body["enable"] != true || body["deadline"] != "10m0s" {
		t.Errorf("drain body %s (%v)", a.body("POST /nodes/n1/drain"), err)
	}
	if n := len(a.called("GET /nodes/n1")); n < 6 {
		t.Errorf("%d looks at the node, want 6", n)
	}
}

// Without --deadline the server's default applies: no deadline is sent.
func TestNodeDrainDefaultDeadlineAndDetach(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{"POST /nodes/n1/drain": answer(draining(3))})
	code, out, errOut := runNodeCmd(t, a, "drain", "--detach", "n1")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	wantInOrder(t, out, leftLine("3 workloads"), "not following the drain: see 'scheduler nodes'; cancel it with 'scheduler node drain n1 --disable'")
	if got := string(a.body("POST /nodes/n1/drain")); got != `{"enable":true}` {
		t.Errorf("drain body %s", got)
	}
	if calls := a.called("GET /nodes/n1"); len(calls) != 0 {
		t.Errorf("--detach followed the drain: %v", calls)
	}
	// --detach --json: the node as the server answered, alone on stdout.
	code, out, _ = runNodeCmd(t, a, "drain", "n1", "--detach", "--json")
	var n api.Node
	if err := json.Unmarshal([]byte(out), &n); code != exitOK || err != nil || !n.Draining || n.Drain.Remaining != 3 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
}

func TestNodeDrainDisable(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/drain": answer(api.Node{ID: "n1", Status: api.NodeOnline, Eligible: true}),
	})
	code, out, errOut := runNodeCmd(t, a, "drain", "n1", "--disable")
	if code != exitOK || !strings.Contains(out, "node n1: no drain under way any more; it is eligible and takes new work") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := string(a.body("POST /nodes/n1/drain")); got != `{"enable":false}` {
		t.Errorf("cancel body %s", got)
	}
	if calls := a.called("GET /nodes/n1"); len(calls) != 0 {
		t.Errorf("--disable followed: %v", calls)
	}
}

// A bad --deadline is a usage error found before any call.
func TestNodeDrainBadDeadline(t *testing.T) {
	a := newJobAPI(t, nil)
	for _, tc := range []struct{ args, want []string }{
		{[]string{"drain", "n1", "--deadline", "soon"}, []string{`--deadline "soon": want a duration such as 10m or 1h`}},
		{[]string{"drain", "n1", "--deadline", "10"}, []string{`--deadline "10": want a duration`}},
		{[]string{"drain", "n1", "--deadline", "0s"}, []string{`--deadline "0s": must be positive`}},
		{[]string{"drain", "n1", "--deadline=-5m"}, []string{`--deadline "-5m": must be positive`}},
		{[]string{"drain", "n1", "--deadline", "25h"}, []string{`--deadline "25h": at most 24h0m0s`}},
		{[]string{"drain", "n1", "--disable", "--deadline", "1h"}, []string{"--deadline is for starting a drain; --disable cancels one"}},
		{[]string{"drain"}, []string{"wrong number of arguments", "Usage: scheduler node drain ID"}},
		{[]string{"drain", "n1", "n2"}, []string{"wrong number of arguments"}},
	} {
		code, _, errOut := runNodeCmd(t, a, tc.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
	if calls := a.all(); len(calls) != 0 {
		t.Fatalf("calls after usage errors: %v", calls)
	}
}

// With --json the progress goes to stderr and stdout holds the final node.
func TestNodeDrainJSON(t *testing.T) {
	fastNodePoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/drain": answer(draining(2)),
		"GET /nodes/n1":        nodesInTurn(draining(1), drained()),
	})
	code, out, errOut := runNodeCmd(t, a, "drain", "n1", "--json")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	wantInOrder(t, errOut, leftLine("2 workloads"), leftLine("1 workload"), drainFinished)
	var n api.Node
	if err := json.Unmarshal([]byte(out), &n); err != nil || n.ID != "n1" || n.Draining || n.Eligible {
		t.Fatalf("stdout is not the drained node (%v):\n%s", err, out)
	}
}

// A drain cancelled while followed is not a finished one: exit 1.
func TestNodeDrainCancelledWhileFollowed(t *testing.T) {
	fastNodePoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/drain": answer(draining(2)),
		"GET /nodes/n1":        nodesInTurn(draining(2), api.Node{ID: "n1", Status: api.NodeOnline, Eligible: true}),
	})
	code, out, errOut := runNodeCmd(t, a, "drain", "n1")
	if code != exitFail || !strings.Contains(out, "drain of n1 was cancelled: it takes new work again") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// Ctrl-C stops following and leaves the drain going.
func TestNodeDrainInterruptLeavesTheDrain(t *testing.T) {
	fastNodePoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{"GET /nodes/n1": answer(draining(3))})
	f := &drainFollower{c: testClient(2*time.Second, a.addr), id: "n1", out: io.Discard, node: draining(3)}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var code int
	_, errOut := capture(t, func() { code = f.follow(ctx) })
	if code != exitFail || !strings.Contains(errOut, "interrupted: stopped following; the drain of n1 goes on (cancel it with 'scheduler node drain n1 --disable')") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	for _, c := range a.all() {
		if c != "GET /nodes/n1" {
			t.Fatalf("call %q while following", c)
		}
	}
}

// A call that fails ends the following with exit 1 and the server's word.
func TestNodeDrainErrors(t *testing.T) {
	fastNodePoll(t)
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/drain": answer(draining(2)),
		"GET /nodes/n1":        nodesInTurn(draining(2), draining(2)),
	})
	code, out, errOut := runNodeCmd(t, a, "drain", "n9")
	if code != exitFail || !strings.Contains(errOut, "scheduler node drain: ") || !strings.Contains(errOut, "no route POST /nodes/n9/drain") {
		t.Fatalf("unknown node: exit %d\n%s%s", code, out, errOut)
	}
	a.route("GET /nodes/n1", answerErr(http.StatusNotFound, "no node n1"))
	code, _, errOut = runNodeCmd(t, a, "drain", "n1")
	if code != exitFail || !strings.Contains(errOut, "no node n1") || !strings.Contains(errOut, "stopped following; the drain of n1 may still be under way") {
		t.Fatalf("node gone while followed: exit %d\n%s", code, errOut)
	}
}

func TestNodeEligibility(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"POST /nodes/n1/eligibility": func(w http.ResponseWriter, r *http.Request) {
			var req api.EligibilityRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			answer(api.Node{ID: "n1", Status: api.NodeOnline, Eligible: *req.Eligible})(w, r)
		},
		"POST /nodes/n2/eligibility": answerErr(http.StatusConflict, "node n2 is draining; cancel the drain first"),
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eligibility", "n1"}, "give exactly one of --enable and --disable"},
		{[]string{"eligibility", "n1", "--enable", "--disable"}, "give exactly one of --enable and --disable"},
		{[]string{"eligibility", "--enable"}, "wrong number of arguments"},
	} {
		code, _, errOut := runNodeCmd(t, a, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", tc.args, code, tc.want, errOut)
		}
	}
	if calls := a.all(); len(calls) != 0 {
		t.Fatalf("calls after usage errors: %v", calls)
	}
	code, out, errOut := runNodeCmd(t, a, "eligibility", "n1", "--disable")
	if code != exitOK || out != "node n1 is ineligible: it keeps what it runs and takes no new work\n" || string(a.body("POST /nodes/n1/eligibility")) != `{"eligible":false}` {
		t.Fatalf("--disable: exit %d, %q%s, body %s", code, out, errOut, a.body("POST /nodes/n1/eligibility"))
	}
	code, out, _ = runNodeCmd(t, a, "eligibility", "--enable", "n1")
	if code != exitOK || out != "node n1 is eligible: it takes new work\n" || string(a.body("POST /nodes/n1/eligibility")) != `{"eligible":true}` {
		t.Fatalf("--enable: exit %d, %q", code, out)
	}
	code, out, _ = runNodeCmd(t, a, "eligibility", "--enable", "--json", "n1")
	var n api.Node
	if err := json.Unmarshal([]byte(out), &n); code != exitOK || err != nil || !n.Eligible {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	code, _, errOut = runNodeCmd(t, a, "eligibility", "n2", "--enable")
	if code != exitFail || !strings.Contains(errOut, "node n2 is draining; cancel the drain first") || !strings.Contains(errOut, "'scheduler node drain n2 --disable'") {
		t.Fatalf("draining node: exit %d\n%s", code, errOut)
	}
}

func TestNodePurge(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"DELETE /nodes/n1": answer(map[string]string{"purged": "n1"}),
		"DELETE /nodes/n2": answerErr(http.StatusConflict, "node n2 is online; only an offline node can be purged"),
		"DELETE /nodes/n3": answerErr(http.StatusNotFound, "node n3"),
	})
	code, out, errOut := runNodeCmd(t, a, "purge", "n1")
	if code != exitOK || out != "node n1 purged\n" {
		t.Fatalf("exit %d, %q%s", code, out, errOut)
	}
	code, out, _ = runNodeCmd(t, a, "purge", "--json", "n1")
	var resp map[string]string
	if err := json.Unmarshal([]byte(out), &resp); code != exitOK || err != nil || resp["purged"] != "n1" {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	code, _, errOut = runNodeCmd(t, a, "purge", "n2")
	if code != exitFail || !strings.Contains(errOut, "scheduler node purge: ") || !strings.Contains(errOut, "node n2 is online; only an offline node can be purged") {
		t.Fatalf("409: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runNodeCmd(t, a, "purge", "n3")
	if code != exitFail || !strings.Contains(errOut, "node n3") {
		t.Fatalf("404: exit %d\n%s", code, errOut)
	}
	if calls := a.called("DELETE /nodes/n2"); len(calls) != 1 {
		t.Errorf("a refused purge was sent %d times", len(calls))
	}
}

func TestGC(t *testing.T) {
	a := newJobAPI(t, map[string]http.HandlerFunc{"POST /gc": answer(api.GCResponse{Workloads: 12, Nodes: 1, Jobs: 0})})
	var code int
	out, errOut := capture(t, func() { code = runGC([]string{"--addr", a.addr, "--timeout", "2s"}) })
	if code != exitOK || out != "removed 12 workloads, 1 node, 0 jobs\n" {
		t.Fatalf("exit %d, %q%s", code, out, errOut)
	}
	out, _ = capture(t, func() { code = runGC([]string{"--addr", a.addr, "--json"}) })
	var r api.GCResponse
	if err := json.Unmarshal([]byte(out), &r); code != exitOK || err != nil || r != (api.GCResponse{Workloads: 12, Nodes: 1}) {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if got := gcLine(api.GCResponse{Workloads: 1, Nodes: 0, Jobs: 2}); got != "removed 1 workload, 0 nodes, 2 jobs" {
		t.Errorf("got %q", got)
	}
	a.route("POST /gc", answerErr(http.StatusServiceUnavailable, "no leader elected yet; retry"))
	_, errOut = capture(t, func() { code = runGC([]string{"--addr", a.addr, "--timeout", "1s"}) })
	if code != exitFail || !strings.Contains(errOut, "no leader") {
		t.Fatalf("no leader: exit %d\n%s", code, errOut)
	}
	_, errOut = capture(t, func() { code = runGC([]string{"--addr", a.addr, "extra"}) })
	if code != exitUsage {
		t.Fatalf("gc extra: exit %d\n%s", code, errOut)
	}
}

// The nodes table keeps its columns and adds ELIGIBLE and DRAINING.
func TestNodesTableShowsEligibleAndDraining(t *testing.T) {
	reg := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	list := api.NodeList{Nodes: []api.Node{
		{ID: "n1", Address: "127.0.0.1:8081", Status: api.NodeOnline, RegisteredAt: reg, Eligible: true},
		{ID: "n2", Address: "127.0.0.1:8082", Status: api.NodeOnline, RegisteredAt: reg, Draining: true, Drain: &api.DrainStatus{Remaining: 1}},
		{ID: "n3", Address: "127.0.0.1:8083", Status: api.NodeOffline, RegisteredAt: reg},
	}}
	a := newJobAPI(t, map[string]http.HandlerFunc{
		"GET /nodes":     answer(list),
		"GET /workloads": answer(api.WorkloadList{Workloads: []api.Workload{{ID: "w1", Node: "n1"}, {ID: "w2", Node: "n2"}, {ID: "w3", Node: "n1"}}}),
	})
	var code int
	out, errOut := capture(t, func() { code = runNodes([]string{"--addr", a.addr}) })
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID ADDRESS STATUS RUNNING REGISTERED ELIGIBLE DRAINING" {
		t.Fatalf("header %q", lines[0])
	}
	regStr := reg.Local().Format(time.RFC3339)
	for i, want := range []string{
		"n1 127.0.0.1:8081 online 2 " + regStr + " yes no",
		"n2 127.0.0.1:8082 online 1 " + regStr + " no yes",
		"n3 127.0.0.1:8083 offline 0 " + regStr + " no no",
	} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("row %d: %q, want %q", i+1, got, want)
		}
	}
	// --json is the server's answer, new fields included.
	out, _ = capture(t, func() { code = runNodes([]string{"--addr", a.addr, "--json"}) })
	var back api.NodeList
	if err := json.Unmarshal([]byte(out), &back); code != exitOK || err != nil || len(back.Nodes) != 3 || !back.Nodes[0].Eligible || !back.Nodes[1].Draining ||
		back.Nodes[1].Drain.Remaining != 1 || !strings.Contains(out, `"eligible": false`) {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
}

// The health table keeps its columns and adds Eligible, Draining and
// whether the agent is restarting; the summary counts draining and
// ineligible nodes when there are any.
func TestHealthShowsEligibleDrainingRestarting(t *testing.T) {
	var b bytes.Buffer
	printHealth(&b, api.HealthSummary{TotalNodes: 3, OnlineNodes: 3, DrainingNodes: 1, IneligibleNodes: 2, NodeDetails: []api.NodeDetail{
		{NodeKey: "127.0.0.1:8081", NodeID: "n1", Status: "online", Eligible: true},
		{NodeKey: "127.0.0.1:8082", NodeID: "n2", Status: "online", Draining: true},
		{NodeKey: "127.0.0.1:8083", NodeID: "n3", Status: "online", Restarting: true},
	}})
	out := b.String()
	for _, want := range []string{
		"Draining Nodes: 1\nIneligible Nodes: 2\n",
		"| Node                | Status | CPU % | Memory % | Failures | Response Time | Eligible | Draining | Agent      |",
		"| n1 (127.0.0.1:8081) | online | 0.0   | 0.0      | 0        | N/A           | yes      | no       | -          |",
		"| n2 (127.0.0.1:8082) | online | 0.0   | 0.0      | 0        | N/A           | no       | yes      | -          |",
		"| n3 (127.0.0.1:8083) | online | 0.0   | 0.0      | 0        | N/A           | no       | no       | restarting |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("health lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printHealth(&b, api.HealthSummary{TotalNodes: 1})
	if strings.Contains(b.String(), "Draining Nodes") || strings.Contains(b.String(), "Ineligible Nodes") {
		t.Errorf("counts of none shown:\n%s", b.String())
	}
}

// node alone or node help lists the subcommands; each has its -h; the
// completion knows them and their flags.
func TestNodeHelpAndCompletion(t *testing.T) {
	var code int
	_, errOut := capture(t, func() { code = runNode(nil) })
	if code != exitUsage || !strings.Contains(errOut, "Subcommands:") || !strings.Contains(errOut, "  eligibility ID --enable|--disable") {
		t.Fatalf("node: exit %d\n%s", code, errOut)
	}
	out, _ := capture(t, func() { code = runNode([]string{"help"}) })
	if code != exitOK || !strings.Contains(out, "  drain ID [--deadline D] [--disable] [--detach]") || !strings.Contains(out, "  purge ID") {
		t.Fatalf("node help: exit %d\n%s", code, out)
	}
	_, errOut = capture(t, func() { code = runNode([]string{"nosuch"}) })
	if code != exitUsage || !strings.Contains(errOut, `unknown subcommand "nosuch"`) {
		t.Fatalf("node nosuch: exit %d\n%s", code, errOut)
	}
	for _, c := range nodeCommands() {
		out, _ := capture(t, func() { code = runNode([]string{"help", c.name}) })
		for _, want := range []string{"Usage: scheduler node " + c.name, "Flags:", "-json", "Example", "  scheduler node " + c.name} {
			if code != exitOK || !strings.Contains(out, want) {
				t.Errorf("node help %s: exit %d, lacks %q\n%s", c.name, code, want, out)
			}
		}
	}
	out, _ = capture(t, func() { code = runHelp([]string{"node", "drain"}) })
	if code != exitOK || !strings.Contains(out, "Usage: scheduler node drain") || !strings.Contains(out, "-deadline D") {
		t.Errorf("help node drain: exit %d\n%s", code, out)
	}
	out, _ = capture(t, func() { runComplete([]string{"flags", "node", "drain"}) })
	for _, want := range []string{"--deadline\n", "--disable\n", "--detach\n", "--json\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("flags of node drain lack %q:\n%s", want, out)
		}
	}
	out, _ = capture(t, func() { runComplete([]string{"flags", "node", "eligibility"}) })
	if !strings.Contains(out, "--enable\n") || !strings.Contains(out, "--disable\n") {
		t.Errorf("flags of node eligibility:\n%s", out)
	}
	out, _ = capture(t, func() { runComplete([]string{"node-commands"}) })
	if out != "drain\neligibility\npurge\nhelp\n" {
		t.Errorf("node-commands: %q", out)
	}
	out, _ = capture(t, func() { runComplete([]string{"commands"}) })
	if !strings.Contains(out, "\nnode\n") || !strings.Contains(out, "\ngc\n") {
		t.Errorf("commands:\n%s", out)
	}
	for _, script := range []string{bashCompletion, zshCompletion} {
		if !strings.Contains(script, "__complete node-commands") || !strings.Contains(script, "drain|eligibility|purge)") {
			t.Errorf("a completion script does not complete node subcommands and IDs")
		}
	}
}
