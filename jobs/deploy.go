package jobs

import (
	"fmt"
	"sort"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// decision is what one pass of the deployment loop does to a job: a step to
// record through raft, with the number of new instances (their IDs are
// chosen when it is recorded).
type decision struct {
	step   fsm.JobStep
	create int
	// waiting is true while new instances are not yet healthy: the loop asks
	// for fresh agent reports.
	waiting bool
}

func (d *decision) empty() bool {
	s := d.step
	return d.create == 0 && len(s.Stop) == 0 && len(s.Relabel) == 0 && len(s.Counted) == 0 && s.Status == ""
}

// healthySince remembers since when this leader has seen each instance
// healthy. A new leader starts afresh: an instance then waits its
// min_healthy_time again, which is late but never wrong.
type healthySince map[string]time.Time

func instanceKey(w *api.Workload) string {
	return fmt.Sprintf("%s/%d/%d", w.ID, w.Generation, w.PID)
}

// healthyNow reports whether an instance is running and, if it has a check,
// passing it.
func healthyNow(w *api.Workload) bool {
	return w.State == api.StateRunning && (w.Spec.Check == nil || w.Health == api.HealthHealthy)
}

// Replacement backoff of instances that gave up outside a deployment.
const (
	replaceBackoff    = 5 * time.Second
	replaceBackoffMax = 5 * time.Minute
	replaceWindow     = ReplaceWindow
)

// ReplaceWindow is how long an instance that gave up paces the
// replacements of its job (garbage collection keeps it that long).
const ReplaceWindow = 10 * time.Minute

// env is what decide knows beyond the job and its instances.
type env struct {
	now  time.Time
	seen healthySince
	// leading is when this leader started: a healthy_deadline never runs
	// out sooner than that plus the deadline (a new leader watches a new
	// instance for min_healthy_time again).
	leading time.Time
	// gone reports whether a stopped instance is surely no longer running
	// (its node said so, or its lease has lapsed); nil means always.
	gone func(w *api.Workload) bool
}

// decide works out the next step for job j, whose instances (in any state)
// are insts.
func decide(j *fsm.Job, insts []*api.Workload, now time.Time, seen healthySince) decision {
	return decideIn(j, insts, env{now: now, seen: seen})
}

// decideIn is decide with the whole environment.
func decideIn(j *fsm.Job, insts []*api.Workload, e env) (d decision) {
	now, seen := e.now, e.seen
	d = decision{step: fsm.JobStep{Name: j.Name, Modify: j.Modify}}
	cur := j.Current()
	if cur == nil {
		return d
	}
	spec := cur.Spec
	var current, old []*api.Workload
	// done are the instances of a batch job's current version that ran to
	// their end: they count towards the count, and are never replaced.
	done := 0
	relabeled := map[string]bool{}
	for _, w := range insts {
		if v, ok := versionOf(w); ok && v == j.Version && w.State == api.StateCompleted {
			done++
		}
		if !fsm.IsLive(w) {
			continue
		}
		v, ok := versionOf(w)
		switch {
		case ok && v == j.Version:
			current = append(current, w)
		case sameTask(w, spec):
			d.step.Relabel = append(d.step.Relabel, w.ID)
			relabeled[w.ID] = true
			current = append(current, w)
		default:
			old = append(old, w)
		}
	}
	if j.Stopped {
		d.step.Relabel = nil
		for _, w := range append(current, old...) {
			d.stop(w, "job "+j.Name+" stopped")
		}
		return d
	}
	// An exclusive job creates nothing while an instance it stopped may
	// still run: at most one instance of it at any moment.
	holdCreate := false
	if spec.Exclusive && e.gone != nil {
		for _, w := range insts {
			if w.State == api.StateStopped && w.Node != "" && !e.gone(w) {
				holdCreate = true
			}
		}
	}
	defer func() {
		// Nor in the step that stops one: its agent has not stopped it yet.
		if (holdCreate || (spec.Exclusive && len(d.step.Stop) > 0)) && d.create > 0 {
			d.create = 0
			d.waiting = true
		}
	}()
	dep := j.Deployment
	if dep == nil || dep.Status != api.DeploymentRunning || dep.Version != j.Version {
		steady(&d, j, insts, current, old, done, now)
		return d
	}
	// Completed instances beyond the count (a scale down) count as the count.
	done = min(done, j.Count)
	u := spec.Update
	if u == nil {
		u = &api.UpdateStrategy{}
	}
	minHealthy, deadline := u.MinHealthyTime.D(), u.HealthyDeadline.D()
	if minHealthy <= 0 {
		minHealthy = api.DefaultMinHealthyTime
	}
	if deadline <= 0 {
		deadline = api.DefaultHealthyDeadline
	}
	counted := map[string]bool{}
	for _, id := range dep.Counted {
		counted[id] = true
	}
	healthy, inflight := done, 0
	var failure string
	var pending []*api.Workload // current instances not counted yet
	for _, w := range current {
		if counted[w.ID] {
			healthy++
			continue
		}
		// An attempt counted before this deployment (an instance moved in
		// place) says nothing about this version.
		if w.Attempts > 0 && !w.CreatedAt.Before(dep.StartedAt) && failure == "" {
			failure = fmt.Sprintf("instance %s of version %d failed", w.ID, j.Version)
			if w.Reason != "" {
				failure += ": " + w.Reason
			} else {
				failure += fmt.Sprintf(" (%d failed attempts)", w.Attempts)
			}
		}
		if healthyNow(w) {
			k := instanceKey(w)
			since, ok := seen[k]
			if !ok {
				since = now
				seen[k] = now
			}
			// An instance moved in place was running before the deployment:
			// healthy now, it is proven.
			if relabeled[w.ID] || now.Sub(since) >= minHealthy {
				d.step.Counted = append(d.step.Counted, w.ID)
				healthy++
				continue
			}
		} else {
			delete(seen, instanceKey(w))
		}
		// The deadline runs from the latest of its creation, the
		// deployment's start, its last placement (a move off a dead node
		// starts it afresh) and this leader's start.
		start := laterOf(w.CreatedAt, dep.StartedAt, e.leading)
		if n := len(w.History); n > 0 {
			start = laterOf(start, w.History[n-1].At)
		}
		if now.Sub(start) > deadline && failure == "" {
			failure = fmt.Sprintf("instance %s of version %d was not healthy for %s within the healthy_deadline of %s", w.ID, j.Version, minHealthy, deadline)
		}
		inflight++
		pending = append(pending, w)
	}
	for _, w := range insts {
		if v, ok := versionOf(w); ok && v == j.Version && w.State == api.StatePermanentlyFailed && !w.CreatedAt.Before(dep.StartedAt) && failure == "" {
			failure = fmt.Sprintf("instance %s of version %d %s", w.ID, j.Version, w.Reason)
		}
	}
	if failure != "" {
		d.step.Status, d.step.Description = api.DeploymentFailed, failure
		// A revert's own rollout is never reverted again: that would loop.
		if u.AutoRevert && dep.RevertOf == nil {
			if to, ok := j.LastStable(); ok {
				d.step.Revert, d.step.RevertTo = true, to
				d.step.Description += fmt.Sprintf("; reverting to version %d", to)
			}
		}
		return d
	}
	d.waiting = inflight > 0
	desired := j.Count
	par := u.Parallel()
	oldS := forStop(old)
	pendingS := forStop(pending)
	reason := fmt.Sprintf("replaced by version %d", j.Version)
	// Over the count (scaled down during the deployment): old instances
	// first, then new ones not yet healthy.
	over := len(current) + len(old) + done - desired
	if u.Order == api.OrderStartFirst {
		over = len(current) + done - desired
	}
	for ; over > 0; over-- {
		switch {
		case len(oldS) > 0 && u.Order != api.OrderStartFirst:
			d.stop(oldS[0], fmt.Sprintf("scaled down to %d", desired))
			oldS = oldS[1:]
		case len(pendingS) > 0:
			d.stop(pendingS[0], fmt.Sprintf("scaled down to %d", desired))
			pendingS = pendingS[1:]
			inflight--
		default:
			// Only healthy new instances are left over: stop the newest.
			w := newest(current, d.stopped())
			if w == nil {
				over = 0
				continue
			}
			d.stop(w, fmt.Sprintf("scaled down to %d", desired))
			healthy--
		}
	}
	live := len(current) - countIn(d.step.Stop, current) + done // current instances left
	// Instances that replace nothing (a new job, a scale up) are created at
	// once, as Nomad does; replacing old instances is what max_parallel
	// paces.
	fill := max(0, desired-live-len(oldS))
	d.create = fill
	budget := par - inflight
	if u.Order == api.OrderStartFirst {
		for budget > 0 && live+d.create < desired {
			d.create++
			budget--
		}
		keepOld := max(0, desired-healthy)
		for len(oldS) > keepOld {
			d.stop(oldS[0], reason)
			oldS = oldS[1:]
		}
	} else {
		for budget > 0 && len(oldS) > 0 {
			d.stop(oldS[0], reason)
			oldS = oldS[1:]
			if live+d.create < desired {
				d.create++
			}
			budget--
		}
	}
	if len(oldS) == 0 && d.create == 0 && live == desired && healthy >= desired && inflight == 0 {
		d.step.Status = api.DeploymentSuccessful
		d.step.Description = fmt.Sprintf("%d of %d instances healthy", healthy, desired)
		d.waiting = false
	}
	return d
}

// steady keeps a job without a deployment under way at its count: it
// creates missing instances (not after a failed deployment, and with a
// growing delay while instances keep giving up) and stops extra ones.
func steady(d *decision, j *fsm.Job, insts, current, old []*api.Workload, done int, now time.Time) {
	desired := j.Count
	total := len(current) + len(old) + done
	if total > desired {
		live := forStop(append(append([]*api.Workload(nil), old...), current...))
		for _, w := range live[:min(total-desired, len(live))] {
			d.stop(w, fmt.Sprintf("scaled down to %d", desired))
		}
		return
	}
	if total >= desired {
		return
	}
	// Instances of this version that gave up lately delay their
	// replacements: 5s, doubling with each, up to 5m.
	gaveUp := 0
	var last time.Time
	for _, w := range insts {
		if v, ok := versionOf(w); ok && v == j.Version && w.State == api.StatePermanentlyFailed && now.Sub(w.UpdatedAt) < replaceWindow {
			gaveUp++
			if w.UpdatedAt.After(last) {
				last = w.UpdatedAt
			}
		}
	}
	if gaveUp > 0 {
		wait := replaceBackoff << min(gaveUp-1, 10)
		if wait > replaceBackoffMax {
			wait = replaceBackoffMax
		}
		if now.Before(last.Add(wait)) {
			return
		}
	}
	d.create = desired - total
}

func (d *decision) stop(w *api.Workload, reason string) {
	d.step.Stop = append(d.step.Stop, fsm.InstanceStop{ID: w.ID, Reason: reason})
}

func (d *decision) stopped() map[string]bool {
	m := map[string]bool{}
	for _, s := range d.step.Stop {
		m[s.ID] = true
	}
	return m
}

func countIn(stops []fsm.InstanceStop, ws []*api.Workload) int {
	ids := map[string]bool{}
	for _, w := range ws {
		ids[w.ID] = true
	}
	n := 0
	for _, s := range stops {
		if ids[s.ID] {
			n++
		}
	}
	return n
}

// newest returns the most recently created instance not in skip.
func newest(ws []*api.Workload, skip map[string]bool) *api.Workload {
	var out *api.Workload
	for _, w := range ws {
		if skip[w.ID] {
			continue
		}
		if out == nil || w.CreatedAt.After(out.CreatedAt) || (w.CreatedAt.Equal(out.CreatedAt) && w.ID > out.ID) {
			out = w
		}
	}
	return out
}

// stopRank orders instances for stopping: the least useful first.
func stopRank(w *api.Workload) int {
	switch {
	case w.State == api.StateFailed:
		return 0
	case w.State == api.StatePending:
		return 1
	case w.Health == api.HealthUnhealthy:
		return 2
	case w.Health != api.HealthHealthy && w.Spec.Check != nil:
		return 3
	}
	return 4
}

// forStop returns ws sorted for stopping: least useful first, then newest.
func forStop(ws []*api.Workload) []*api.Workload {
	out := append([]*api.Workload(nil), ws...)
	sort.SliceStable(out, func(i, k int) bool {
		a, b := out[i], out[k]
		if ra, rb := stopRank(a), stopRank(b); ra != rb {
			return ra < rb
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	return out
}

// laterOf returns the latest of ts.
func laterOf(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
