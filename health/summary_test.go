package health

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func TestSummaryAndHealthChecks(t *testing.T) {
	last := time.Date(2024, 1, 15, 10, 30, 45, 0, time.UTC)
	nodes := []NodeHealth{
		{NodeID: "n1", Address: "localhost:8080", Status: api.NodeOnline, CPU: 15.2, Memory: 45.8, LastCheck: last,
			ConsecutiveSuccesses: 4, ResponseTime: 23 * time.Millisecond, Checked: true, Answered: true},
		{NodeID: "n2", Address: "localhost:8081", Status: api.NodeOffline, CPU: 30, Memory: 20, LastCheck: last,
			ConsecutiveFailures: 3, ResponseTime: 10 * time.Millisecond, Checked: true, Answered: true, LastError: "refused"},
		{NodeID: "n3", Address: "10.0.0.3:9000", Status: api.NodeDegraded, LastCheck: last,
			ConsecutiveFailures: 1, Checked: true, LastError: "refused"},
		{NodeID: "n4", Address: "[::1]:7000", Status: api.NodeOnline},
	}
	s := Summary(nodes, 2, 5)
	if s.TotalNodes != 4 || s.OnlineNodes != 2 || s.OfflineNodes != 1 || s.DegradedNodes != 1 ||
		s.FailedWorkloads != 2 || s.DesiredWorkloads != 5 || len(s.NodeDetails) != 4 {
		t.Fatalf("summary counts: %+v", s)
	}
	d := s.NodeDetails[0]
	if d.NodeKey != "localhost:8080" || d.Host != "localhost" || d.Port != 8080 || d.NodeID != "n1" ||
		d.Status != "online" || d.CPUUsage != 15.2 || d.MemoryUsage != 45.8 || d.LastCheck != "2024-01-15T10:30:45" ||
		d.ConsecutiveFailures != 0 || d.ResponseTime == nil || *d.ResponseTime != 0.023 {
		t.Fatalf("online detail: %+v", d)
	}
	d = s.NodeDetails[1]
	if d.Status != "offline" || d.ResponseTime != nil || d.CPUUsage != 0 || d.MemoryUsage != 0 || d.ConsecutiveFailures != 3 {
		t.Fatalf("offline detail: %+v", d)
	}
	if d := s.NodeDetails[2]; d.ResponseTime != nil || d.Port != 9000 || d.Host != "10.0.0.3" {
		t.Fatalf("never answered: %+v", d)
	}
	if d := s.NodeDetails[3]; d.LastCheck != "" || d.Host != "::1" || d.Port != 7000 || d.ResponseTime != nil {
		t.Fatalf("never checked: %+v", d)
	}
	b, _ := json.Marshal(s.NodeDetails[1])
	if !strings.Contains(string(b), `"response_time":null`) || !strings.Contains(string(b), `"node_key":"localhost:8081"`) {
		t.Fatalf("offline JSON: %s", b)
	}

	hc := HealthChecks(nodes)
	if len(hc) != 4 {
		t.Fatalf("health checks: %+v", hc)
	}
	c := hc["localhost:8080"]
	if c.NodeID != "n1" || c.Status != "online" || c.LastCheck != "2024-01-15T10:30:45" || c.ResponseTime == nil || *c.ResponseTime != 0.023 {
		t.Fatalf("online check: %+v", c)
	}
	if c := hc["localhost:8081"]; c.Status != "offline" || c.ResponseTime != nil || c.ConsecutiveFailures != 3 {
		t.Fatalf("offline check: %+v", c)
	}
	if b, _ := json.Marshal(Summary(nil, 0, 0)); !strings.Contains(string(b), `"node_details":[]`) {
		t.Fatalf("empty summary: %s", b)
	}
}

// Summary of a live monitor's view.
func TestSummaryFromMonitor(t *testing.T) {
	h := newHarness(t, []string{"n1", "n2"}, func(c *Config) { c.FailureThreshold = 1 })
	h.checker.setDown("n2", true)
	h.run()
	h.waitStatus("n2", api.NodeOffline)
	s := Summary(h.m.Snapshot(), 0, 0)
	if s.OnlineNodes != 1 || s.OfflineNodes != 1 || s.NodeDetails[0].NodeKey != "10.0.0.1:8080" ||
		s.NodeDetails[0].LastCheck != "2024-01-15T10:30:45" || s.NodeDetails[0].ResponseTime == nil || *s.NodeDetails[0].ResponseTime != 0 {
		t.Fatalf("summary = %+v", s)
	}
}
