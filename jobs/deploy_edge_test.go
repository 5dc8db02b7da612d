package jobs

import (
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// A revert's own rollout that fails is not reverted again, and an attempt
// an instance had before the deployment does not fail it.
func TestRevertIsNotRevertedAgainAndOldAttemptsDoNotCount(t *testing.T) {
	w := newWorld(t, spec("a", 2, "", true))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	for _, wl := range w.insts() {
		wl.Attempts = 1 // a failed start long ago, before any of what follows
	}
	_, cmd := PlanRun(w.st, spec("broken", 2, "", true), now)
	w.apply(cmd)
	w.step(now, seen)
	for _, wl := range w.insts() {
		if wl.State == api.StatePending {
			wl.State, wl.Attempts = api.StateFailed, 1
		}
	}
	w.step(now.Add(time.Second), seen) // fails, reverts to version 0 as version 2
	j := w.job()
	if j.Version != 2 || j.Deployment.RevertOf == nil {
		t.Fatalf("no revert: version %d", j.Version)
	}
	// The revert moves the old instances in place: their old attempt does
	// not fail it.
	d := w.step(now.Add(2*time.Second), seen)
	if d.step.Status == api.DeploymentFailed {
		t.Fatalf("the revert failed on an attempt from before it: %s", d.step.Description)
	}
	// Make the revert's new instance fail: the revert ends failed, and no
	// further version is made.
	for _, wl := range w.insts() {
		if wl.State == api.StatePending {
			wl.State, wl.Attempts = api.StateFailed, 1
		}
	}
	w.step(now.Add(3*time.Second), seen)
	j = w.job()
	if j.Version != 2 || j.Deployment.Status != api.DeploymentFailed {
		t.Fatalf("after the revert failed: version %d deployment %s", j.Version, j.Deployment.Status)
	}
}

// A job scaled up after a failed deployment gets its instances.
func TestScaleAfterFailedDeploymentFills(t *testing.T) {
	w := newWorld(t, spec("a", 1, "", false))
	seen := healthySince{}
	w.step(t0, seen)
	w.step(t0.Add(2*time.Minute), seen) // past the deadline: failed
	if w.job().Deployment.Status != api.DeploymentFailed {
		t.Fatalf("deployment %s", w.job().Deployment.Status)
	}
	w.apply(&fsm.ScaleJob{At: t0.Add(3 * time.Minute), Name: "web", Count: 3})
	if d := w.step(t0.Add(3*time.Minute), seen); d.create != 2 {
		t.Fatalf("scale to 3 after a failed deployment creates %d, want 2", d.create)
	}
}

// A batch job scaled below its completed instances during a deployment
// ends it instead of waiting for ever.
func TestBatchScaleDownBelowCompletedEnds(t *testing.T) {
	s := spec("a", 3, "", false)
	s.Type, s.Check, s.Ports, s.Restart = api.TypeBatch, nil, nil, nil
	w := newWorld(t, s)
	seen := healthySince{}
	w.step(t0, seen)
	for i, wl := range w.insts() {
		if i < 2 {
			wl.State = api.StateCompleted
		}
	}
	w.apply(&fsm.ScaleJob{At: t0, Name: "web", Count: 1})
	w.step(t0.Add(time.Second), seen)
	w.step(t0.Add(2*time.Second), seen)
	if st := w.job().Deployment.Status; st != api.DeploymentSuccessful {
		t.Fatalf("deployment %s, want successful", st)
	}
	plan, _ := PlanRun(w.st, func() api.JobSpec { s2 := s; n := 5; s2.Count = &n; return s2 }(), t0)
	if plan.Create != 3 {
		t.Fatalf("plan to 5 with 2 completed: create %d, want 3", plan.Create)
	}
}

// A run of a file whose count equals the current count (after a scale)
// records that count, so that a later scale is kept by the next run.
func TestRunRecordsTheFilesCount(t *testing.T) {
	w := newWorld(t, spec("a", 3, "", false))
	w.apply(&fsm.ScaleJob{At: t0, Name: "web", Count: 5})
	plan, cmd := PlanRun(w.st, spec("a", 5, "", false), t0)
	if plan.Changes || cmd == nil {
		t.Fatalf("file count 5 at count 5: changes %v, command %v", plan.Changes, cmd)
	}
	w.apply(cmd)
	w.apply(&fsm.ScaleJob{At: t0, Name: "web", Count: 2})
	if plan, _ := PlanRun(w.st, spec("a", 5, "", false), t0); plan.Changes || plan.CountTo != 2 {
		t.Fatalf("the same file again after a scale to 2: %+v", plan)
	}
	if _, cmd := PlanRun(w.st, spec("a", 5, "", false), t0); cmd != nil {
		t.Fatalf("nothing to record, but a command: %+v", cmd)
	}
}

// An exclusive job creates no replacement while a stopped instance may
// still run.
func TestExclusiveJobWaitsForTheStoppedInstance(t *testing.T) {
	s := spec("a", 1, "", false)
	s.Exclusive = true
	w := newWorld(t, s)
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	s2 := spec("b", 1, "", false)
	s2.Exclusive = true
	_, cmd := PlanRun(w.st, s2, now)
	w.apply(cmd)
	gone := false
	e := env{now: now, seen: seen, gone: func(*api.Workload) bool { return gone }}
	d := decideIn(w.job(), w.insts(), e)
	if len(d.step.Stop) != 1 || d.create != 0 || !d.waiting {
		t.Fatalf("first step: stop %v create %d waiting %v", d.step.Stop, d.create, d.waiting)
	}
	st := d.step
	st.At = now
	w.apply(&st)
	if d := decideIn(w.job(), w.insts(), e); d.create != 0 {
		t.Fatalf("created while the old instance may run")
	}
	gone = true
	if d := decideIn(w.job(), w.insts(), e); d.create != 1 {
		t.Fatalf("not created once the old instance is gone: %d", d.create)
	}
	bad := s2
	bad.Update = &api.UpdateStrategy{Order: api.OrderStartFirst}
	if errs := bad.Validate(); len(errs) == 0 {
		t.Fatal("exclusive with start_first accepted")
	}
}

// Garbage collection keeps a running batch job's completed instances of its
// current version (they count towards its count).
func TestGCKeepsCompletedInstancesOfTheCurrentVersion(t *testing.T) {
	s := spec("a", 1, "", false)
	s.Type, s.Check, s.Ports, s.Restart = api.TypeBatch, nil, nil, nil
	w := newWorld(t, s)
	w.step(t0, healthySince{})
	wl := w.insts()[0]
	wl.State = api.StateCompleted
	if w.st.Collectable(wl, t0.Add(time.Hour)) {
		t.Fatal("a completed instance of the current version is collectable")
	}
	w.apply(&fsm.StopJob{At: t0, Name: "web"})
	if !w.st.Collectable(wl, t0.Add(time.Hour)) {
		t.Fatal("a completed instance of a stopped job is not collectable")
	}
}
