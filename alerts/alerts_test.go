package alerts

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

var t0 = time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)

func names(as []api.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name+"/"+a.Subject)
	}
	return out
}

func TestEachAlertFiresAndResolves(t *testing.T) {
	healthy := Inputs{Nodes: []NodeInput{
		{ID: "n1", Address: "h:1", Status: api.NodeOnline, LastCheckOK: true, ResponseTime: 5 * time.Millisecond},
		{ID: "n2", Address: "h:2", Status: api.NodeOnline, LastCheckOK: true, ResponseTime: 1500 * time.Millisecond},
	}}
	cases := []struct {
		name  string
		bad   Inputs
		alert string
		sub   string
		since time.Time
	}{
		{"node offline", Inputs{Nodes: []NodeInput{{ID: "n1", Address: "h:1", Status: api.NodeOffline, StatusSince: t0.Add(-time.Minute)}}},
			api.AlertNodeOffline, "n1", t0.Add(-time.Minute)},
		{"permanently failed", Inputs{PermanentlyFailed: []WorkloadInput{{ID: "w1", Name: "web", Reason: "gave up after 3 attempts: exited", Since: t0.Add(-time.Second)}}},
			api.AlertRecoveryFailed, "w1", t0.Add(-time.Second)},
		{"slow answer", Inputs{Nodes: healthy.Nodes[1:]}, api.AlertHighResponseTime, "n2", t0},
		{"queue over 10", Inputs{QueueLength: 11}, api.AlertRecoveryQueueHigh, ClusterSubject, t0},
		{"evictions paused", Inputs{EvictionsPaused: true}, api.AlertEvictionsPaused, ClusterSubject, t0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSet(Thresholds{})
			fired, resolved := s.Evaluate(c.bad, t0)
			if len(fired) != 1 || fired[0].Name != c.alert || fired[0].Subject != c.sub || len(resolved) != 0 {
				t.Fatalf("fired %v resolved %v", names(fired), names(resolved))
			}
			if !fired[0].Since.Equal(c.since) || fired[0].Summary == "" || fired[0].Severity == "" {
				t.Fatalf("alert %+v", fired[0])
			}
			// Still true a second later: nothing new, Since kept.
			fired, resolved = s.Evaluate(c.bad, t0.Add(time.Second))
			if len(fired)+len(resolved) != 0 || !s.Active()[0].Since.Equal(c.since) {
				t.Fatalf("re-evaluation changed: fired %v resolved %v active %+v", names(fired), names(resolved), s.Active())
			}
			fired, resolved = s.Evaluate(Inputs{}, t0.Add(2*time.Second))
			if len(fired) != 0 || len(resolved) != 1 || resolved[0].Name != c.alert || s.Len() != 0 {
				t.Fatalf("after the fix: fired %v resolved %v", names(fired), names(resolved))
			}
		})
	}
}

func TestThresholdsAreStrict(t *testing.T) {
	s := NewSet(Thresholds{})
	in := Inputs{QueueLength: 10, Nodes: []NodeInput{{ID: "n1", Status: api.NodeDegraded, LastCheckOK: true, ResponseTime: time.Second}}}
	if fired, _ := s.Evaluate(in, t0); len(fired) != 0 {
		t.Fatalf("at the thresholds (queue 10, 1 s) nothing fires; got %v", names(fired))
	}
	// A failed last check is no slow answer (the node is degraded or offline instead).
	in.Nodes[0] = NodeInput{ID: "n1", Status: api.NodeDegraded, LastCheckOK: false, ResponseTime: 3 * time.Second}
	if fired, _ := s.Evaluate(in, t0); len(fired) != 0 {
		t.Fatalf("a failed check fired %v", names(fired))
	}
	// Offline wins over a stale slow answer.
	in.Nodes[0] = NodeInput{ID: "n1", Status: api.NodeOffline, LastCheckOK: true, ResponseTime: 3 * time.Second}
	if fired, _ := s.Evaluate(in, t0); len(fired) != 1 || fired[0].Name != api.AlertNodeOffline {
		t.Fatalf("offline node: %v", names(fired))
	}
	s2 := NewSet(Thresholds{QueueLimit: 2, SlowResponse: 100 * time.Millisecond})
	fired, _ := s2.Evaluate(Inputs{QueueLength: 3, Nodes: []NodeInput{{ID: "n1", Status: api.NodeOnline, LastCheckOK: true, ResponseTime: 200 * time.Millisecond}}}, t0)
	if len(fired) != 2 {
		t.Fatalf("custom thresholds: %v", names(fired))
	}
}

func TestActiveOrderAndValueUpdate(t *testing.T) {
	s := NewSet(Thresholds{})
	in := Inputs{
		QueueLength: 12,
		Nodes: []NodeInput{
			{ID: "n2", Status: api.NodeOffline},
			{ID: "n1", Status: api.NodeOffline},
			{ID: "n3", Status: api.NodeOnline, LastCheckOK: true, ResponseTime: 2 * time.Second},
		},
	}
	s.Evaluate(in, t0)
	got := strings.Join(names(s.Active()), " ")
	want := "NodeOffline/n1 NodeOffline/n2 HighResponseTime/n3 RecoveryQueueHigh/cluster"
	if got != want {
		t.Fatalf("active order:\n got %s\nwant %s", got, want)
	}
	in.QueueLength = 20
	fired, resolved := s.Evaluate(in, t0.Add(time.Second))
	if len(fired)+len(resolved) != 0 {
		t.Fatalf("a changed value fired %v resolved %v", names(fired), names(resolved))
	}
	for _, a := range s.Active() {
		if a.Name == api.AlertRecoveryQueueHigh && (a.Value != 20 || !a.Since.Equal(t0) || !strings.Contains(a.Summary, "20")) {
			t.Fatalf("queue alert not updated: %+v", a)
		}
	}
}

// recorder is a Notifier that keeps what it is sent.
type recorder struct {
	mu  sync.Mutex
	got []api.AlertNotification
}

func (r *recorder) Send(n api.AlertNotification) {
	r.mu.Lock()
	r.got = append(r.got, n)
	r.mu.Unlock()
}

func TestManagerLogsEventsAndNotifies(t *testing.T) {
	events := NewLog("e", 100)
	rec := &recorder{}
	var logBuf strings.Builder
	var logMu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logBuf, mu: &logMu}, JSONFormat: true})
	m := NewManager(ManagerConfig{Replica: "s1", Events: events, Notifier: rec, Logger: logger})

	offline := Inputs{Nodes: []NodeInput{{ID: "n1", Address: "h:1", Status: api.NodeOffline, StatusSince: t0}}}
	m.Evaluate(offline, t0)
	m.Evaluate(offline, t0.Add(time.Second))
	m.Evaluate(Inputs{}, t0.Add(5*time.Second))

	if len(rec.got) != 2 || rec.got[0].Status != api.AlertFiring || rec.got[1].Status != api.AlertResolved ||
		rec.got[0].Replica != "s1" || rec.got[1].Alert.Name != api.AlertNodeOffline || !rec.got[1].At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("notifications: %+v", rec.got)
	}
	es, _ := events.After(0, 0)
	if len(es) != 2 || es[0].Kind != api.EventAlertFiring || es[1].Kind != api.EventAlertResolved || es[0].Node != "n1" {
		t.Fatalf("events: %+v", es)
	}
	fired, resolved := m.Counts()
	if fired[api.AlertNodeOffline] != 1 || resolved[api.AlertNodeOffline] != 1 {
		t.Fatalf("counts %v %v", fired, resolved)
	}
	logMu.Lock()
	logs := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(logs, `"@message":"alert firing"`) || !strings.Contains(logs, `"alert":"NodeOffline"`) ||
		!strings.Contains(logs, `"@message":"alert resolved"`) || !strings.Contains(logs, `"subject":"n1"`) {
		t.Fatalf("structured log lines missing:\n%s", logs)
	}

	// A new leadership starts empty and fires again what is still true.
	m.Evaluate(offline, t0.Add(6*time.Second))
	m.Reset()
	if len(m.Active()) != 0 {
		t.Fatal("Reset left alerts active")
	}
	if fired, _ := m.Evaluate(offline, t0.Add(7*time.Second)); len(fired) != 1 {
		t.Fatalf("re-derived: %v", names(fired))
	}
	if m.ActiveByName()[api.AlertNodeOffline] != 1 {
		t.Fatalf("active by name %v", m.ActiveByName())
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A new leader seeded with its predecessor's active alerts resolves those
// that cleared meanwhile and does not fire again those still true.
func TestSeedTakesOverActiveAlerts(t *testing.T) {
	rec := &recorder{}
	m := NewManager(ManagerConfig{Replica: "s2", Events: NewLog("e", 100), Notifier: rec})
	offline := api.Alert{Name: api.AlertNodeOffline, Severity: api.SeverityCritical, Subject: "n1", Node: "n1", Value: 1, Since: t0}
	stillOffline := api.Alert{Name: api.AlertNodeOffline, Severity: api.SeverityCritical, Subject: "n2", Node: "n2", Value: 1, Since: t0}
	m.Seed([]api.Alert{offline, stillOffline})

	in := Inputs{Nodes: []NodeInput{
		{ID: "n1", Address: "h:1", Status: api.NodeOnline, LastCheckOK: true, ResponseTime: time.Millisecond},
		{ID: "n2", Address: "h:2", Status: api.NodeOffline, StatusSince: t0},
	}}
	fired, resolved := m.Evaluate(in, t0.Add(time.Minute))
	if len(fired) != 0 {
		t.Fatalf("fired again: %v", names(fired))
	}
	if len(resolved) != 1 || resolved[0].Subject != "n1" {
		t.Fatalf("resolved %v, want NodeOffline/n1", names(resolved))
	}
	if len(rec.got) != 1 || rec.got[0].Status != api.AlertResolved {
		t.Fatalf("notifications: %+v", rec.got)
	}
	if act := m.Active(); len(act) != 1 || act[0].Subject != "n2" || !act[0].Since.Equal(t0) {
		t.Fatalf("active: %+v", act)
	}
}
