package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/alerts"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/health"
)

// Limits of GET /events.
const (
	defaultEventLimit = 100
	maxEventWait      = time.Minute
)

// alertInterval is how often the leader re-evaluates its alerts; it also
// does at once after a node status change or a recovery event.
const alertInterval = time.Second

// initMonitoring builds the replica's metrics, event log, alert manager and
// webhook sender (which lives as long as the process).
func (r *Replica) initMonitoring() error {
	r.events = alerts.NewLog(fmt.Sprintf("%s-%d", r.cfg.ID, time.Now().UnixNano()), alerts.DefaultLogSize)
	mc := alerts.ManagerConfig{Replica: r.cfg.ID, Events: r.events, Logger: r.log.Named("alerts")}
	if r.cfg.AlertWebhook != "" {
		hook, err := alerts.NewWebhook(alerts.WebhookConfig{URL: r.cfg.AlertWebhook, Logger: r.log.Named("alerts")})
		if err != nil {
			return err
		}
		r.webhook = hook
		mc.Notifier = hook
	}
	r.alerts = alerts.NewManager(mc)
	r.peerContact = newReplicaContact()
	r.metrics = newReplicaMetrics(r)
	r.metricsHandler = newMetricsHandler(r.metrics.reg)
	return nil
}

// event records one event in the replica's event log.
func (r *Replica) event(kind, subject, msg, node, workload string) {
	r.events.Append(api.Event{Kind: kind, Subject: subject, Message: msg, Node: node, Workload: workload})
}

// kickAlerts asks the alert loop for an evaluation now.
func (ls *leaderState) kickAlerts() {
	select {
	case ls.alertKick <- struct{}{}:
	default:
	}
}

// alertLoop evaluates the alerts every alertInterval and when kicked, until
// leadership is lost. The alert set starts empty: what is still true in the
// state fires again under this leader.
func (r *Replica) alertLoop(ctx context.Context, ls *leaderState) {
	t := time.NewTicker(alertInterval)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		fired, resolved := r.alerts.Evaluate(r.alertInputs(ls), time.Now())
		if len(fired)+len(resolved) > 0 {
			// Replicate the active set for the next leader to take over.
			if err := r.Apply(&fsm.SetAlerts{Alerts: r.alerts.Active()}); err != nil && ctx.Err() == nil {
				r.log.Warn("recording the active alerts failed", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ls.alertKick:
		}
	}
}

// alertInputs reads what the alerts look at: the replicated state and the
// leader's health view and recovery counters.
func (r *Replica) alertInputs(ls *leaderState) alerts.Inputs {
	var in alerts.Inputs
	r.fsm.Read(func(s *fsm.State) {
		in.Nodes = make([]alerts.NodeInput, 0, len(s.Nodes))
		for _, n := range s.Nodes {
			in.Nodes = append(in.Nodes, alerts.NodeInput{ID: n.ID, Address: n.Address, Status: normNodeStatus(n.Status), StatusSince: n.UpdatedAt})
		}
		for _, w := range s.Workloads {
			if w.State == api.StatePermanentlyFailed {
				in.PermanentlyFailed = append(in.PermanentlyFailed, alerts.WorkloadInput{ID: w.ID, Name: w.Name, Node: w.Node, Reason: w.Reason, Since: w.UpdatedAt})
			}
		}
		in.QueueLength = len(s.RecoveryQueue)
	})
	views := map[string]health.NodeHealth{}
	for _, nh := range ls.health.Snapshot() {
		views[nh.NodeID] = nh
	}
	for i, n := range in.Nodes {
		if nh, ok := views[n.ID]; ok && nh.Checked && nh.Answered && nh.LastError == "" {
			in.Nodes[i].LastCheckOK = true
			in.Nodes[i].ResponseTime = nh.ResponseTime
		}
	}
	in.EvictionsPaused = ls.recovery.Stats().EvictionsPaused
	now := time.Now()
	in.Replicas = r.replicaInputs(now)
	if r.cfg.TLS != nil {
		in.Certificates = append(in.Certificates, alerts.CertInput{Kind: "replica", ID: r.cfg.ID, NotAfter: r.cfg.TLS.NotAfter()})
	}
	in.Certificates = append(in.Certificates, r.certs.inputs(now)...)
	return in
}

// noteStatusChanges turns committed node status changes into events and
// detection-latency observations. A change that repeats the status already
// written (a held eviction let through) is no new transition.
func (r *Replica) noteStatusChanges(ls *leaderState, changes []fsm.NodeStatusChange) {
	now := time.Now()
	for _, c := range changes {
		ls.mu.Lock()
		prev, ok := ls.statuses[c.ID]
		if !ok {
			prev = api.NodeOnline // registered since this leadership began: nodes register online
		}
		ls.statuses[c.ID] = c.Status
		ls.mu.Unlock()
		if prev == c.Status {
			if c.Status == api.NodeOffline && c.Evict {
				r.event(api.EventNodeWorkloadsEvicted, c.ID, "evictions resumed: the workloads of node "+c.ID+" are queued for recovery", c.ID, "")
				r.noteEvicted(c.ID)
			}
			continue
		}
		var addr string
		r.fsm.Read(func(s *fsm.State) {
			if n, ok := s.Nodes[c.ID]; ok {
				addr = n.Address
			}
		})
		switch c.Status {
		case api.NodeOffline:
			if nh, ok := ls.health.NodeHealth(c.ID); ok && !nh.LastAnswer.IsZero() {
				r.metrics.detection.Observe(now.Sub(nh.LastAnswer).Seconds())
			}
			msg := fmt.Sprintf("node %s (%s) is offline", c.ID, addr)
			if !c.Evict {
				msg += "; evictions held by the mass-failure guard"
			}
			r.event(api.EventNodeOffline, c.ID, msg, c.ID, "")
			if c.Evict {
				r.noteEvicted(c.ID)
			}
		case api.NodeOnline:
			r.event(api.EventNodeOnline, c.ID, fmt.Sprintf("node %s (%s) is online (was %s)", c.ID, addr, prev), c.ID, "")
		case api.NodeDegraded:
			r.event(api.EventNodeDegraded, c.ID, fmt.Sprintf("node %s (%s) is degraded (was %s)", c.ID, addr, prev), c.ID, "")
		}
	}
}

// noteEvicted records a workload_failed event for each workload that the
// eviction of node queued for recovery.
func (r *Replica) noteEvicted(node string) {
	reason := "node " + node + " offline"
	var ids []string
	r.fsm.Read(func(s *fsm.State) {
		for id, w := range s.Workloads {
			// A wait reason may follow it ("…; no node has …").
			if w.Node == node && w.State == api.StateFailed && (w.Reason == reason || strings.HasPrefix(w.Reason, reason+"; ")) {
				ids = append(ids, id)
			}
		}
	})
	sort.Slice(ids, func(i, j int) bool { return lessID(ids[i], ids[j]) })
	for _, id := range ids {
		r.event(api.EventWorkloadFailed, id, "node "+node+" offline; queued for recovery", node, id)
	}
}

// recoveryEvent turns the recovery engine's notable decisions into events.
func (r *Replica) recoveryEvent(ls *leaderState) func(kind, workload, node, msg string) {
	return func(kind, workload, node, msg string) {
		subject := workload
		switch {
		case subject == "" && node != "":
			subject = node
		case subject == "":
			subject = alerts.ClusterSubject
		}
		if kind == api.EventPermanentlyFailed {
			r.metrics.permanent.Inc()
		}
		r.event(kind, subject, msg, node, workload)
		ls.kickAlerts()
	}
}

// routeMonitoring adds GET /alerts and GET /events (answered by the leader;
// followers forward them) and GET /metrics (every replica for itself).
func (r *Replica) routeMonitoring(rt *router) {
	rt.GET("/metrics", r.handleMetrics)
	rt.GET("/alerts", r.leaderOnly(r.handleAlerts))
	rt.GET("/events", r.leaderOnly(r.handleEvents))
}

func (r *Replica) handleAlerts(w http.ResponseWriter, _ *http.Request, _ *leaderState) {
	api.WriteJSON(w, http.StatusOK, api.AlertList{Alerts: r.alerts.Active()})
}

// handleEvents answers GET /events[?after=SEQ][&wait=DUR][&limit=N][&epoch=E].
// Without after: the newest limit events (default 100). With after: the
// events after that sequence number, oldest first; with wait as well, it
// waits up to wait (at most a minute) for one to come (a long poll). When
// epoch names another log than this leader's (leadership moved), it answers
// at once with this log's newest events: the reader starts over from them.
func (r *Replica) handleEvents(w http.ResponseWriter, req *http.Request, ls *leaderState) {
	q := req.URL.Query()
	limit := defaultEventLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > alerts.DefaultLogSize {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d, not %q", alerts.DefaultLogSize, v))
			return
		}
		limit = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxEventWait {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("wait must be a duration from 0s to %s, not %q", maxEventWait, v))
			return
		}
		wait = d
	}
	epoch := r.events.Epoch()
	v := q.Get("after")
	if v == "" || (q.Get("epoch") != "" && q.Get("epoch") != epoch) {
		events, last := r.events.Recent(limit)
		api.WriteJSON(w, http.StatusOK, api.EventList{Epoch: epoch, LastSeq: last, Events: events})
		return
	}
	after, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("after must be a sequence number, not %q", v))
		return
	}
	if wait > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), wait)
		stopLost := context.AfterFunc(ls.ctx, cancel) // leadership lost: stop waiting
		stopClosing := context.AfterFunc(r.closing, cancel)
		_ = r.events.Wait(ctx, after)
		stopLost()
		stopClosing()
		cancel()
		if ls.ctx.Err() != nil || r.closing.Err() != nil {
			noLeader(w, "leadership moved while waiting for events; retry")
			return
		}
		if req.Context().Err() != nil {
			return // the client left
		}
	}
	events, last := r.events.After(after, limit)
	api.WriteJSON(w, http.StatusOK, api.EventList{Epoch: epoch, LastSeq: last, Events: events})
}
