package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/jobs"
)

// planAttempts bounds how often a job write is planned again when the job
// changed between the plan and the raft write (the deployment loop writes
// steps meanwhile).
const planAttempts = 5

// routeJobs adds the job endpoints.
func (r *Replica) routeJobs(rt *router) {
	rt.POST("/jobs", r.handleRunJob)
	rt.GET("/jobs", r.read(r.handleListJobs))
	rt.GET("/jobs/:name", r.read(r.handleGetJob))
	rt.DELETE("/jobs/:name", r.handleStopJob)
	rt.POST("/jobs/:name/scale", r.handleScaleJob)
	rt.GET("/jobs/:name/versions", r.read(r.handleJobVersions))
	rt.POST("/jobs/:name/revert", r.handleRevertJob)
}

// decodeJobSpec reads, validates and normalizes the job spec of a POST
// /jobs body; on an error it has answered.
func decodeJobSpec(w http.ResponseWriter, req *http.Request) (api.JobSpec, bool) {
	var spec api.JobSpec
	var body bytes.Buffer
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(req.Body, &body), req.Body}
	if code, err := api.DecodeJSON(w, req, &spec); err != nil {
		if code == http.StatusBadRequest {
			if derr := durationError(body.Bytes()); derr != nil {
				err = derr
			}
		}
		api.WriteError(w, code, err.Error())
		return spec, false
	}
	spec.Name = strings.TrimSpace(spec.Name)
	if errs := spec.Validate(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		api.WriteError(w, http.StatusBadRequest, strings.Join(msgs, "; "))
		return spec, false
	}
	spec.Normalize()
	return spec, true
}

// handleRunJob answers POST /jobs: it creates or changes a job (a new
// version when its spec changes), or with ?plan=true says what that would
// do, changing nothing.
func (r *Replica) handleRunJob(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	spec, ok := decodeJobSpec(w, req)
	if !ok {
		return
	}
	if err := r.readBarrier(req.Context()); err != nil {
		noLeader(w, err.Error())
		return
	}
	switch req.URL.Query().Get("plan") {
	case "", "false":
	case "true":
		var plan api.JobPlan
		r.fsm.Read(func(s *fsm.State) { plan, _ = jobs.PlanRun(s, spec, time.Now().UTC()) })
		api.WriteJSON(w, http.StatusOK, plan)
		return
	default:
		api.WriteError(w, http.StatusBadRequest, "plan must be true or false")
		return
	}
	for attempt := 1; ; attempt++ {
		var plan api.JobPlan
		var cmd *fsm.RegisterJob
		r.fsm.Read(func(s *fsm.State) { plan, cmd = jobs.PlanRun(s, spec, time.Now().UTC()) })
		if cmd == nil {
			api.WriteJSON(w, http.StatusOK, api.JobRunResponse{Name: spec.Name, Version: plan.Version, Count: plan.CountTo, Plan: plan})
			return
		}
		err := r.Apply(cmd)
		if errors.Is(err, fsm.ErrConflict) && attempt < planAttempts {
			continue
		}
		if err != nil {
			writeApplyError(w, err)
			return
		}
		if plan.Changes {
			r.jobChanged(api.EventJobRegistered, spec.Name, runMessage(plan))
		}
		api.WriteJSON(w, http.StatusOK, api.JobRunResponse{Name: spec.Name, Version: plan.Version, Count: plan.CountTo, Plan: plan})
		return
	}
}

// runMessage is the event message of a run.
func runMessage(p api.JobPlan) string {
	switch {
	case p.New:
		return fmt.Sprintf("job created at version %d with count %d", p.Version, p.CountTo)
	case p.NewVersion:
		return fmt.Sprintf("version %d (%d fields changed), count %d", p.Version, len(p.Diff), p.CountTo)
	default:
		return fmt.Sprintf("count %d => %d", p.CountFrom, p.CountTo)
	}
}

// jobChanged records a job event and wakes the deployment loop.
func (r *Replica) jobChanged(kind, name, msg string) {
	r.log.Info("job changed", "job", name, "kind", kind, "message", msg)
	r.event(kind, name, msg, "", "")
	if ls := r.currentLeader(); ls != nil && ls.jobs != nil {
		ls.jobs.Kick()
	}
}

func (r *Replica) handleListJobs(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	out := api.JobList{Jobs: []api.Job{}}
	r.fsm.Read(func(s *fsm.State) {
		byJob := instancesByJob(s)
		for _, name := range slices.Sorted(maps.Keys(s.Jobs)) {
			out.Jobs = append(out.Jobs, jobView(s.Jobs[name], byJob[name]))
		}
	})
	api.WriteJSON(w, http.StatusOK, out)
}

func (r *Replica) handleGetJob(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	j, ok := r.jobView(ps.ByName("name"))
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no job "+ps.ByName("name"))
		return
	}
	api.WriteJSON(w, http.StatusOK, j)
}

// jobView returns how the API shows job name now.
func (r *Replica) jobView(name string) (api.Job, bool) {
	var out api.Job
	var ok bool
	r.fsm.Read(func(s *fsm.State) {
		var j *fsm.Job
		if j, ok = s.Jobs[name]; ok {
			var insts []*api.Workload
			for _, wl := range s.Workloads {
				if wl.Job == name {
					insts = append(insts, wl)
				}
			}
			out = jobView(j, insts)
		}
	})
	return out, ok
}

func instancesByJob(s *fsm.State) map[string][]*api.Workload {
	out := map[string][]*api.Workload{}
	for _, wl := range s.Workloads {
		if wl.Job != "" {
			out[wl.Job] = append(out[wl.Job], wl)
		}
	}
	return out
}

// jobView is job j as the API shows it, with its instances counted by
// state and, when running, by health.
func jobView(j *fsm.Job, insts []*api.Workload) api.Job {
	c := fsm.CopyJob(j)
	out := api.Job{Name: c.Name, Status: api.JobRunning, Version: c.Version, Count: c.Count, Deployment: c.Deployment,
		Instances: map[string]int{}, Health: map[string]int{}, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if c.Stopped {
		out.Status = api.JobStopped
	}
	if cur := c.Current(); cur != nil {
		out.Spec = cur.Spec
	}
	for _, wl := range insts {
		out.Instances[wl.State]++
		if wl.State == api.StateRunning {
			out.Health[healthLabel(wl.Health)]++
		}
	}
	return out
}

func (r *Replica) handleScaleJob(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	name := ps.ByName("name")
	var body api.JobScaleRequest
	if code, err := api.DecodeJSON(w, req, &body); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if body.Count == nil {
		api.WriteError(w, http.StatusBadRequest, "count is required")
		return
	}
	if n := *body.Count; n < 0 || n > api.MaxJobCount {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("count %d: want 0 to %d", n, api.MaxJobCount))
		return
	}
	var from int
	r.fsm.Read(func(s *fsm.State) {
		if j, ok := s.Jobs[name]; ok {
			from = j.Count
		}
	})
	if err := r.Apply(&fsm.ScaleJob{At: time.Now().UTC(), Name: name, Count: *body.Count}); err != nil {
		writeCommandError(w, name, err)
		return
	}
	r.jobChanged(api.EventJobScaled, name, fmt.Sprintf("count %d => %d", from, *body.Count))
	j, _ := r.jobView(name)
	api.WriteJSON(w, http.StatusOK, j)
}

// writeCommandError answers an Apply error of a job or node command with
// its message alone (without the "not found: " or "conflict: " prefix).
func writeCommandError(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		api.WriteError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "not found: "))
	case errors.Is(err, fsm.ErrConflict):
		api.WriteError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), "conflict: "))
	default:
		writeApplyError(w, err)
	}
}

func (r *Replica) handleJobVersions(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	name := ps.ByName("name")
	var out api.JobVersions
	var ok bool
	r.fsm.Read(func(s *fsm.State) {
		var j *fsm.Job
		if j, ok = s.Jobs[name]; ok {
			c := fsm.CopyJob(j)
			out = api.JobVersions{Name: name, Versions: make([]api.JobVersion, 0, len(c.Versions))}
			for i := len(c.Versions) - 1; i >= 0; i-- {
				out.Versions = append(out.Versions, c.Versions[i])
			}
		}
	})
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no job "+name)
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// handleRevertJob answers POST /jobs/{name}/revert: a new version with the
// spec of an older one, rolled out like any other.
func (r *Replica) handleRevertJob(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	name := ps.ByName("name")
	var body api.JobRevertRequest
	if code, err := api.DecodeJSON(w, req, &body); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if body.Version == nil {
		api.WriteError(w, http.StatusBadRequest, "version is required")
		return
	}
	if err := r.readBarrier(req.Context()); err != nil {
		noLeader(w, err.Error())
		return
	}
	for attempt := 1; ; attempt++ {
		var cmd *fsm.RegisterJob
		var plan api.JobPlan
		err := fmt.Errorf("%w: no job %s", fsm.ErrNotFound, name)
		r.fsm.Read(func(s *fsm.State) {
			j, ok := s.Jobs[name]
			if !ok {
				return
			}
			if cmd, err = jobs.PlanRevert(j, *body.Version, time.Now().UTC()); err == nil {
				plan, _ = jobs.PlanRun(s, cmd.Spec, cmd.At)
				plan.CountNote = ""
			}
		})
		if err == nil {
			err = r.Apply(cmd)
		}
		if errors.Is(err, fsm.ErrConflict) && cmd != nil && attempt < planAttempts {
			continue
		}
		if err != nil {
			writeCommandError(w, name, err)
			return
		}
		var v uint64
		r.fsm.Read(func(s *fsm.State) { v = s.Jobs[name].Version })
		plan.Version, plan.NewVersion, plan.Changes = v, true, true
		r.jobChanged(api.EventJobRegistered, name, fmt.Sprintf("reverted to version %d as version %d", *body.Version, v))
		api.WriteJSON(w, http.StatusOK, api.JobRunResponse{Name: name, Version: v, Count: plan.CountTo, Plan: plan})
		return
	}
}

// handleStopJob answers DELETE /jobs/{name}: the job and every instance are
// stopped through raft, then on their agents (reconciliation stops those it
// could not reach now).
func (r *Replica) handleStopJob(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	name := ps.ByName("name")
	at := time.Now().UTC()
	if err := r.Apply(&fsm.StopJob{At: at, Name: name}); err != nil {
		writeCommandError(w, name, err)
		return
	}
	var stopped []*api.Workload
	r.fsm.Read(func(s *fsm.State) {
		for _, wl := range s.Workloads {
			if wl.Job == name && wl.State == api.StateStopped && wl.Node != "" && wl.UpdatedAt.Equal(at) {
				stopped = append(stopped, fsm.CopyWorkload(wl))
			}
		}
	})
	r.kickPlacement()
	r.stopAll(req, stopped)
	r.jobChanged(api.EventJobStopped, name, fmt.Sprintf("stopped with %d instances", len(stopped)))
	j, _ := r.jobView(name)
	api.WriteJSON(w, http.StatusOK, j)
}

// stopAll stops instances on their agents, a few at a time, and waits.
func (r *Replica) stopAll(req *http.Request, ws []*api.Workload) {
	sem := make(chan struct{}, 16)
	done := make(chan struct{}, len(ws))
	for _, wl := range ws {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem; done <- struct{}{} }()
			if err := r.stopOnAgent(req.Context(), wl); err != nil {
				r.log.Warn("stopping a job instance on its agent failed; reconciliation will retry", "workload", wl.ID, "node", wl.Node, "error", err)
			}
		}()
	}
	for range ws {
		<-done
	}
}
