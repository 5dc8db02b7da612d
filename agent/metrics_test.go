package agent

import (
	"net/http"
	"strings"
	"testing"
)

// GET /metrics needs the token and shows the instances by state, the sampled
// usage and the process metrics, with no workload id in any label.
func TestMetricsEndpoint(t *testing.T) {
	ta := newTestAgent(t)
	if code, _, _ := ta.do(http.MethodGet, "/metrics", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	ta.mustStart(sh("w-metrics", "sleep 600", 1, 1))
	code, out, h := ta.do(http.MethodGet, "/metrics", testToken, nil)
	body := string(out)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s", code, h.Get("Content-Type"))
	}
	for _, want := range []string{
		`mo_agent_workloads{state="running"} 1`,
		`mo_agent_workloads{state="exited"} 0`,
		"mo_agent_cpu_usage_percent ",
		"mo_agent_memory_usage_percent ",
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
	if strings.Contains(body, "w-metrics") {
		t.Error("a workload id appears in the metrics")
	}
}
