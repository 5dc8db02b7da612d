package alerts

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// Notifier receives every fire and resolve; Webhook is one. Send must not block.
type Notifier interface {
	Send(n api.AlertNotification)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Replica is this replica's id, carried in notifications.
	Replica string
	// Thresholds of the evaluation.
	Thresholds Thresholds
	// Events receives an alert_firing or alert_resolved event per change; required.
	Events *Log
	// Notifier, if set, is sent every change.
	Notifier Notifier
	// Logger receives one structured line per change; nil discards them.
	Logger hclog.Logger
}

// Manager owns the active alert set of a replica while it leads. Each
// evaluation fires and resolves alerts; every change is logged as a
// structured line, appended to the event log, sent to the notifier and
// counted. Its methods are safe for concurrent use.
type Manager struct {
	cfg ManagerConfig
	log hclog.Logger

	mu       sync.Mutex
	set      *Set
	fired    map[string]uint64
	resolved map[string]uint64
}

// NewManager returns a Manager with an empty alert set.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Manager{cfg: cfg, log: cfg.Logger, set: NewSet(cfg.Thresholds), fired: map[string]uint64{}, resolved: map[string]uint64{}}
}

// Reset empties the active set without resolving anything: a replica that
// starts leading re-derives its alerts from the state at its first
// evaluation, and one that stops leading no longer answers for them.
func (m *Manager) Reset() {
	m.mu.Lock()
	m.set = NewSet(m.cfg.Thresholds)
	m.mu.Unlock()
}

// Seed makes the active set exactly as, without firing anything: a new
// leader takes over the alerts its predecessor had active, so that the next
// Evaluate resolves those that cleared meanwhile and keeps the rest.
func (m *Manager) Seed(as []api.Alert) {
	set := NewSet(m.cfg.Thresholds)
	for _, a := range as {
		set.active[key{a.Name, a.Subject}] = a
	}
	m.mu.Lock()
	m.set = set
	m.mu.Unlock()
}

// Evaluate brings the active set in line with in at time now, and reports
// each alert that fired or resolved.
func (m *Manager) Evaluate(in Inputs, now time.Time) (fired, resolved []api.Alert) {
	m.mu.Lock()
	fired, resolved = m.set.Evaluate(in, now)
	for _, a := range fired {
		m.fired[a.Name]++
	}
	for _, a := range resolved {
		m.resolved[a.Name]++
	}
	m.mu.Unlock()
	for _, a := range fired {
		m.log.Warn("alert firing", "alert", a.Name, "severity", a.Severity, "subject", a.Subject,
			"value", a.Value, "since", a.Since.UTC().Format(time.RFC3339), "summary", a.Summary)
		m.publish(api.AlertFiring, a, now)
	}
	for _, a := range resolved {
		m.log.Info("alert resolved", "alert", a.Name, "severity", a.Severity, "subject", a.Subject,
			"active_for", now.Sub(a.Since).Round(time.Millisecond).String(), "summary", a.Summary)
		m.publish(api.AlertResolved, a, now)
	}
	return fired, resolved
}

// publish records one change as an event and sends it to the notifier.
func (m *Manager) publish(status string, a api.Alert, now time.Time) {
	kind, msg := api.EventAlertFiring, "firing: "+a.Summary
	if status == api.AlertResolved {
		kind, msg = api.EventAlertResolved, "resolved: "+a.Summary
	}
	m.cfg.Events.Append(api.Event{Time: now, Kind: kind, Subject: a.Name, Message: msg, Node: a.Node, Workload: a.Workload})
	if m.cfg.Notifier != nil {
		m.cfg.Notifier.Send(api.AlertNotification{Status: status, At: now.UTC(), Replica: m.cfg.Replica, Alert: a})
	}
}

// Active returns the active alerts, critical first.
func (m *Manager) Active() []api.Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.Active()
}

// ActiveByName returns the number of active alerts of each name.
func (m *Manager) ActiveByName() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for k := range m.set.active {
		out[k.name]++
	}
	return out
}

// Counts returns how many alerts of each name fired and resolved so far.
func (m *Manager) Counts() (fired, resolved map[string]uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fired = make(map[string]uint64, len(m.fired))
	resolved = make(map[string]uint64, len(m.resolved))
	for k, v := range m.fired {
		fired[k] = v
	}
	for k, v := range m.resolved {
		resolved[k] = v
	}
	return fired, resolved
}
