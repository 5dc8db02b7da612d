package fsm

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func (s *State) applyRegisterJob(c *RegisterJob) error {
	name := c.Spec.Name
	if err := api.ValidateJobName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Count < 0 || c.Count > api.MaxJobCount {
		return fmt.Errorf("%w: count %d", ErrInvalid, c.Count)
	}
	j, exists := s.Jobs[name]
	if exists != c.Exists || (exists && j.Modify != c.Modify) {
		return fmt.Errorf("%w: job %s changed meanwhile; plan again", ErrConflict, name)
	}
	spec := CopyJobSpec(c.Spec)
	if !exists {
		j = &Job{Name: name, CreatedAt: c.At}
		s.Jobs[name] = j
		c.NewVersion = true
	}
	if c.RevertOf == nil {
		j.FileCount = spec.CountOr()
	}
	j.Count = c.Count
	j.Stopped = false
	if c.NewVersion {
		v := uint64(0)
		if exists {
			v = j.Versions[len(j.Versions)-1].Version + 1
		}
		s.newJobVersion(j, spec, v, c.RevertOf, c.At)
	} else if d := j.Deployment; d != nil && d.Status == api.DeploymentRunning {
		d.Desired = j.Count
	}
	j.Modify++
	j.UpdatedAt = c.At
	return nil
}

// newJobVersion makes version v of job j with spec, ends the deployment
// under way (cancelled) and starts the new version's.
func (s *State) newJobVersion(j *Job, spec api.JobSpec, v uint64, revertOf *uint64, at time.Time) {
	s.endDeployment(j, api.DeploymentCancelled, fmt.Sprintf("superseded by version %d", v), at)
	j.Versions = append(j.Versions, api.JobVersion{Version: v, Spec: spec, SubmittedAt: at,
		Deployment: api.DeploymentRunning, RevertOf: copyUint(revertOf)})
	if len(j.Versions) > api.MaxJobVersions {
		j.Versions = append([]api.JobVersion(nil), j.Versions[len(j.Versions)-api.MaxJobVersions:]...)
	}
	j.Version = v
	j.Deployment = &api.Deployment{Version: v, Status: api.DeploymentRunning, Desired: j.Count, StartedAt: at, RevertOf: copyUint(revertOf)}
}

// endDeployment ends j's running deployment, if any, with status.
func (s *State) endDeployment(j *Job, status, description string, at time.Time) {
	d := j.Deployment
	if d == nil || d.Status != api.DeploymentRunning {
		return
	}
	d.Status = status
	d.Description = description
	end := at
	d.EndedAt = &end
	for i := range j.Versions {
		if j.Versions[i].Version == d.Version {
			j.Versions[i].Deployment = status
			if status == api.DeploymentSuccessful {
				j.Versions[i].Stable = true
			}
		}
	}
}

func (s *State) applyScaleJob(c *ScaleJob) error {
	j, ok := s.Jobs[c.Name]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Name)
	}
	if j.Stopped {
		return fmt.Errorf("%w: job %s is stopped; run it again to scale it", ErrConflict, c.Name)
	}
	if c.Count < 0 || c.Count > api.MaxJobCount {
		return fmt.Errorf("%w: count %d: want 0 to %d", ErrInvalid, c.Count, api.MaxJobCount)
	}
	j.Count = c.Count
	if d := j.Deployment; d != nil && d.Status == api.DeploymentRunning {
		d.Desired = c.Count
	}
	j.Modify++
	j.UpdatedAt = c.At
	return nil
}

func (s *State) applyStopJob(c *StopJob) error {
	j, ok := s.Jobs[c.Name]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Name)
	}
	j.Stopped = true
	s.endDeployment(j, api.DeploymentCancelled, "job stopped", c.At)
	for _, id := range slices.Sorted(maps.Keys(s.Workloads)) {
		if w := s.Workloads[id]; w.Job == c.Name && IsLive(w) {
			s.stopWorkload(w, "job "+c.Name+" stopped", c.At)
		}
	}
	j.Modify++
	j.UpdatedAt = c.At
	return nil
}

// stopWorkload marks w stopped with reason.
func (s *State) stopWorkload(w *api.Workload, reason string, at time.Time) {
	w.MoveFrom = nil // its old instance, if moving, is a stray now: reconciliation stops it
	w.State = api.StateStopped
	w.Reason = reason
	w.Health, w.Ports = "", nil
	w.UpdatedAt = at
	s.dequeue(w.ID)
}

func (s *State) applyJobStep(c *JobStep) error {
	j, ok := s.Jobs[c.Name]
	if !ok {
		return fmt.Errorf("%w: job %s", ErrNotFound, c.Name)
	}
	if j.Modify != c.Modify {
		return fmt.Errorf("%w: job %s changed meanwhile", ErrConflict, c.Name)
	}
	if j.Stopped && len(c.Create) > 0 {
		return fmt.Errorf("%w: job %s is stopped", ErrConflict, c.Name)
	}
	cur := j.Current()
	for _, id := range c.Create {
		if _, dup := s.Workloads[id]; dup || id == "" {
			return fmt.Errorf("%w: workload %q already exists", ErrConflict, id)
		}
	}
	if c.Revert {
		if _, ok := j.Spec(c.RevertTo); !ok {
			return fmt.Errorf("%w: job %s has no version %d", ErrNotFound, c.Name, c.RevertTo)
		}
	}
	switch c.Status {
	case "", api.DeploymentSuccessful, api.DeploymentFailed:
	default:
		return fmt.Errorf("%w: deployment status %q", ErrInvalid, c.Status)
	}
	for _, id := range c.Create {
		v := j.Version
		sp := cur.Spec
		w := &api.Workload{ID: id, Name: j.Name, Command: sp.Command, Args: slices.Clone(sp.Args), Exclusive: sp.Exclusive,
			Spec: CopySpec(sp.Spec), State: api.StatePending, Job: j.Name, JobVersion: &v, CreatedAt: c.At, UpdatedAt: c.At}
		if sp.Env != nil {
			w.Env = maps.Clone(sp.Env)
		}
		s.Workloads[id] = w
		s.notePending(id, true)
	}
	for _, st := range c.Stop {
		if w, ok := s.Workloads[st.ID]; ok && w.Job == j.Name && IsLive(w) {
			s.stopWorkload(w, st.Reason, c.At)
		}
	}
	for _, id := range c.Relabel {
		if w, ok := s.Workloads[id]; ok && w.Job == j.Name && IsLive(w) {
			v := j.Version
			w.JobVersion = &v
			w.UpdatedAt = c.At
		}
	}
	if d := j.Deployment; d != nil && d.Status == api.DeploymentRunning && d.Version == j.Version {
		d.Placed += len(c.Create) + len(c.Relabel)
		for _, id := range c.Counted {
			if !slices.Contains(d.Counted, id) {
				d.Counted = append(d.Counted, id)
			}
		}
		d.Healthy = len(d.Counted)
		switch {
		case c.Status == api.DeploymentFailed && c.Revert:
			s.endDeployment(j, api.DeploymentReverted, c.Description, c.At)
			spec, _ := j.Spec(c.RevertTo)
			to := c.RevertTo
			s.newJobVersion(j, CopyJobSpec(spec), j.Versions[len(j.Versions)-1].Version+1, &to, c.At)
		case c.Status != "":
			s.endDeployment(j, c.Status, c.Description, c.At)
		}
	}
	if c.Seq > s.LastSeq {
		s.LastSeq = c.Seq
	}
	j.Modify++
	j.UpdatedAt = c.At
	return nil
}
