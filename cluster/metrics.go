package cluster

import (
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
	"github.com/micro-orchestrator/mo/internal/version"
)

// Label values are bounded: no metric carries a node or workload id, so the
// series stay few at thousands of nodes. HTTP routes are router patterns.

// replicaMetrics are one replica's Prometheus metrics, on its own registry.
// Events are counted here as they happen; the state (nodes, workloads, raft,
// alerts) is read at scrape time by stateCollector.
type replicaMetrics struct {
	reg              *prometheus.Registry
	checkDuration    *prometheus.HistogramVec
	detection        prometheus.Histogram
	recoveryDuration prometheus.Histogram
	recoveries       *prometheus.CounterVec
	permanent        prometheus.Counter
	deployments      *prometheus.CounterVec
	httpRequests     *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
}

func newReplicaMetrics(r *Replica) *replicaMetrics {
	m := &replicaMetrics{
		reg: prometheus.NewRegistry(),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mo_health_check_duration_seconds",
			Help:    "Duration of the leader's health checks of agents, by result (ok or error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5},
		}, []string{"result"}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mo_node_detection_latency_seconds",
			Help:    "Time from a node's last good health check to its offline status being committed.",
			Buckets: []float64{.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 30, 60},
		}),
		recoveryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mo_recovery_duration_seconds",
			Help:    "Time from a workload entering the recovery queue to running again.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 15, 30, 60},
		}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mo_recoveries_total",
			Help: "Recovery attempts decided by this replica while it led, by result (succeeded or failed).",
		}, []string{"result"}),
		permanent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mo_workloads_permanently_failed_total",
			Help: "Workloads this replica marked permanently_failed while it led.",
		}),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mo_deployments_total",
			Help: "Job deployments this replica ended while it led, by result (successful, failed or reverted).",
		}, []string{"result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mo_http_requests_total",
			Help: "API requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mo_http_request_duration_seconds",
			Help:    "API request latency, by route pattern, method and status code (long polls of /events included).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
	}
	for _, res := range []string{"ok", "error"} {
		m.checkDuration.WithLabelValues(res)
	}
	for _, res := range []string{"succeeded", "failed"} {
		m.recoveries.WithLabelValues(res)
	}
	for _, res := range deploymentResults {
		m.deployments.WithLabelValues(res)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.checkDuration, m.detection, m.recoveryDuration, m.recoveries, m.permanent, m.deployments,
		m.httpRequests, m.httpDuration,
		newStateCollector(r),
		version.NewBuildInfo(),
		tlsutil.NewCollector(r.cfg.TLS),
	)
	return m
}

// observeCheck records one health check.
func (m *replicaMetrics) observeCheck(d time.Duration, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.checkDuration.WithLabelValues(res).Observe(d.Seconds())
}

// observeRecovery records one recovery attempt.
func (m *replicaMetrics) observeRecovery(succeeded bool, d time.Duration) {
	if succeeded {
		m.recoveries.WithLabelValues("succeeded").Inc()
		m.recoveryDuration.Observe(d.Seconds())
		return
	}
	m.recoveries.WithLabelValues("failed").Inc()
}

// deploymentResults are the label values of mo_deployments_total.
var deploymentResults = []string{api.DeploymentSuccessful, api.DeploymentFailed, api.DeploymentReverted}

// observeDeployment counts a deployment that ended, from its event kind.
func (m *replicaMetrics) observeDeployment(kind string) {
	switch kind {
	case api.EventDeploymentSuccessful:
		m.deployments.WithLabelValues(api.DeploymentSuccessful).Inc()
	case api.EventDeploymentFailed:
		m.deployments.WithLabelValues(api.DeploymentFailed).Inc()
	case api.EventDeploymentReverted:
		m.deployments.WithLabelValues(api.DeploymentReverted).Inc()
	}
}

// handleMetrics answers GET /metrics in the Prometheus text format. Every
// replica answers for itself (it is never forwarded).
func (r *Replica) handleMetrics(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.metricsHandler.ServeHTTP(w, req)
}

func newMetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Known label values, exported as zero when absent so that series exist
// from the first scrape.
var (
	nodeStatuses   = []string{api.NodeOnline, api.NodeDegraded, api.NodeOffline}
	workloadStates = api.WorkloadStates
	healths        = []string{api.HealthHealthy, api.HealthUnhealthy, api.HealthUnknown}
	raftStates     = []string{"leader", "follower", "candidate", "shutdown"}
	alertNames     = []string{api.AlertNodeOffline, api.AlertRecoveryFailed, api.AlertHighResponseTime, api.AlertRecoveryQueueHigh, api.AlertEvictionsPaused, api.AlertReplicaDown, api.AlertCertExpiring}
)

// stateCollector reads the replica's state at scrape time: the replicated
// state (right on followers too), raft, and, on the leader, its health view,
// recovery counters and alerts.
type stateCollector struct {
	r *Replica

	nodes, workloads, desired, failed, queue, byHealth           *prometheus.Desc
	jobs, jobInstances, jobHealth, deploymentsRunning            *prometheus.Desc
	raftState, raftTerm, raftCommit, raftApplied, raftContact    *prometheus.Desc
	leader, slowest, successRatio, evictionsPaused, alertsActive *prometheus.Desc
	alertsFired, alertsResolved, events, replicaUp               *prometheus.Desc
	hookSent, hookRetries, hookFailed, hookDropped, hookQueue    *prometheus.Desc
}

func newStateCollector(r *Replica) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		r:                  r,
		nodes:              d("mo_nodes", "Registered nodes by replicated status.", "status"),
		workloads:          d("mo_workloads", "Workloads by state.", "state"),
		desired:            d("mo_workloads_desired", "Desired workloads (every state but stopped and completed), as in the health summary."),
		byHealth:           d("mo_workloads_by_health", "Running workloads by the health their agent's check reports (unknown without a check).", "health"),
		failed:             d("mo_workloads_failed", "Failed workloads (failed or permanently_failed), as in the health summary."),
		queue:              d("mo_recovery_queue_length", "Workloads waiting in the recovery queue."),
		jobs:               d("mo_jobs", "Jobs by status (running or stopped).", "status"),
		jobInstances:       d("mo_job_instances", "Instances of jobs (workloads that belong to one) by state, all jobs together.", "state"),
		jobHealth:          d("mo_job_instances_by_health", "Running instances of jobs by health, all jobs together.", "health"),
		deploymentsRunning: d("mo_deployments_running", "Job deployments under way."),
		raftState:          d("mo_raft_state", "1 for this replica's current raft state.", "state"),
		raftTerm:           d("mo_raft_term", "This replica's current raft term."),
		raftCommit:         d("mo_raft_commit_index", "This replica's raft commit index."),
		raftApplied:        d("mo_raft_applied_index", "This replica's last applied raft index."),
		raftContact:        d("mo_raft_last_contact_seconds", "Seconds since a follower last heard from the leader (0 on the leader)."),
		leader:             d("mo_leader", "1 while this replica leads and runs the health monitor and recovery engine."),
		slowest:            d("mo_health_response_time_max_seconds", "Leader only: the slowest last good health-check answer among the nodes that are not offline."),
		successRatio:       d("mo_recovery_success_ratio", "Leader only: recoveries succeeded / attempted under this leadership (1 before any attempt)."),
		evictionsPaused:    d("mo_evictions_paused", "Leader only: 1 while the mass-failure guard holds evictions."),
		alertsActive:       d("mo_alerts_active", "Leader only: active alerts by name.", "name"),
		alertsFired:        d("mo_alerts_fired_total", "Alerts fired by this replica while it led, by name.", "name"),
		alertsResolved:     d("mo_alerts_resolved_total", "Alerts resolved by this replica while it led, by name.", "name"),
		events:             d("mo_events_total", "Events recorded by this replica while it led, by kind.", "kind"),
		replicaUp:          d("mo_replica_up", "Leader only: 1 for each voter in contact with the leader (itself included), 0 for one out of contact for over the election timeout.", "replica"),
		hookSent:           d("mo_alert_webhook_sent_total", "Alert notifications delivered to --alert-webhook."),
		hookRetries:        d("mo_alert_webhook_retries_total", "Failed webhook deliveries that were retried."),
		hookFailed:         d("mo_alert_webhook_failed_total", "Alert notifications given up after the last retry."),
		hookDropped:        d("mo_alert_webhook_dropped_total", "Alert notifications dropped unsent because the webhook queue was full."),
		hookQueue:          d("mo_alert_webhook_queue_length", "Alert notifications waiting for delivery."),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.nodes, c.workloads, c.desired, c.failed, c.queue, c.byHealth,
		c.jobs, c.jobInstances, c.jobHealth, c.deploymentsRunning,
		c.raftState, c.raftTerm, c.raftCommit, c.raftApplied, c.raftContact,
		c.leader, c.slowest, c.successRatio, c.evictionsPaused, c.alertsActive,
		c.alertsFired, c.alertsResolved, c.events, c.replicaUp,
		c.hookSent, c.hookRetries, c.hookFailed, c.hookDropped, c.hookQueue,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	byStatus := map[string]int{}
	byState := map[string]int{}
	byHealth := map[string]int{}
	jobState, jobHealth, jobStatus := map[string]int{}, map[string]int{}, map[string]int{}
	var queue, deploying int
	r.fsm.Read(func(s *fsm.State) {
		for _, n := range s.Nodes {
			byStatus[normNodeStatus(n.Status)]++
		}
		for _, w := range s.Workloads {
			byState[w.State]++
			if w.State == api.StateRunning {
				byHealth[healthLabel(w.Health)]++
			}
			if w.Job != "" {
				jobState[w.State]++
				if w.State == api.StateRunning {
					jobHealth[healthLabel(w.Health)]++
				}
			}
		}
		queue = len(s.RecoveryQueue)
		for _, j := range s.Jobs {
			if j.Stopped {
				jobStatus[api.JobStopped]++
			} else {
				jobStatus[api.JobRunning]++
			}
			if d := j.Deployment; d != nil && d.Status == api.DeploymentRunning {
				deploying++
			}
		}
	})
	for _, st := range []string{api.JobRunning, api.JobStopped} {
		gauge(c.jobs, float64(jobStatus[st]), st)
	}
	for _, st := range workloadStates {
		gauge(c.jobInstances, float64(jobState[st]), st)
	}
	for _, h := range healths {
		gauge(c.jobHealth, float64(jobHealth[h]), h)
	}
	gauge(c.deploymentsRunning, float64(deploying))
	for _, st := range nodeStatuses {
		gauge(c.nodes, float64(byStatus[st]), st)
	}
	desired := 0
	for _, st := range workloadStates {
		gauge(c.workloads, float64(byState[st]), st)
		if st != api.StateStopped && st != api.StateCompleted {
			desired += byState[st]
		}
	}
	gauge(c.desired, float64(desired))
	for _, h := range healths {
		gauge(c.byHealth, float64(byHealth[h]), h)
	}
	gauge(c.failed, float64(byState[api.StateFailed]+byState[api.StatePermanentlyFailed]))
	gauge(c.queue, float64(queue))

	if r.raft != nil {
		state := r.raft.State()
		cur := stateName(state)
		for _, st := range raftStates {
			v := 0.0
			if st == cur {
				v = 1
			}
			gauge(c.raftState, v, st)
		}
		gauge(c.raftTerm, float64(r.raft.CurrentTerm()))
		gauge(c.raftCommit, float64(r.raft.CommitIndex()))
		gauge(c.raftApplied, float64(r.raft.AppliedIndex()))
		switch lc := r.raft.LastContact(); {
		case state == raft.Leader:
			gauge(c.raftContact, 0)
		case !lc.IsZero():
			gauge(c.raftContact, time.Since(lc).Seconds())
		}
	}

	ls := r.currentLeader()
	leading := ls != nil && ls.health != nil && ls.recovery != nil
	if leading {
		gauge(c.leader, 1)
		slowest := 0.0
		for _, nh := range ls.health.Snapshot() {
			if nh.Status != api.NodeOffline && nh.Answered && nh.LastError == "" && nh.ResponseTime.Seconds() > slowest {
				slowest = nh.ResponseTime.Seconds()
			}
		}
		gauge(c.slowest, slowest)
		st := ls.recovery.Stats()
		ratio := 1.0
		if st.Attempted > 0 {
			ratio = float64(st.Succeeded) / float64(st.Attempted)
		}
		gauge(c.successRatio, ratio)
		paused := 0.0
		if st.EvictionsPaused {
			paused = 1
		}
		gauge(c.evictionsPaused, paused)
		active := r.alerts.ActiveByName()
		for _, name := range alertNames {
			gauge(c.alertsActive, float64(active[name]), name)
		}
		for _, rep := range r.replicaInputs(time.Now()) {
			up := 1.0
			if rep.Down {
				up = 0
			}
			gauge(c.replicaUp, up, rep.ID)
		}
	} else {
		gauge(c.leader, 0)
	}

	fired, resolved := r.alerts.Counts()
	for _, name := range alertNames {
		counter(c.alertsFired, float64(fired[name]), name)
		counter(c.alertsResolved, float64(resolved[name]), name)
	}
	for kind, n := range r.events.Counts() {
		counter(c.events, float64(n), kind)
	}
	if r.webhook != nil {
		st := r.webhook.Stats()
		counter(c.hookSent, float64(st.Sent))
		counter(c.hookRetries, float64(st.Retries))
		counter(c.hookFailed, float64(st.Failed))
		counter(c.hookDropped, float64(st.Dropped))
		gauge(c.hookQueue, float64(st.Queued))
	}
}

// healthLabel is a stored health as a metric label: healthy, unhealthy or
// unknown.
func healthLabel(h string) string {
	switch h {
	case api.HealthHealthy, api.HealthUnhealthy:
		return h
	default:
		return api.HealthUnknown
	}
}

// normNodeStatus maps an unknown replicated status to online, as the health
// monitor does.
func normNodeStatus(s string) string {
	switch s {
	case api.NodeOnline, api.NodeDegraded, api.NodeOffline:
		return s
	default:
		return api.NodeOnline
	}
}
