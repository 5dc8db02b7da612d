package api

// NodeDetail is one entry of node_details in GET /health/summary.
type NodeDetail struct {
	NodeKey             string   `json:"node_key"`
	NodeID              string   `json:"node_id"`
	Host                string   `json:"host"`
	Port                int      `json:"port"`
	Status              string   `json:"status"`
	CPUUsage            float64  `json:"cpu_usage"`
	MemoryUsage         float64  `json:"memory_usage"`
	LastCheck           string   `json:"last_check"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	ResponseTime        *float64 `json:"response_time"`
	// Eligible and Draining are the node's scheduling state (see Node);
	// Restarting is set while its agent restarts within its grace.
	Eligible   bool `json:"eligible"`
	Draining   bool `json:"draining"`
	Restarting bool `json:"restarting,omitempty"`
}

// HealthSummary is the answer to GET /health/summary and POST /health/check.
type HealthSummary struct {
	TotalNodes       int `json:"total_nodes"`
	OnlineNodes      int `json:"online_nodes"`
	OfflineNodes     int `json:"offline_nodes"`
	DegradedNodes    int `json:"degraded_nodes"`
	FailedWorkloads  int `json:"failed_workloads"`
	DesiredWorkloads int `json:"desired_workloads"`
	// DrainingNodes and IneligibleNodes count the nodes that take no new
	// work (a draining node is ineligible too).
	DrainingNodes   int          `json:"draining_nodes"`
	IneligibleNodes int          `json:"ineligible_nodes"`
	NodeDetails     []NodeDetail `json:"node_details"`
}

// HealthCheckDetail is one entry of health_checks in GET /recovery/metrics.
type HealthCheckDetail struct {
	NodeID              string   `json:"node_id"`
	LastCheck           string   `json:"last_check"`
	ConsecutiveFailures int      `json:"consecutive_failures"`
	ResponseTime        *float64 `json:"response_time"`
	Status              string   `json:"status"`
}

// RecoveryMetrics is the answer to GET /recovery/metrics.
type RecoveryMetrics struct {
	FailedWorkloads   []string                     `json:"failed_workloads"`
	DesiredStateCount int                          `json:"desired_state_count"`
	HealthChecks      map[string]HealthCheckDetail `json:"health_checks"`
	QueueLength       int                          `json:"queue_length"`
	Attempted         uint64                       `json:"recoveries_attempted"`
	Succeeded         uint64                       `json:"recoveries_succeeded"`
	Failed            uint64                       `json:"recoveries_failed"`
	PermanentlyFailed []string                     `json:"permanently_failed"`
	SuccessRate       float64                      `json:"success_rate"`
	LastDurations     []float64                    `json:"last_recovery_durations"`
	EvictionsPaused   bool                         `json:"evictions_paused"`
}

// TimeLayout is the guide's timestamp layout for last_check.
const TimeLayout = "2006-01-02T15:04:05"
