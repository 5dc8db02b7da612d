package cluster

import (
	"errors"
	"net/http"

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
	rt.GET("/state", r.read(r.handleState))
	rt.GET("/cluster/status", r.read(r.handleClusterStatus))
	rt.GET("/cluster/self", r.handleClusterSelf)
	rt.POST("/cluster/join", r.handleJoin)
	rt.POST("/cluster/remove", r.handleRemove)
	r.routeLeaderViews(rt)
	r.routeMonitoring(rt)

	return r.instrument(rt, api.RequireToken(r.cfg.Token, r.forward(rt)))
}

// read wraps a read handler: unless ?stale=true, the leader first confirms
// that it still leads, so a deposed leader never serves an old answer.
func (r *Replica) read(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if req.URL.Query().Get("stale") != "true" {
			if err := r.raft.VerifyLeader().Error(); err != nil {
				noLeader(w, "this replica could not confirm its leadership; retry")
				return
			}
		} else {
			w.Header().Set("X-Orchestrator-Stale", "true")
		}
		h(w, req, ps)
	}
}

// writeApplyError maps an Apply error to its HTTP answer.
func writeApplyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotLeader):
		noLeader(w, err.Error())
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
