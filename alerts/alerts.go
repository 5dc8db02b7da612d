package alerts

import (
	"fmt"
	"sort"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// The guide's thresholds.
const (
	// DefaultSlowResponse is the health-check answer time over which a node
	// raises HighResponseTime.
	DefaultSlowResponse = time.Second
	// DefaultQueueLimit is the recovery queue length over which
	// RecoveryQueueHigh fires.
	DefaultQueueLimit = 10
)

// ClusterSubject is the subject of the alerts about the whole cluster.
const ClusterSubject = "cluster"

// Thresholds tune the evaluation; zero fields take the defaults.
type Thresholds struct {
	SlowResponse time.Duration
	QueueLimit   int
}

func (t Thresholds) withDefaults() Thresholds {
	if t.SlowResponse <= 0 {
		t.SlowResponse = DefaultSlowResponse
	}
	if t.QueueLimit <= 0 {
		t.QueueLimit = DefaultQueueLimit
	}
	return t
}

// NodeInput is one node as the evaluation sees it.
type NodeInput struct {
	ID, Address string
	// Status is the replicated status; StatusSince is when it was written.
	Status      string
	StatusSince time.Time
	// LastCheckOK is set when the last health check under this leadership
	// answered; ResponseTime is then how long it took.
	LastCheckOK  bool
	ResponseTime time.Duration
}

// WorkloadInput is one permanently failed workload.
type WorkloadInput struct {
	ID, Name, Node, Reason string
	Since                  time.Time // when it became permanently failed
}

// Inputs is the state an evaluation looks at.
type Inputs struct {
	Nodes             []NodeInput
	PermanentlyFailed []WorkloadInput
	QueueLength       int
	EvictionsPaused   bool
	// Replicas are the voters of the raft configuration, the leader included.
	Replicas []ReplicaInput
	// Certificates are the TLS certificates in use: the leader's own and
	// those its peers' connections showed lately.
	Certificates []CertInput
}

// Desired returns the alerts that the inputs call for, with their Since set
// from the inputs where they know it and to now otherwise.
func Desired(in Inputs, th Thresholds, now time.Time) []api.Alert {
	th = th.withDefaults()
	var out []api.Alert
	for _, n := range in.Nodes {
		switch {
		case n.Status == api.NodeOffline:
			out = append(out, api.Alert{
				Name: api.AlertNodeOffline, Severity: api.SeverityCritical, Subject: n.ID, Node: n.ID, Value: 1,
				Summary: fmt.Sprintf("node %s (%s) is offline", n.ID, n.Address),
				Since:   orNow(n.StatusSince, now),
			})
		case n.LastCheckOK && n.ResponseTime > th.SlowResponse:
			out = append(out, api.Alert{
				Name: api.AlertHighResponseTime, Severity: api.SeverityWarning, Subject: n.ID, Node: n.ID,
				Value:   n.ResponseTime.Seconds(),
				Summary: fmt.Sprintf("node %s (%s) answered its health check in %.2f s (over %s)", n.ID, n.Address, n.ResponseTime.Seconds(), th.SlowResponse),
				Since:   now,
			})
		}
	}
	for _, w := range in.PermanentlyFailed {
		out = append(out, api.Alert{
			Name: api.AlertRecoveryFailed, Severity: api.SeverityCritical, Subject: w.ID, Workload: w.ID, Node: w.Node, Value: 1,
			Summary: fmt.Sprintf("workload %s (%s) is permanently failed: %s", w.ID, w.Name, w.Reason),
			Since:   orNow(w.Since, now),
		})
	}
	if in.QueueLength > th.QueueLimit {
		out = append(out, api.Alert{
			Name: api.AlertRecoveryQueueHigh, Severity: api.SeverityWarning, Subject: ClusterSubject, Value: float64(in.QueueLength),
			Summary: fmt.Sprintf("%d workloads wait in the recovery queue (over %d)", in.QueueLength, th.QueueLimit),
			Since:   now,
		})
	}
	if in.EvictionsPaused {
		out = append(out, api.Alert{
			Name: api.AlertEvictionsPaused, Severity: api.SeverityCritical, Subject: ClusterSubject, Value: 1,
			Summary: "most nodes went offline at once: evictions are paused (this leader may be the one cut off)",
			Since:   now,
		})
	}
	out = append(out, replicaDown(in.Replicas, now)...)
	out = append(out, certExpiring(in.Certificates, now)...)
	return out
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() || t.After(now) {
		return now
	}
	return t
}

// key identifies an alert.
type key struct{ name, subject string }

// Set is the set of active alerts. It is not safe for concurrent use; Manager
// guards it.
type Set struct {
	th     Thresholds
	active map[key]api.Alert
}

// NewSet returns an empty set.
func NewSet(th Thresholds) *Set {
	return &Set{th: th.withDefaults(), active: map[key]api.Alert{}}
}

// Evaluate makes the active set what in calls for: it returns the alerts that
// fire now (not active before) and those that resolve (active before, no
// longer called for), each sorted. An alert that stays active keeps its Since
// and takes the new Value and Summary.
func (s *Set) Evaluate(in Inputs, now time.Time) (fired, resolved []api.Alert) {
	want := map[key]api.Alert{}
	for _, a := range Desired(in, s.th, now) {
		want[key{a.Name, a.Subject}] = a
	}
	for k, a := range want {
		old, ok := s.active[k]
		if !ok {
			s.active[k] = a
			fired = append(fired, a)
			continue
		}
		a.Since = old.Since
		s.active[k] = a
	}
	for k, a := range s.active {
		if _, ok := want[k]; !ok {
			delete(s.active, k)
			resolved = append(resolved, a)
		}
	}
	sortAlerts(fired)
	sortAlerts(resolved)
	return fired, resolved
}

// Active returns the active alerts: critical first, then by name and subject.
func (s *Set) Active() []api.Alert {
	out := make([]api.Alert, 0, len(s.active))
	for _, a := range s.active {
		out = append(out, a)
	}
	sortAlerts(out)
	return out
}

// Len returns the number of active alerts.
func (s *Set) Len() int { return len(s.active) }

func sortAlerts(as []api.Alert) {
	sort.Slice(as, func(i, j int) bool {
		a, b := as[i], as[j]
		if a.Severity != b.Severity {
			return a.Severity == api.SeverityCritical
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Subject < b.Subject
	})
}
