package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// How job run follows a deployment.
var (
	// jobPollInterval is the pause between two looks at the job.
	jobPollInterval = 500 * time.Millisecond
	// deploymentAppearWait is how long run waits for the deployment of a
	// version it made (or of the revert of one) to show on the job.
	deploymentAppearWait = 10 * time.Second
)

func runJobRun(args []string) int {
	const cmd = "job run"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	vars := addVarFlag(fs)
	detach := fs.Bool("detach", false, "submit the job and return, without following its deployment")
	if code, ok := parse(fs, args, jobUsageLine("run"), 1); !ok {
		return code
	}
	spec, err := readJobFile(fs.Arg(0), vars)
	if err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	var resp api.JobRunResponse
	if err := c.do("POST", "/jobs", spec, &resp); err != nil {
		return fail(cmd, err)
	}
	if resp.Name == "" {
		resp.Name = spec.Name
	}
	if *detach && c.json {
		printJSON(resp)
		return exitOK
	}
	// With --json, stdout holds the final job alone: what happens meanwhile
	// goes to stderr.
	out := io.Writer(os.Stdout)
	if c.json {
		out = os.Stderr
	}
	fmt.Fprintln(out, runLine(resp))
	if *detach {
		if resp.Plan.Changes {
			fmt.Fprintf(out, "not following the deployment: see 'scheduler job status %s'\n", escapeText(resp.Name))
		}
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f := &follower{c: c, name: resp.Name, out: out}
	code := exitOK
	if resp.Plan.Changes {
		code = f.follow(ctx, resp)
	} else if c.json {
		if err := f.poll(ctx); err != nil {
			return fail(cmd, err)
		}
	}
	if c.json && f.polled {
		printJSON(f.job)
	}
	return code
}

// runLine says what a run did: "job web: version 2 (env.GREETING changed),
// count 3", or that the job is unchanged.
func runLine(r api.JobRunResponse) string {
	name := escapeText(r.Name)
	p := r.Plan
	switch {
	case !p.Changes:
		return fmt.Sprintf("job %s is unchanged at version %d", name, r.Version)
	case p.New:
		return fmt.Sprintf("job %s: version %d (new), count %s", name, r.Version, countChange(p))
	case p.NewVersion:
		what := changedFields(p.Diff)
		if what == "" {
			what = "new version"
		}
		return fmt.Sprintf("job %s: version %d (%s), count %s", name, r.Version, what, countChange(p))
	}
	return fmt.Sprintf("job %s: version %d (spec unchanged), count %s", name, r.Version, countChange(p))
}

// follower follows the deployments of one job, printing a line each time
// one changes.
type follower struct {
	c    *client
	name string
	out  io.Writer
	// job is the latest answer of GET /jobs/{name}; polled says there is one.
	job    api.Job
	polled bool
	last   string // the last progress line printed
}

// getCtx is a GET through the client (which follows the replicas as every
// command does) that returns at once when ctx is done.
func getCtx[T any](ctx context.Context, c *client, path string) (T, error) {
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		var v T
		err := c.do("GET", path, nil, &v)
		ch <- answer{v, err}
	}()
	select {
	case a := <-ch:
		return a.v, a.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// sleepCtx pauses for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// poll looks at the job again.
func (f *follower) poll(ctx context.Context) error {
	j, err := getCtx[api.Job](ctx, f.c, jobPath(f.name))
	if err != nil {
		return err
	}
	f.job, f.polled = j, true
	return nil
}

// next pauses, then polls.
func (f *follower) next(ctx context.Context) error {
	if err := sleepCtx(ctx, jobPollInterval); err != nil {
		return err
	}
	return f.poll(ctx)
}

// pollFailed ends the following on an error: an interrupt, or a call that
// failed (after the client's retries).
func (f *follower) pollFailed(ctx context.Context, err error, version uint64) int {
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "scheduler job run: interrupted: stopped following; the job is left as it is (version %d): see 'scheduler job status %s'\n", version, escapeText(f.name))
		return exitFail
	}
	code := fail("job run", err)
	fmt.Fprintf(os.Stderr, "  (stopped following; version %d was submitted: see 'scheduler job status %s')\n", version, escapeText(f.name))
	return code
}

// progress prints the state of a deployment if it changed since the last
// line.
func (f *follower) progress(d *api.Deployment) {
	line := "deployment of version " + u64(d.Version)
	if d.RevertOf != nil {
		line += " (revert to " + u64(*d.RevertOf) + ")"
	}
	if d.Status == api.DeploymentRunning {
		line += fmt.Sprintf(": %d/%d healthy, %d placed", d.Healthy, d.Desired, d.Placed)
	} else {
		line += fmt.Sprintf(": %s (%d/%d healthy)", escapeText(d.Status), d.Healthy, d.Desired)
		if d.Description != "" {
			line += ": " + escapeText(d.Description)
		}
	}
	if line != f.last {
		fmt.Fprintln(f.out, line)
		f.last = line
	}
}

// instances sums up the job's instances: "count 5: 5 running (5 healthy)".
func (f *follower) instances() string {
	j := f.job
	states := countsStr(j.Instances, api.WorkloadStates)
	if states == "-" {
		return fmt.Sprintf("count %d, no instances", j.Count)
	}
	if h := countsStr(j.Health, healthKinds); h != "-" {
		states += " (" + h + ")"
	}
	return fmt.Sprintf("count %d: %s", j.Count, states)
}

// follow follows the deployment of the version a run made until it ends,
// and returns the exit code: 0 when it succeeded (or there was nothing to
// roll out), 1 when it failed, was cancelled or reverted (the revert then
// followed to its own end), or could not be followed.
func (f *follower) follow(ctx context.Context, resp api.JobRunResponse) int {
	v, plan := resp.Version, resp.Plan
	newVersion := plan.New || plan.NewVersion
	appear := time.Now().Add(deploymentAppearWait)
	name := escapeText(f.name)
	for first := true; ; first = false {
		var err error
		if first {
			err = f.poll(ctx)
		} else {
			err = f.next(ctx)
		}
		if err != nil {
			return f.pollFailed(ctx, err, v)
		}
		d := f.job.Deployment
		ours := d != nil && d.Version == v
		if first && !newVersion && !(ours && !d.Terminal()) {
			// Only the count changed and no rollout of this version is
			// under way: the scheduler adds or stops instances.
			fmt.Fprintf(f.out, "job %s: no rollout to follow; %s\n", name, f.instances())
			return exitOK
		}
		switch {
		case ours:
			f.progress(d)
			if d.Terminal() {
				return f.ended(ctx, d)
			}
		case d != nil && d.Version > v, f.job.Version > v:
			return f.overtaken(ctx, v)
		case plan.Create+plan.Replace == 0:
			// Nothing to place (a count of 0, or in-place changes only):
			// the scheduler may make no deployment at all.
			fmt.Fprintf(f.out, "job %s: nothing to roll out; %s\n", name, f.instances())
			return exitOK
		case f.job.Status == api.JobStopped:
			fmt.Fprintf(f.out, "job %s was stopped before the deployment of version %d began\n", name, v)
			return exitFail
		case time.Now().After(appear):
			fmt.Fprintf(f.out, "no deployment of version %d showed within %s: see 'scheduler job status %s'\n", v, deploymentAppearWait, name)
			return exitFail
		}
	}
}

// ended returns the exit code for the end of a deployment followed, after
// following its revert when it was reverted.
func (f *follower) ended(ctx context.Context, d *api.Deployment) int {
	switch d.Status {
	case api.DeploymentSuccessful:
		return exitOK
	case api.DeploymentReverted:
		return f.followRevert(ctx, d.Version)
	case api.DeploymentCancelled:
		if f.job.Version > d.Version {
			fmt.Fprintf(f.out, "job %s: version %d replaced version %d\n", escapeText(f.name), f.job.Version, d.Version)
		}
	}
	return exitFail
}

// latest is the newest version the job shows.
func (f *follower) latest() uint64 {
	v := f.job.Version
	if d := f.job.Deployment; d != nil && d.Version > v {
		v = d.Version
	}
	return v
}

// overtaken handles a job that moved past version v before its deployment
// was seen to end: the version history tells how that deployment ended.
func (f *follower) overtaken(ctx context.Context, v uint64) int {
	vs, err := getCtx[api.JobVersions](ctx, f.c, jobPath(f.name, "/versions"))
	if err != nil {
		return f.pollFailed(ctx, err, v)
	}
	status := ""
	for _, x := range vs.Versions {
		if x.Version == v {
			status = x.Deployment
		}
	}
	now := f.latest()
	switch status {
	case api.DeploymentSuccessful:
		fmt.Fprintf(f.out, "deployment of version %d: successful; job %s has since moved to version %d\n", v, escapeText(f.name), now)
		return exitOK
	case api.DeploymentReverted:
		fmt.Fprintf(f.out, "deployment of version %d: reverted\n", v)
		return f.followRevert(ctx, v)
	case api.DeploymentFailed, api.DeploymentCancelled:
		fmt.Fprintf(f.out, "deployment of version %d: %s; job %s is at version %d\n", v, status, escapeText(f.name), now)
	default:
		fmt.Fprintf(f.out, "job %s moved to version %d before the deployment of version %d ended\n", escapeText(f.name), now, v)
	}
	return exitFail
}

// followRevert follows the rollout of the revert of version v (a new
// version with the spec of the last good one) to its end. It returns 1:
// the version run made did not stay.
func (f *follower) followRevert(ctx context.Context, v uint64) int {
	name := escapeText(f.name)
	appear := time.Now().Add(deploymentAppearWait)
	var y, x uint64
	for found := false; !found; {
		if d := f.job.Deployment; d != nil && d.Version > v && d.RevertOf != nil {
			y, x = d.Version, *d.RevertOf
			break
		}
		vs, err := getCtx[api.JobVersions](ctx, f.c, jobPath(f.name, "/versions"))
		if err != nil {
			return f.pollFailed(ctx, err, v)
		}
		for i := len(vs.Versions) - 1; i >= 0 && !found; i-- { // oldest first: the first revert after v
			if jv := vs.Versions[i]; jv.Version > v && jv.RevertOf != nil {
				y, x, found = jv.Version, *jv.RevertOf, true
			}
		}
		if found {
			break
		}
		if time.Now().After(appear) {
			fmt.Fprintf(f.out, "version %d was reverted, but no revert version showed within %s: see 'scheduler job history %s'\n", v, deploymentAppearWait, name)
			return exitFail
		}
		if err := f.next(ctx); err != nil {
			return f.pollFailed(ctx, err, v)
		}
	}
	fmt.Fprintf(f.out, "job %s went back to version %d, rolled out as version %d\n", name, x, y)
	appear = time.Now().Add(deploymentAppearWait)
	for {
		d := f.job.Deployment
		switch {
		case d != nil && d.Version == y:
			f.progress(d)
			if d.Terminal() {
				return exitFail
			}
		case d != nil && d.Version > y, f.job.Version > y:
			fmt.Fprintf(f.out, "job %s moved to version %d before the revert's deployment ended\n", name, f.latest())
			return exitFail
		case time.Now().After(appear):
			fmt.Fprintf(f.out, "no deployment of version %d showed within %s: see 'scheduler job status %s'\n", y, deploymentAppearWait, name)
			return exitFail
		}
		if err := f.next(ctx); err != nil {
			return f.pollFailed(ctx, err, y)
		}
	}
}
