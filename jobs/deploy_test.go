package jobs

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func spec(greeting string, count int, order string, autoRevert bool) api.JobSpec {
	par := 1
	s := api.JobSpec{Name: "web", Count: &count, Command: "srv", Env: map[string]string{"G": greeting},
		Spec: api.Spec{Ports: []string{"http"}, Check: &api.Check{Type: api.CheckHTTP, Port: "http"}},
		Update: &api.UpdateStrategy{MaxParallel: &par, MinHealthyTime: api.Duration(2 * time.Second),
			HealthyDeadline: api.Duration(time.Minute), Order: order, AutoRevert: autoRevert}}
	s.Normalize()
	return s
}

// world is a job and its instances in an FSM, changed by the steps decide
// returns as the leader would record them.
type world struct {
	t   *testing.T
	f   *fsm.FSM
	st  *fsm.State // the FSM's own state: tests change instances in it directly
	seq int
}

func newWorld(t *testing.T, s api.JobSpec) *world {
	w := &world{t: t, f: fsm.New()}
	w.f.Read(func(st *fsm.State) { w.st = st })
	plan, cmd := PlanRun(w.st, s, t0)
	if !plan.New || !plan.Changes {
		t.Fatalf("plan of a new job: %+v", plan)
	}
	w.apply(cmd)
	return w
}

func (w *world) apply(c fsm.Command) {
	w.t.Helper()
	if err := w.f.ApplyCommand(c); err != nil {
		w.t.Fatalf("apply %T: %v", c, err)
	}
}

func (w *world) job() *fsm.Job { return w.st.Jobs["web"] }

func (w *world) insts() []*api.Workload {
	var out []*api.Workload
	for _, id := range sortedIDs(w.st) {
		if wl := w.st.Workloads[id]; wl.Job == "web" {
			out = append(out, wl)
		}
	}
	return out
}

func sortedIDs(s *fsm.State) []string { return slices.Sorted(maps.Keys(s.Workloads)) }

// step decides at now and records the step; it returns the decision.
func (w *world) step(now time.Time, seen healthySince) decision {
	w.t.Helper()
	d := decide(w.job(), w.insts(), now, seen)
	if d.empty() {
		return d
	}
	st := d.step
	st.At = now
	for range d.create {
		w.seq++
		st.Create = append(st.Create, fmt.Sprintf("workload_1_%03d", w.seq))
	}
	w.apply(&st)
	return d
}

// runHealthy makes every pending instance running and healthy.
func (w *world) runHealthy(now time.Time) {
	for _, wl := range w.insts() {
		if wl.State == api.StatePending {
			wl.State, wl.Health, wl.Node, wl.PID, wl.UpdatedAt = api.StateRunning, api.HealthHealthy, "n1", 100+w.seq, now
		}
	}
}

func (w *world) count(state string, version uint64) int {
	n := 0
	for _, wl := range w.insts() {
		if wl.State == state && wl.JobVersion != nil && *wl.JobVersion == version {
			n++
		}
	}
	return n
}

func TestNewJobCreatesEveryInstanceAtOnce(t *testing.T) {
	w := newWorld(t, spec("a", 3, "", false))
	seen := healthySince{}
	if d := w.step(t0, seen); d.create != 3 {
		t.Fatalf("first step creates %d, want 3", d.create)
	}
	w.runHealthy(t0.Add(time.Second))
	w.step(t0.Add(time.Second), seen) // first seen healthy
	if d := w.job().Deployment; d.Status != api.DeploymentRunning || d.Healthy != 0 {
		t.Fatalf("counted before min_healthy_time: %+v", d)
	}
	w.step(t0.Add(3*time.Second), seen)
	if d := w.job().Deployment; d.Status != api.DeploymentSuccessful || d.Healthy != 3 {
		t.Fatalf("after min_healthy_time: %+v", d)
	}
}

// rollOut runs a deployment step by step, every instance healthy as soon as
// it starts, and returns the fewest healthy instances seen between steps.
func rollOut(t *testing.T, w *world, now time.Time, seen healthySince) (int, time.Time) {
	least := 1 << 30
	for i := 0; i < 50 && w.job().Deployment.Status == api.DeploymentRunning; i++ {
		w.step(now, seen)
		healthy := 0
		for _, wl := range w.insts() {
			if healthyNow(wl) {
				healthy++
			}
		}
		least = min(least, healthy)
		w.runHealthy(now)
		now = now.Add(time.Second)
	}
	return least, now
}

func TestRollingUpdateStopFirstKeepsCountMinusParallel(t *testing.T) {
	w := newWorld(t, spec("a", 3, "", false))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	plan, cmd := PlanRun(w.st, spec("b", 3, "", false), now)
	if !plan.NewVersion || plan.Replace != 3 || plan.Version != 1 || len(plan.Diff) != 1 || plan.Diff[0].Field != "env.G" {
		t.Fatalf("plan: %+v", plan)
	}
	w.apply(cmd)
	d := w.step(now, seen)
	if d.create != 1 || len(d.step.Stop) != 1 {
		t.Fatalf("first update step: create %d stop %v", d.create, d.step.Stop)
	}
	if d := w.step(now, seen); !d.empty() {
		t.Fatalf("a second replacement started before the first is healthy: %+v", d.step)
	}
	least, _ := rollOut(t, w, now, seen)
	if least < 2 {
		t.Fatalf("fewest healthy %d, want at least count - max_parallel = 2", least)
	}
	if st := w.job().Deployment.Status; st != api.DeploymentSuccessful {
		t.Fatalf("deployment %s", st)
	}
	if n := w.count(api.StateRunning, 1); n != 3 || w.count(api.StateRunning, 0) != 0 {
		t.Fatalf("running of version 1: %d, of version 0: %d", n, w.count(api.StateRunning, 0))
	}
}

func TestRollingUpdateStartFirstNeverBelowCount(t *testing.T) {
	w := newWorld(t, spec("a", 3, api.OrderStartFirst, false))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	_, cmd := PlanRun(w.st, spec("b", 3, api.OrderStartFirst, false), now)
	w.apply(cmd)
	d := w.step(now, seen)
	if d.create != 1 || len(d.step.Stop) != 0 {
		t.Fatalf("start_first first step: create %d stop %v", d.create, d.step.Stop)
	}
	least, _ := rollOut(t, w, now, seen)
	if least < 3 {
		t.Fatalf("fewest healthy %d, want 3 with start_first", least)
	}
	if n := w.count(api.StateRunning, 1); n != 3 || w.job().Deployment.Status != api.DeploymentSuccessful {
		t.Fatalf("running of version 1: %d, deployment %s", n, w.job().Deployment.Status)
	}
}

func TestFailedInstanceRevertsToLastStable(t *testing.T) {
	w := newWorld(t, spec("a", 3, "", true))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	_, cmd := PlanRun(w.st, spec("broken", 3, "", true), now)
	w.apply(cmd)
	w.step(now, seen)
	for _, wl := range w.insts() {
		if wl.State == api.StatePending {
			wl.State, wl.Attempts, wl.Reason = api.StateFailed, 1, "exited with code 3 on n1"
		}
	}
	d := w.step(now.Add(time.Second), seen)
	if d.step.Status != api.DeploymentFailed || !d.step.Revert || d.step.RevertTo != 0 {
		t.Fatalf("step after a failed instance: %+v", d.step)
	}
	j := w.job()
	if j.Version != 2 || j.Deployment.RevertOf == nil || *j.Deployment.RevertOf != 0 {
		t.Fatalf("after the revert: version %d deployment %+v", j.Version, j.Deployment)
	}
	// The revert keeps the two old instances (same spec: moved in place,
	// counted at once) and replaces the broken one.
	d = w.step(now.Add(2*time.Second), seen)
	if len(d.step.Relabel) != 2 || len(d.step.Counted) != 2 || len(d.step.Stop) != 1 || d.create != 1 {
		t.Fatalf("revert step: relabel %v counted %v stop %v create %d", d.step.Relabel, d.step.Counted, d.step.Stop, d.create)
	}
	rollOut(t, w, now.Add(3*time.Second), seen)
	if st := w.job().Deployment.Status; st != api.DeploymentSuccessful || w.count(api.StateRunning, 2) != 3 {
		t.Fatalf("revert deployment %s, running of version 2: %d", st, w.count(api.StateRunning, 2))
	}
}

func TestHealthyDeadlineFailsDeployment(t *testing.T) {
	w := newWorld(t, spec("a", 1, "", false))
	seen := healthySince{}
	w.step(t0, seen)
	d := w.step(t0.Add(2*time.Minute), seen)
	if d.step.Status != api.DeploymentFailed || d.step.Revert {
		t.Fatalf("past the deadline: %+v", d.step)
	}
	// No auto_revert and no stable version: the failed job is left alone.
	if d := w.step(t0.Add(3*time.Minute), seen); !d.empty() {
		t.Fatalf("step after a failed deployment: %+v", d.step)
	}
}

func TestUpdateStrategyChangeMovesInPlace(t *testing.T) {
	w := newWorld(t, spec("a", 2, "", false))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	s := spec("a", 2, "", false)
	*s.Update.MaxParallel = 2
	plan, cmd := PlanRun(w.st, s, now)
	if !plan.NewVersion || plan.InPlace != 2 || plan.Replace != 0 {
		t.Fatalf("plan: %+v", plan)
	}
	w.apply(cmd)
	d := w.step(now, seen)
	if len(d.step.Relabel) != 2 || d.create != 0 || len(d.step.Stop) != 0 || d.step.Status != api.DeploymentSuccessful {
		t.Fatalf("in-place step: %+v create %d", d.step, d.create)
	}
}

func TestScaleAndRunOfTheSameFile(t *testing.T) {
	w := newWorld(t, spec("a", 3, "", false))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	w.apply(&fsm.ScaleJob{At: now, Name: "web", Count: 5})
	if d := w.step(now, seen); d.create != 2 {
		t.Fatalf("scale up creates %d, want 2", d.create)
	}
	w.runHealthy(now)
	w.apply(&fsm.ScaleJob{At: now, Name: "web", Count: 2})
	if d := w.step(now, seen); len(d.step.Stop) != 3 {
		t.Fatalf("scale down stops %d, want 3", len(d.step.Stop))
	}
	plan, _ := PlanRun(w.st, spec("a", 3, "", false), now)
	if plan.Changes || plan.CountTo != 2 || plan.CountNote == "" {
		t.Fatalf("run of the same file after a scale: %+v", plan)
	}
	plan, _ = PlanRun(w.st, spec("a", 4, "", false), now)
	if !plan.Changes || plan.CountTo != 4 || plan.NewVersion || plan.Create != 2 {
		t.Fatalf("run with a new count in the file: %+v", plan)
	}
}

func TestReplacementsOfInstancesThatGaveUpBackOff(t *testing.T) {
	w := newWorld(t, spec("a", 1, "", false))
	seen := healthySince{}
	_, now := rollOut(t, w, t0, seen)
	for _, wl := range w.insts() {
		wl.State, wl.UpdatedAt = api.StatePermanentlyFailed, now
	}
	if d := w.step(now.Add(time.Second), seen); d.create != 0 {
		t.Fatalf("replaced at once after giving up")
	}
	if d := w.step(now.Add(6*time.Second), seen); d.create != 1 {
		t.Fatalf("not replaced after the backoff: create %d", d.create)
	}
}

func TestStoppedJobStopsWhatIsLeft(t *testing.T) {
	w := newWorld(t, spec("a", 2, "", false))
	seen := healthySince{}
	w.step(t0, seen)
	w.job().Stopped = true
	if d := decide(w.job(), w.insts(), t0, seen); len(d.step.Stop) != 2 || d.create != 0 {
		t.Fatalf("stopped job: %+v", d.step)
	}
}

func TestPlanRevert(t *testing.T) {
	w := newWorld(t, spec("a", 1, "", false))
	if _, err := PlanRevert(w.job(), 0, t0); err == nil {
		t.Fatal("revert to the current version accepted")
	}
	if _, err := PlanRevert(w.job(), 9, t0); err == nil {
		t.Fatal("revert to an unknown version accepted")
	}
}

func TestCompletedBatchInstancesAreNotReplaced(t *testing.T) {
	s := spec("a", 2, "", false)
	s.Type, s.Check, s.Ports = api.TypeBatch, nil, nil
	s.Restart = nil
	w := newWorld(t, s)
	seen := healthySince{}
	if d := w.step(t0, seen); d.create != 2 {
		t.Fatalf("creates %d, want 2", d.create)
	}
	for _, wl := range w.insts() {
		wl.State = api.StateCompleted
	}
	d := w.step(t0.Add(time.Second), seen)
	if d.create != 0 || len(d.step.Stop) != 0 || d.step.Status != api.DeploymentSuccessful {
		t.Fatalf("after both completed: create %d stop %v status %q", d.create, d.step.Stop, d.step.Status)
	}
	if d := w.step(t0.Add(2*time.Second), seen); !d.empty() {
		t.Fatalf("completed batch instances replaced: %+v create %d", d.step, d.create)
	}
}
