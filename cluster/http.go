package cluster

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// handler builds the replica's HTTP API: token check, then forwarding to the
// leader, then the routes.
func (r *Replica) handler() http.Handler {
	rt := newRouter()
	rt.HandleMethodNotAllowed = true
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		api.WriteError(w, http.StatusNotFound, "no such endpoint")
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		api.WriteError(w, http.StatusMethodNotAllowed, "method not allowed on this endpoint")
	})

	rt.POST("/workloads", r.handleSubmit)
	rt.GET("/workloads", r.read(r.handleListWorkloads))
	rt.GET("/workloads/:id", r.read(r.handleGetWorkload))
	rt.DELETE("/workloads/:id", r.handleStopWorkload)
	rt.GET("/workloads/:id/logs", r.read(r.handleLogs))
	rt.POST("/nodes", r.handleRegisterNode)
	rt.GET("/nodes", r.read(r.handleListNodes))
	rt.POST("/nodes/:id/heartbeat", r.handleHeartbeat)
	rt.POST("/cluster/heartbeats", r.handleHeartbeatRelay)
	rt.GET("/state", r.read(r.handleState))
	rt.GET("/cluster/status", r.read(r.handleClusterStatus))
	rt.GET("/cluster/self", r.handleClusterSelf)
	rt.POST("/cluster/join", r.handleJoin)
	rt.POST("/cluster/remove", r.handleRemove)
	r.routeJobs(rt)
	r.routeNodes(rt)
	r.routeLeaderViews(rt)
	r.routeMonitoring(rt)

	return r.instrument(rt, api.RequireToken(r.cfg.Token, r.roleCheck(r.forward(rt))))
}

// read wraps a read handler: unless ?stale=true, it answers only once this
// replica has confirmed it still leads and has applied everything committed
// when the request arrived, so a deposed or freshly elected leader never
// serves an old answer (a read index).
func (r *Replica) read(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if req.URL.Query().Get("stale") == "true" {
			w.Header().Set("X-Orchestrator-Stale", "true")
			h(w, req, ps)
			return
		}
		if err := r.readBarrier(req.Context()); err != nil {
			noLeader(w, err.Error())
			return
		}
		h(w, req, ps)
	}
}

// readBarrier waits until a linearizable read may be served from the local
// state: leadership established (after raft.Barrier), confirmed by a quorum,
// and the commit index seen at the start applied.
func (r *Replica) readBarrier(ctx context.Context) error {
	if r.currentLeader() == nil {
		return errors.New("this replica is not (yet) an established leader; retry")
	}
	commit := r.raft.CommitIndex()
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return errors.New("this replica could not confirm its leadership; retry")
	}
	deadline := time.Now().Add(applyTimeout)
	for r.raft.AppliedIndex() < commit {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("this replica is behind on applying the log; retry")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// writeApplyError maps an Apply error to its HTTP answer.
func writeApplyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		noLeader(w, err.Error())
	case errors.Is(err, ErrOutcomeUnknown):
		api.WriteError(w, http.StatusBadGateway, err.Error())
	case errors.Is(err, fsm.ErrNotFound):
		api.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, fsm.ErrConflict):
		api.WriteError(w, http.StatusConflict, err.Error())
	case errors.Is(err, fsm.ErrInvalid):
		api.WriteError(w, http.StatusBadRequest, err.Error())
	default:
		api.WriteError(w, http.StatusInternalServerError, err.Error())
	}
}
