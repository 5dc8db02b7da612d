package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func TestEscapeText(t *testing.T) {
	cases := map[string]string{
		"web":                   "web",
		"日本語 🚀":                 "日本語 🚀",
		"evil\n\x1b[31mRED":     `evil\n\x1b[31mRED`,
		"tab\there\r":           `tab\there\r`,
		"nul\x00del\x7f":        `nul\x00del\x7f`,
		"c1\u0085csi\u009b":     `c1\u0085csi\u009b`,
		"sep\u2028":             `sep\u2028`,
		"bad\xffutf8":           `bad\xffutf8`,
		"replacement \uFFFD ok": "replacement \uFFFD ok",
	}
	for in, want := range cases {
		if got := escapeText(in); got != want {
			t.Errorf("escapeText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDisplayWidth(t *testing.T) {
	cases := map[string]int{
		"":          0,
		"web":       3,
		"日本語":       6,
		"🚀":         2,
		"ｗｉｄｅ":      8, // fullwidth
		"e\u0301":   1, // e + combining acute
		"한국어":       6,
		"Ünïcödé":   7,
		"a\u200db":  2, // zero-width joiner
		"☃":         1, // narrow symbol
		"中文 and 🚀!": 12,
	}
	for in, want := range cases {
		if got := displayWidth(in); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", in, got, want)
		}
	}
}

// Columns line up on a terminal with CJK and emoji cells, and a control
// character in a cell is shown escaped, not sent to the terminal.
func TestTablePadsByDisplayWidth(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b)
	tb.row("ID", "NAME", "STATE")
	tb.row("w1", "web", "running")
	tb.row("w2", "日本語", "running")
	tb.row("w3", "🚀🚀", "failed")
	tb.row("w4", "evil\n\x1b[31mRED", "running")
	tb.flush()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	col := -1
	for _, l := range lines {
		i := strings.LastIndex(l, "  ") + 2 // where STATE starts
		if c := displayWidth(l[:i]); col == -1 {
			col = c
		} else if c != col {
			t.Errorf("STATE starts at column %d, not %d, in %q", c, col, l)
		}
	}
	if strings.ContainsAny(b.String(), "\x1b") || !strings.Contains(b.String(), `evil\n\x1b[31mRED`) {
		t.Errorf("control characters not escaped:\n%q", b.String())
	}
}

func TestBoxTablePadsByDisplayWidth(t *testing.T) {
	var b bytes.Buffer
	printBoxTable(&b, [][]string{{"Node", "Status"}, {"n1 (127.0.0.1:8081)", "online"}, {"節点 (127.0.0.1:8082)", "offline"}})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for _, l := range lines {
		if w := displayWidth(l); w != displayWidth(lines[0]) {
			t.Errorf("line %q is %d columns wide, not %d", l, w, displayWidth(lines[0]))
		}
	}
}

func TestSummaryLine(t *testing.T) {
	states := append(make([]string, 0, 500), "failed", "failed")
	for range 498 {
		states = append(states, "running")
	}
	if got := summaryLine(500, "workload", states, api.WorkloadStates); got != "500 workloads: 498 running, 2 failed" {
		t.Errorf("got %q", got)
	}
	if got := summaryLine(1, "node", []string{"online"}, api.NodeStatuses); got != "1 node: 1 online" {
		t.Errorf("got %q", got)
	}
	if got := summaryLine(0, "workload", nil, api.WorkloadStates); got != "0 workloads" {
		t.Errorf("got %q", got)
	}
}

// Names, summaries and messages from the cluster are escaped when printed.
func TestUserTextIsEscapedInEveryPrinter(t *testing.T) {
	evil := "evil\n\x1b[31mRED"
	var b bytes.Buffer
	printWorkload(&b, api.Workload{ID: "w1", Name: evil, Command: "sh", Args: []string{"-c", "echo a\necho b"}, Reason: evil, History: []api.Placement{{Node: evil}}}, "")
	printAlerts(&b, []api.Alert{{Name: "X", Subject: evil, Summary: evil, Since: time.Now()}}, time.Now())
	(&eventPrinter{w: &b}).print(api.Event{Kind: "k", Subject: evil, Message: evil})
	printHealth(&b, api.HealthSummary{NodeDetails: []api.NodeDetail{{NodeKey: "127.0.0.1:1", NodeID: evil}}})
	printRecovery(&b, api.RecoveryMetrics{FailedWorkloads: []string{evil}, HealthChecks: map[string]api.HealthCheckDetail{evil: {}}})
	if strings.Contains(b.String(), "\x1b") {
		t.Fatalf("an escape character reached the output:\n%q", b.String())
	}
	if n := strings.Count(b.String(), `evil\n\x1b[31mRED`); n < 9 {
		t.Fatalf("%d escaped names, want 9:\n%s", n, b.String())
	}
}

func TestRecoverySuccessRateWithoutAttempts(t *testing.T) {
	var b bytes.Buffer
	printRecovery(&b, api.RecoveryMetrics{SuccessRate: 100})
	if !strings.Contains(b.String(), "success rate n/a") || strings.Contains(b.String(), "100.0") {
		t.Fatalf("nothing attempted:\n%s", b.String())
	}
	b.Reset()
	printRecovery(&b, api.RecoveryMetrics{Attempted: 4, Succeeded: 3, Failed: 1, SuccessRate: 75})
	if !strings.Contains(b.String(), "success rate 75.0%") {
		t.Fatalf("4 attempted:\n%s", b.String())
	}
}

func TestHealthNamesNodesByIDAndAddress(t *testing.T) {
	var b bytes.Buffer
	printHealth(&b, api.HealthSummary{NodeDetails: []api.NodeDetail{{NodeKey: "127.0.0.1:8081", NodeID: "n1", Status: "online"}}})
	if !strings.Contains(b.String(), "| n1 (127.0.0.1:8081) | online ") || !strings.Contains(b.String(), "| Node ") {
		t.Fatalf("health table:\n%s", b.String())
	}
	b.Reset()
	printRecovery(&b, api.RecoveryMetrics{HealthChecks: map[string]api.HealthCheckDetail{"127.0.0.1:8081": {NodeID: "n1", Status: "offline", ConsecutiveFailures: 2}}})
	if !strings.Contains(b.String(), "  n1 (127.0.0.1:8081): offline (Failures: 2, Response: N/A)") {
		t.Fatalf("recovery:\n%s", b.String())
	}
}

// An error from the server that quotes user text reaches the terminal escaped.
func TestFailEscapesErrors(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	code := fail("stop", errors.New("workload \x1b[31mevil not found\nsecond line"))
	os.Stderr = old
	w.Close()
	b, _ := io.ReadAll(r)
	if code != exitFail || strings.Contains(string(b), "\x1b") || !strings.Contains(string(b), `\x1b[31mevil`) || !strings.Contains(string(b), "\nsecond line") {
		t.Fatalf("fail printed %q (exit %d)", b, code)
	}
}
