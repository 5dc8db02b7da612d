package cluster

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/health"
)

// routeLeaderViews adds the endpoints answered from the leader's memory
// (followers forward them like every other call).
func (r *Replica) routeLeaderViews(rt *router) {
	rt.GET("/health/summary", r.leaderOnly(r.handleHealthSummary))
	rt.POST("/health/check", r.leaderOnly(r.handleHealthCheck))
	rt.GET("/recovery/metrics", r.leaderOnly(r.handleRecoveryMetrics))
}

// leaderOnly answers 503 until the leader loops run on this replica.
func (r *Replica) leaderOnly(h func(http.ResponseWriter, *http.Request, *leaderState)) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		ls := r.currentLeader()
		if ls == nil || ls.health == nil {
			noLeader(w, "the leader is still starting its health monitor; retry")
			return
		}
		if err := r.readBarrier(req.Context()); err != nil {
			noLeader(w, err.Error())
			return
		}
		h(w, req, ls)
	}
}

// workloadCounts returns the failed workloads (sorted) and the number of
// desired workloads: every one but the stopped and the completed, which are
// done (a completed batch workload is neither desired nor failed).
func (r *Replica) workloadCounts() (failed, permanent []string, desired, queue int) {
	r.fsm.Read(func(s *fsm.State) {
		for id, w := range s.Workloads {
			switch w.State {
			case api.StateStopped, api.StateCompleted:
				continue
			case api.StateFailed:
				failed = append(failed, id)
			case api.StatePermanentlyFailed:
				failed = append(failed, id)
				permanent = append(permanent, id)
			}
			desired++
		}
		queue = len(s.RecoveryQueue)
	})
	sort.Slice(failed, func(i, j int) bool { return lessID(failed[i], failed[j]) })
	sort.Slice(permanent, func(i, j int) bool { return lessID(permanent[i], permanent[j]) })
	return failed, permanent, desired, queue
}

func (r *Replica) summary(ls *leaderState) api.HealthSummary {
	failed, _, desired, _ := r.workloadCounts()
	sum := health.Summary(ls.health.Snapshot(), len(failed), desired)
	now := time.Now()
	r.fsm.Read(func(s *fsm.State) {
		for i := range sum.NodeDetails {
			d := &sum.NodeDetails[i]
			n, ok := s.Nodes[d.NodeID]
			if !ok {
				continue
			}
			d.Eligible, d.Draining = n.Eligible, n.Draining
			d.Restarting = n.RestartingUntil != nil && now.Before(*n.RestartingUntil)
			if n.Draining {
				sum.DrainingNodes++
			}
			if !n.Eligible {
				sum.IneligibleNodes++
			}
		}
	})
	return sum
}

func (r *Replica) handleHealthSummary(w http.ResponseWriter, _ *http.Request, ls *leaderState) {
	api.WriteJSON(w, http.StatusOK, r.summary(ls))
}

func (r *Replica) handleHealthCheck(w http.ResponseWriter, req *http.Request, ls *leaderState) {
	if err := ls.health.CheckNow(req.Context()); err != nil {
		if errors.Is(err, health.ErrNotRunning) || errors.Is(err, ErrNotLeader) {
			noLeader(w, err.Error())
			return
		}
		api.WriteError(w, http.StatusInternalServerError, "health check: "+err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, r.summary(ls))
}

func (r *Replica) handleRecoveryMetrics(w http.ResponseWriter, _ *http.Request, ls *leaderState) {
	failed, permanent, desired, queue := r.workloadCounts()
	st := ls.recovery.Stats()
	rate := 100.0
	if st.Attempted > 0 {
		rate = 100 * float64(st.Succeeded) / float64(st.Attempted)
	}
	out := api.RecoveryMetrics{
		FailedWorkloads:   nonNil(failed),
		DesiredStateCount: desired,
		HealthChecks:      health.HealthChecks(ls.health.Snapshot()),
		QueueLength:       queue,
		Attempted:         st.Attempted,
		Succeeded:         st.Succeeded,
		Failed:            st.Failed,
		PermanentlyFailed: nonNil(permanent),
		SuccessRate:       rate,
		LastDurations:     append([]float64{}, st.LastDurations...),
		EvictionsPaused:   st.EvictionsPaused,
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
