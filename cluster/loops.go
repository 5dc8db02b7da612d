package cluster

import (
	"context"
	"time"

	"github.com/micro-orchestrator/mo/alerts"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/health"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
	"github.com/micro-orchestrator/mo/jobs"
	"github.com/micro-orchestrator/mo/recovery"
)

// startLeaderLoops starts the health monitor and the recovery engine under
// ctx, which is cancelled the moment leadership is lost.
func (r *Replica) startLeaderLoops(ctx context.Context, ls *leaderState) {
	hc := r.cfg.Health
	var mon *health.Monitor
	// refresh asks for fresh agent reports now, in the background.
	refresh := func() {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = mon.CheckNow(cctx)
		}()
	}
	eng := recovery.New(recovery.Config{
		Term:        ls.term,
		Interval:    r.cfg.Recovery.Interval,
		MaxAttempts: r.cfg.Recovery.MaxAttempts,
		Lease:       r.cfg.Lease,
		ReportedLease: func() time.Duration {
			return time.Duration(r.leaseSeen.Load()) * time.Millisecond
		},
		CPULimit:  r.cfg.Recovery.CPULimit,
		Logger:    r.log.Named("recovery"),
		OnEvent:   r.recoveryEvent(ls),
		OnAttempt: r.metrics.observeRecovery,
		// A report can be as old as one health check: as long as that
		// before an instance missing from it counts as lost.
		MissingGrace: hc.Timeout + 500*time.Millisecond,
		Refresh:      refresh,
	}, r, healthView{get: func(id string) (health.NodeHealth, bool) { return mon.NodeHealth(id) }}, r.agents)
	mon = health.New(health.Config{
		Interval:          hc.Interval,
		Timeout:           hc.Timeout,
		FailureThreshold:  hc.FailureThreshold,
		RecoveryThreshold: hc.RecoveryThreshold,
		ConfirmDelay:      hc.ConfirmDelay,
		AllowEvict:        eng.AllowEvict,
		OnReport:          eng.Observe,
		OnCheck: func(_ string, d time.Duration, err error) {
			r.metrics.observeCheck(d, err)
			if err == nil && d > alerts.DefaultSlowResponse {
				ls.kickAlerts()
			}
		},
		OnChange: func(changes []fsm.NodeStatusChange) {
			for _, c := range changes {
				r.log.Info("node status changed", "node", c.ID, "status", c.Status, "evict", c.Evict)
			}
			r.noteStatusChanges(ls, changes)
			eng.Kick()
			ls.kickAlerts()
		},
		Logger: r.log.Named("health"),
	}, healthStore{r}, health.NewHTTPChecker(r.cfg.Token, hc.Timeout, r.cfg.clientTLS(tlsutil.RoleAgent)))
	r.fsm.Read(func(s *fsm.State) {
		for id, n := range s.Nodes {
			ls.statuses[id] = normNodeStatus(n.Status)
		}
	})
	jw := jobs.New(jobs.Config{
		Logger:       r.log.Named("jobs"),
		NewIDs:       r.newIDs,
		StopInstance: r.stopOnAgent,
		Placed:       eng.Kick,
		Gone:         eng.InstanceGone,
		Refresh:      refresh,
		OnEvent: func(kind, job, msg string) {
			r.metrics.observeDeployment(kind)
			r.event(kind, job, msg, "", "")
		},
	}, r)
	ls.health, ls.recovery, ls.jobs = mon, eng, jw
	var active []api.Alert
	r.fsm.Read(func(s *fsm.State) { active = append(active, s.ActiveAlerts...) })
	r.alerts.Seed(active)
	ls.wg.Add(7)
	go func() { defer ls.wg.Done(); r.gcLoop(ctx) }()
	go func() { defer ls.wg.Done(); jw.Run(ctx) }()
	go func() { defer ls.wg.Done(); r.peerCertLoop(ctx) }()
	go func() { defer ls.wg.Done(); r.reachLoop(ctx, ls) }()
	go func() { defer ls.wg.Done(); mon.Run(ctx) }()
	go func() { defer ls.wg.Done(); eng.Run(ctx) }()
	go func() { defer ls.wg.Done(); r.alertLoop(ctx, ls) }()
}

// kickPlacement wakes the recovery engine after a change that may let it place.
func (r *Replica) kickPlacement() {
	if ls := r.currentLeader(); ls != nil && ls.recovery != nil {
		ls.recovery.Kick()
	}
}

// kickNewWorkloads wakes the recovery engine for a pass over the workloads
// just created, not over the whole state.
func (r *Replica) kickNewWorkloads() {
	if ls := r.currentLeader(); ls != nil && ls.recovery != nil {
		ls.recovery.KickNew()
	}
}

// Read implements recovery.Store.
func (r *Replica) Read(fn func(s *fsm.State)) { r.fsm.Read(fn) }

// healthStore adapts the replica to health.Store.
type healthStore struct{ r *Replica }

func (h healthStore) Nodes() []api.Node {
	var out []api.Node
	h.r.fsm.Read(func(s *fsm.State) {
		out = make([]api.Node, 0, len(s.Nodes))
		for _, n := range s.Nodes {
			out = append(out, *n)
		}
	})
	return out
}

func (h healthStore) SetNodeStatus(ctx context.Context, c fsm.SetNodeStatus) error {
	c.At = c.At.UTC()
	if c.At.IsZero() {
		c.At = time.Now().UTC()
	}
	return h.r.Apply(&c)
}

// healthView adapts the monitor to recovery.HealthView: a node is a target
// only while its last check succeeded.
type healthView struct {
	get func(id string) (health.NodeHealth, bool)
}

func (h healthView) NodeView(id string) (recovery.NodeView, bool) {
	nh, ok := h.get(id)
	if !ok {
		return recovery.NodeView{}, false
	}
	status := nh.Status
	if nh.PendingStatus != "" {
		status = nh.PendingStatus
	}
	if nh.ConsecutiveFailures > 0 && status == api.NodeOnline {
		status = api.NodeDegraded
	}
	return recovery.NodeView{Status: status, CPU: nh.CPU, Checked: nh.Answered, LastHeard: nh.LastHeard,
		LastSeq: nh.LastSeq, SeqHeard: nh.SeqHeard}, true
}
