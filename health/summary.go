package health

import (
	"math"
	"net"
	"strconv"

	"github.com/micro-orchestrator/mo/api"
)

// Summary builds the GET /health/summary body from the monitor's view
// (Snapshot) and the workload counts, which the caller takes from the
// replicated state. Offline nodes report 0 CPU and memory and a null
// response time, as in the guide.
func Summary(nodes []NodeHealth, failedWorkloads, desiredWorkloads int) api.HealthSummary {
	s := api.HealthSummary{
		TotalNodes:       len(nodes),
		FailedWorkloads:  failedWorkloads,
		DesiredWorkloads: desiredWorkloads,
		NodeDetails:      make([]api.NodeDetail, 0, len(nodes)),
	}
	for _, n := range nodes {
		switch n.Status {
		case api.NodeOnline:
			s.OnlineNodes++
		case api.NodeOffline:
			s.OfflineNodes++
		case api.NodeDegraded:
			s.DegradedNodes++
		}
		host, port := splitAddress(n.Address)
		d := api.NodeDetail{
			NodeKey:             n.Address,
			NodeID:              n.NodeID,
			Host:                host,
			Port:                port,
			Status:              n.Status,
			CPUUsage:            n.CPU,
			MemoryUsage:         n.Memory,
			LastCheck:           formatTime(n),
			ConsecutiveFailures: n.ConsecutiveFailures,
			ResponseTime:        responseSeconds(n),
		}
		if n.Status == api.NodeOffline {
			d.CPUUsage, d.MemoryUsage = 0, 0
		}
		s.NodeDetails = append(s.NodeDetails, d)
	}
	return s
}

// HealthChecks builds the health_checks map of GET /recovery/metrics, keyed
// by agent address; should two nodes share an address, the later node id wins.
func HealthChecks(nodes []NodeHealth) map[string]api.HealthCheckDetail {
	out := make(map[string]api.HealthCheckDetail, len(nodes))
	for _, n := range nodes {
		out[n.Address] = api.HealthCheckDetail{
			NodeID:              n.NodeID,
			LastCheck:           formatTime(n),
			ConsecutiveFailures: n.ConsecutiveFailures,
			ResponseTime:        responseSeconds(n),
			Status:              n.Status,
		}
	}
	return out
}

// splitAddress splits "host:port"; an address without a numeric port gives
// the whole address as host and port 0.
func splitAddress(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return host, 0
	}
	return host, port
}

// formatTime formats the last check in api.TimeLayout, UTC; "" if never checked.
func formatTime(n NodeHealth) string {
	if !n.Checked || n.LastCheck.IsZero() {
		return ""
	}
	return n.LastCheck.UTC().Format(api.TimeLayout)
}

// responseSeconds is the last answer's time in seconds (microsecond
// precision), or nil if the node never answered or is offline.
func responseSeconds(n NodeHealth) *float64 {
	if !n.Answered || n.Status == api.NodeOffline {
		return nil
	}
	s := math.Round(n.ResponseTime.Seconds()*1e6) / 1e6
	return &s
}
