package fsm_test

import (
	"errors"
	"testing"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// jobSpec is a normalized job spec named name with env GREETING=greeting.
func jobSpec(name, greeting string, count int) api.JobSpec {
	s := api.JobSpec{Name: name, Count: &count, Command: "sleep", Args: []string{"600"}, Env: map[string]string{"GREETING": greeting}}
	s.Normalize()
	return s
}

func getJob(tb testing.TB, f *fsm.FSM, name string) *fsm.Job {
	tb.Helper()
	var j *fsm.Job
	f.Read(func(s *fsm.State) {
		if sj, ok := s.Jobs[name]; ok {
			j = fsm.CopyJob(sj)
		}
	})
	if j == nil {
		tb.Fatalf("no job %s", name)
	}
	return j
}

func TestRegisterJobVersionsAndConflicts(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, &fsm.RegisterJob{At: at(0), Spec: jobSpec("web", "a", 3), Count: 3})
	j := getJob(t, f, "web")
	if j.Version != 0 || j.Count != 3 || j.FileCount != 3 || j.Deployment == nil || j.Deployment.Status != api.DeploymentRunning || j.Deployment.Desired != 3 {
		t.Fatalf("new job: %+v deployment %+v", j, j.Deployment)
	}
	// A plan made before another change is refused, and changes nothing.
	mustFail(t, f, &fsm.RegisterJob{At: at(1), Spec: jobSpec("web", "b", 3), Count: 3, Exists: true, Modify: j.Modify - 1, NewVersion: true}, fsm.ErrConflict)
	mustFail(t, f, &fsm.RegisterJob{At: at(1), Spec: jobSpec("web", "b", 3), Count: 3, Exists: false, NewVersion: true}, fsm.ErrConflict)
	mustFail(t, f, &fsm.RegisterJob{At: at(1), Spec: jobSpec("Web", "b", 3), Count: 3}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.RegisterJob{At: at(1), Spec: jobSpec("web", "b", 3), Count: 1001, Exists: true, Modify: j.Modify, NewVersion: true}, fsm.ErrInvalid)

	mustApply(t, f, &fsm.RegisterJob{At: at(2), Spec: jobSpec("web", "b", 3), Count: 3, Exists: true, Modify: j.Modify, NewVersion: true})
	j2 := getJob(t, f, "web")
	if j2.Version != 1 || len(j2.Versions) != 2 || j2.Versions[0].Deployment != api.DeploymentCancelled || j2.Deployment.Version != 1 {
		t.Fatalf("second version: version %d versions %+v deployment %+v", j2.Version, j2.Versions, j2.Deployment)
	}
	// Only the last MaxJobVersions versions are kept.
	for i := range api.MaxJobVersions + 3 {
		cur := getJob(t, f, "web")
		mustApply(t, f, &fsm.RegisterJob{At: at(3 + i), Spec: jobSpec("web", string(rune('c'+i)), 3), Count: 3, Exists: true, Modify: cur.Modify, NewVersion: true})
	}
	j3 := getJob(t, f, "web")
	if len(j3.Versions) != api.MaxJobVersions || j3.Versions[len(j3.Versions)-1].Version != j3.Version || j3.Version != uint64(api.MaxJobVersions+4) {
		t.Fatalf("kept %d versions, last %d, job at %d", len(j3.Versions), j3.Versions[len(j3.Versions)-1].Version, j3.Version)
	}
}

func TestScaleKeepsVersionAndRunAfterScale(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, &fsm.RegisterJob{At: at(0), Spec: jobSpec("web", "a", 3), Count: 3})
	mustApply(t, f, &fsm.ScaleJob{At: at(1), Name: "web", Count: 5})
	j := getJob(t, f, "web")
	if j.Version != 0 || j.Count != 5 || j.FileCount != 3 || j.Deployment.Desired != 5 {
		t.Fatalf("after scale: version %d count %d file %d desired %d", j.Version, j.Count, j.FileCount, j.Deployment.Desired)
	}
	mustFail(t, f, &fsm.ScaleJob{At: at(2), Name: "nope", Count: 1}, fsm.ErrNotFound)
	mustFail(t, f, &fsm.ScaleJob{At: at(2), Name: "web", Count: -1}, fsm.ErrInvalid)
	mustApply(t, f, &fsm.StopJob{At: at(3), Name: "web"})
	mustFail(t, f, &fsm.ScaleJob{At: at(4), Name: "web", Count: 2}, fsm.ErrConflict)
	mustFail(t, f, &fsm.StopJob{At: at(4), Name: "nope"}, fsm.ErrNotFound)
	if j := getJob(t, f, "web"); !j.Stopped || j.Deployment.Status != api.DeploymentCancelled {
		t.Fatalf("stopped job: %+v", j.Deployment)
	}
}

func TestJobStepCreatesStopsAndEndsDeployment(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, &fsm.RegisterJob{At: at(0), Spec: jobSpec("web", "a", 2), Count: 2})
	j := getJob(t, f, "web")
	mustApply(t, f, &fsm.JobStep{At: at(1), Seq: 2, Name: "web", Modify: j.Modify, Create: []string{w0, w1}})
	w := getWorkload(t, f, w0)
	if w.Job != "web" || w.JobVersion == nil || *w.JobVersion != 0 || w.State != api.StatePending || w.Env["GREETING"] != "a" || w.Command != "sleep" {
		t.Fatalf("created instance: %+v", w)
	}
	// A step decided from an older job, or creating an existing ID, is refused.
	mustFail(t, f, &fsm.JobStep{At: at(2), Name: "web", Modify: j.Modify, Create: []string{"workload_x"}}, fsm.ErrConflict)
	j = getJob(t, f, "web")
	mustFail(t, f, &fsm.JobStep{At: at(2), Name: "web", Modify: j.Modify, Create: []string{w0}}, fsm.ErrConflict)
	mustFail(t, f, &fsm.JobStep{At: at(2), Name: "web", Modify: j.Modify, Status: "bogus"}, fsm.ErrInvalid)
	mustFail(t, f, &fsm.JobStep{At: at(2), Name: "web", Modify: j.Modify, Status: api.DeploymentFailed, Revert: true, RevertTo: 7}, fsm.ErrNotFound)

	mustApply(t, f, &fsm.JobStep{At: at(3), Name: "web", Modify: j.Modify, Counted: []string{w0, w1, w0}, Status: api.DeploymentSuccessful, Description: "2 of 2"})
	j = getJob(t, f, "web")
	if d := j.Deployment; d.Status != api.DeploymentSuccessful || d.Healthy != 2 || d.Placed != 2 || d.EndedAt == nil || !j.Versions[0].Stable {
		t.Fatalf("ended deployment: %+v stable %v", d, j.Versions[0].Stable)
	}
	// Version 1 fails and is reverted to version 0: a new version 2 with
	// version 0's spec, its deployment running.
	mustApply(t, f, &fsm.RegisterJob{At: at(4), Spec: jobSpec("web", "b", 2), Count: 2, Exists: true, Modify: j.Modify, NewVersion: true})
	j = getJob(t, f, "web")
	mustApply(t, f, &fsm.JobStep{At: at(5), Name: "web", Modify: j.Modify, Stop: []fsm.InstanceStop{{ID: w0, Reason: "replaced by version 1"}}, Create: []string{"workload_1705311045_9"}})
	if w := getWorkload(t, f, w0); w.State != api.StateStopped || w.Reason != "replaced by version 1" {
		t.Fatalf("replaced instance: %s %q", w.State, w.Reason)
	}
	j = getJob(t, f, "web")
	mustApply(t, f, &fsm.JobStep{At: at(6), Name: "web", Modify: j.Modify, Status: api.DeploymentFailed, Description: "broken", Revert: true, RevertTo: 0})
	j = getJob(t, f, "web")
	if j.Version != 2 || j.Deployment.Version != 2 || j.Deployment.Status != api.DeploymentRunning || j.Deployment.RevertOf == nil || *j.Deployment.RevertOf != 0 {
		t.Fatalf("after revert: version %d deployment %+v", j.Version, j.Deployment)
	}
	if v1 := j.Versions[1]; v1.Deployment != api.DeploymentReverted || v1.Stable {
		t.Fatalf("reverted version: %+v", v1)
	}
	if sp, _ := j.Spec(2); sp.Env["GREETING"] != "a" {
		t.Fatalf("revert spec env %v, want version 0's", sp.Env)
	}
	if last, ok := j.LastStable(); !ok || last != 0 {
		t.Fatalf("LastStable = %d %v", last, ok)
	}
	// Stopping the job stops every live instance.
	mustApply(t, f, &fsm.StopJob{At: at(7), Name: "web"})
	f.Read(func(s *fsm.State) {
		for id, w := range s.Workloads {
			if w.Job == "web" && w.State != api.StateStopped {
				t.Errorf("instance %s is %s after the job stopped", id, w.State)
			}
		}
	})
	// A stopped job creates nothing more.
	j = getJob(t, f, "web")
	if err := applyCmd(t, f, &fsm.JobStep{At: at(8), Name: "web", Modify: j.Modify, Create: []string{"workload_z"}}); !errors.Is(err, fsm.ErrConflict) {
		t.Fatalf("create on a stopped job: %v", err)
	}
}

func TestJobsSurviveSnapshot(t *testing.T) {
	f := fsm.New()
	mustApply(t, f, &fsm.RegisterJob{At: at(0), Spec: jobSpec("web", "a", 1), Count: 1})
	j := getJob(t, f, "web")
	mustApply(t, f, &fsm.JobStep{At: at(1), Seq: 1, Name: "web", Modify: j.Modify, Create: []string{w0}})
	b := persist(t, f)
	g := fsm.New()
	if _, err := restore(g, b); err != nil {
		t.Fatal(err)
	}
	if a, b := string(export(t, f)), string(export(t, g)); a != b {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	if w := getWorkload(t, g, w0); w.Job != "web" || w.JobVersion == nil {
		t.Fatalf("restored instance %+v", w)
	}
}
