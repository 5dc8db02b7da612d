package fsm

import (
	"maps"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Job is the replicated desired state of one job: its versions, the count
// it runs at and its current deployment. Its instances are workloads whose
// Job names it.
type Job struct {
	Name string `json:"name"`
	// Version is the version its instances should run.
	Version uint64 `json:"version"`
	// Count is how many instances it runs now; FileCount is the count the
	// last run of a job file asked for (a scale changes Count only, so a
	// later run of the same file keeps the scaled count).
	Count     int  `json:"count"`
	FileCount int  `json:"file_count"`
	Stopped   bool `json:"stopped,omitempty"`
	// Modify is bumped by every change of the job; a change computed from
	// an older one is refused, so that two writers cannot interleave.
	Modify uint64 `json:"modify"`
	// Versions are the kept versions, oldest first, the current one last.
	Versions   []api.JobVersion `json:"versions"`
	Deployment *api.Deployment  `json:"deployment,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	UpdatedAt  time.Time        `json:"updated_at"`
}

// Spec returns the spec of version v, if it is kept.
func (j *Job) Spec(v uint64) (api.JobSpec, bool) {
	for _, jv := range j.Versions {
		if jv.Version == v {
			return jv.Spec, true
		}
	}
	return api.JobSpec{}, false
}

// Current returns the kept entry of the current version.
func (j *Job) Current() *api.JobVersion {
	for i := range j.Versions {
		if j.Versions[i].Version == j.Version {
			return &j.Versions[i]
		}
	}
	return nil
}

// LastStable returns the newest stable version older than the current one.
func (j *Job) LastStable() (uint64, bool) {
	for i := len(j.Versions) - 1; i >= 0; i-- {
		if jv := j.Versions[i]; jv.Stable && jv.Version != j.Version {
			return jv.Version, true
		}
	}
	return 0, false
}

// CopyJob returns a deep copy of j.
func CopyJob(j *Job) *Job {
	c := *j
	c.Versions = make([]api.JobVersion, len(j.Versions))
	for i, v := range j.Versions {
		c.Versions[i] = copyJobVersion(v)
	}
	if j.Deployment != nil {
		d := *j.Deployment
		d.Counted = slices.Clone(j.Deployment.Counted)
		d.EndedAt = copyTime(j.Deployment.EndedAt)
		d.RevertOf = copyUint(j.Deployment.RevertOf)
		c.Deployment = &d
	}
	return &c
}

func copyJobVersion(v api.JobVersion) api.JobVersion {
	v.Spec = CopyJobSpec(v.Spec)
	v.RevertOf = copyUint(v.RevertOf)
	return v
}

// CopyJobSpec returns a deep copy of a job spec.
func CopyJobSpec(s api.JobSpec) api.JobSpec {
	c := s
	c.Args = slices.Clone(s.Args)
	c.Env = maps.Clone(s.Env)
	if s.Count != nil {
		n := *s.Count
		c.Count = &n
	}
	c.Spec = CopySpec(s.Spec)
	if s.Update != nil {
		u := *s.Update
		if s.Update.MaxParallel != nil {
			p := *s.Update.MaxParallel
			u.MaxParallel = &p
		}
		c.Update = &u
	}
	return c
}

func copyUint(p *uint64) *uint64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func copyTime(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// IsLive reports whether a workload is still meant to run: pending, running,
// or failed and waiting for recovery.
func IsLive(w *api.Workload) bool {
	switch w.State {
	case api.StatePending, api.StateRunning, api.StateFailed:
		return true
	}
	return false
}
