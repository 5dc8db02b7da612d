package api

import "time"

// Alert names: the guide's four alerting thresholds, plus the mass-failure
// guard that DESIGN.md says raises an alert, and a lost scheduler replica.
// The Prometheus rules in deploy/prometheus use the same names.
const (
	AlertNodeOffline       = "NodeOffline"         // a node is offline (at once)
	AlertRecoveryFailed    = "RecoveryFailed"      // a workload is permanently_failed (after the maximum attempts)
	AlertHighResponseTime  = "HighResponseTime"    // a node's last health check answered in over 1 s
	AlertRecoveryQueueHigh = "RecoveryQueueHigh"   // more than 10 workloads wait in the recovery queue
	AlertEvictionsPaused   = "EvictionsPaused"     // the mass-failure guard holds evictions
	AlertReplicaDown       = "ReplicaDown"         // a voter out of contact with the leader for over the election timeout
	AlertCertExpiring      = "CertificateExpiring" // a replica's or agent's TLS certificate expires within 30 days
)

// Alert severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// Alert is one active alert. Name and Subject together identify it.
type Alert struct {
	Name     string    `json:"name"`
	Severity string    `json:"severity"`
	Subject  string    `json:"subject"`            // the node id, the workload id, the replica id, or "cluster"
	Summary  string    `json:"summary"`            // one line for people
	Value    float64   `json:"value"`              // the measured value (seconds, queue length, 1 for a state)
	Since    time.Time `json:"since"`              // when the condition started
	Node     string    `json:"node,omitempty"`     // the node concerned, if any
	Workload string    `json:"workload,omitempty"` // the workload concerned, if any
}

// AlertList is the answer to GET /alerts.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
}

// Alert notification statuses, sent to the webhook.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// AlertNotification is the JSON body POSTed to --alert-webhook on every fire
// and resolve.
type AlertNotification struct {
	Status  string    `json:"status"`  // firing or resolved
	At      time.Time `json:"at"`      // when it fired or resolved
	Replica string    `json:"replica"` // the leader that decided it
	Alert   Alert     `json:"alert"`
}

// Event kinds recorded by the leader.
const (
	EventNodeOffline          = "node_offline"
	EventNodeOnline           = "node_online"
	EventNodeDegraded         = "node_degraded"
	EventWorkloadFailed       = "workload_failed"
	EventWorkloadRecovered    = "workload_recovered"
	EventPermanentlyFailed    = "workload_permanently_failed"
	EventStrayStopped         = "stray_stopped"
	EventEvictionsPaused      = "evictions_paused"
	EventEvictionsResumed     = "evictions_resumed"
	EventLeaderElected        = "leader_elected"
	EventLeadershipLost       = "leadership_lost"
	EventAlertFiring          = "alert_firing"
	EventAlertResolved        = "alert_resolved"
	EventNodeWorkloadsEvicted = "node_workloads_evicted"
	EventWorkloadCompleted    = "workload_completed"
	// Job events: a run, a scale or a stop, and how deployments end.
	EventJobRegistered        = "job_registered"
	EventJobScaled            = "job_scaled"
	EventJobStopped           = "job_stopped"
	EventDeploymentSuccessful = "deployment_successful"
	EventDeploymentFailed     = "deployment_failed"
	EventDeploymentReverted   = "deployment_reverted"
)

// Event is one entry of the leader's recent events.
type Event struct {
	Seq      uint64    `json:"seq"` // increases by one per event within one Epoch
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"` // node id, workload id, replica id or alert name
	Message  string    `json:"message"`
	Node     string    `json:"node,omitempty"`
	Workload string    `json:"workload,omitempty"`
}

// EventList is the answer to GET /events. Epoch names the event log that
// answered (it changes when another replica leads); LastSeq is the sequence
// number to pass as ?after= to get only newer events.
type EventList struct {
	Epoch   string  `json:"epoch"`
	LastSeq uint64  `json:"last_seq"`
	Events  []Event `json:"events"`
}
