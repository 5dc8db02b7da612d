package jobs

import (
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// PlanRun works out what a run of spec (valid and normalized) does to the
// job as s holds it: the plan to show, and the command that carries it out.
//
// The count: a run takes the file's count when it differs from the count
// the last run's file gave; when the file's count is unchanged, the job
// keeps its current count, so that a run of the same file does not undo a
// scale.
func PlanRun(s *fsm.State, spec api.JobSpec, at time.Time) (api.JobPlan, *fsm.RegisterJob) {
	fileCount := spec.CountOr()
	j, exists := s.Jobs[spec.Name]
	cmd := &fsm.RegisterJob{At: at, Spec: fsm.CopyJobSpec(spec), Exists: exists}
	if !exists {
		cmd.Count, cmd.NewVersion = fileCount, true
		return api.JobPlan{Name: spec.Name, New: true, Changes: true, Version: 0, NewVersion: true,
			CountTo: fileCount, Diff: diffFields(nil, flatten(spec)), Create: fileCount}, cmd
	}
	cmd.Modify = j.Modify
	p := api.JobPlan{Name: spec.Name, Version: j.Version, CountFrom: j.Count}
	if j.Stopped {
		p.CountFrom = 0
	}
	p.CountTo = j.Count
	switch {
	case fileCount != j.FileCount:
		p.CountTo = fileCount
	case j.Count != fileCount:
		p.CountNote = fmt.Sprintf("count stays %d, as scaled: the file's count (%d) is the same as at the last run; change it in the file, or use job scale", j.Count, fileCount)
	}
	if cur := j.Current(); cur != nil {
		p.Diff = Diff(cur.Spec, spec)
	}
	p.NewVersion = len(p.Diff) > 0 || j.Stopped
	p.Changes = p.NewVersion || p.CountTo != j.Count
	if p.NewVersion {
		p.Version = lastVersion(j) + 1
	}
	cmd.Count, cmd.NewVersion = p.CountTo, p.NewVersion
	countInstances(s, j, spec, &p)
	if !p.Changes && fileCount == j.FileCount {
		cmd = nil // nothing to write
	}
	// Otherwise, with no change, the run still records the file's count,
	// so that the next run of the same file keeps a later scale.
	return p, cmd
}

// PlanRevert is the command that rolls version v of job j out again as a
// new version. It keeps the count.
func PlanRevert(j *fsm.Job, v uint64, at time.Time) (*fsm.RegisterJob, error) {
	spec, ok := j.Spec(v)
	if !ok {
		return nil, fmt.Errorf("%w: job %s has no version %d (kept: %s)", fsm.ErrNotFound, j.Name, v, keptVersions(j))
	}
	if v == j.Version && !j.Stopped {
		return nil, fmt.Errorf("%w: job %s is at version %d already", fsm.ErrConflict, j.Name, v)
	}
	to := v
	spec = fsm.CopyJobSpec(spec)
	fc := j.FileCount // the count stays: a revert changes what runs, not how many
	spec.Count = &fc
	return &fsm.RegisterJob{At: at, Spec: spec, Count: j.Count, Exists: true, Modify: j.Modify,
		NewVersion: true, RevertOf: &to}, nil
}

func keptVersions(j *fsm.Job) string {
	if len(j.Versions) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d to %d", j.Versions[0].Version, j.Versions[len(j.Versions)-1].Version)
}

func lastVersion(j *fsm.Job) uint64 {
	if len(j.Versions) == 0 {
		return j.Version
	}
	return j.Versions[len(j.Versions)-1].Version
}

// countInstances fills what the plan does to the job's live instances:
// those that run the new spec stay (moved in place when the version
// changes), the others are replaced, and the count decides how many are
// created or stopped.
func countInstances(s *fsm.State, j *fsm.Job, spec api.JobSpec, p *api.JobPlan) {
	var same, differ, done int
	if !j.Stopped {
		for _, w := range s.Workloads {
			if w.Job != j.Name {
				continue
			}
			// A batch job's completed instances of the version it stays at
			// count towards its count, as the deployment loop counts them.
			if v, ok := versionOf(w); ok && v == j.Version && w.State == api.StateCompleted && !p.NewVersion {
				done++
				continue
			}
			if !fsm.IsLive(w) {
				continue
			}
			if sameTask(w, spec) {
				same++
			} else {
				differ++
			}
		}
	}
	live := same + differ + min(done, p.CountTo)
	switch {
	case p.CountTo < live:
		stop := min(live-p.CountTo, same+differ)
		fromDiffer := min(stop, differ)
		differ -= fromDiffer
		same -= stop - fromDiffer
		p.Stop = stop
	case p.CountTo > live:
		p.Create = p.CountTo - live
	}
	if p.NewVersion {
		p.Replace, p.InPlace = differ, same
	}
}
