package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// jobCommand is one subcommand of scheduler job.
type jobCommand struct {
	name    string
	args    string // what follows the name in its usage line
	summary string
	run     func(args []string) int
}

func jobCommands() []jobCommand {
	return []jobCommand{
		{"run", "[--var NAME=VALUE]... [--detach] FILE", "submit a job file and follow its deployment to the end", runJobRun},
		{"plan", "[--var NAME=VALUE]... FILE", "show what a run of the file would change (exit 0 none, 1 changes, 2 error)", runJobPlan},
		{"status", "[NAME]", "the jobs, or one job with its deployment and instances", runJobStatus},
		{"scale", "NAME N", "set a job's count (0 to 1000) without a new version", runJobScale},
		{"history", "NAME", "a job's kept versions, newest first", runJobHistory},
		{"revert", "NAME VERSION", "roll an earlier version out again, as a new version", runJobRevert},
		{"stop", "NAME", "stop every instance of a job", runJobStop},
	}
}

// jobUsageLine is the usage line of a subcommand, for its -h.
func jobUsageLine(name string) string {
	for _, c := range jobCommands() {
		if c.name == name {
			return "job " + c.name + " " + c.args
		}
	}
	return "job " + name
}

// runJob runs and operates jobs: job run|plan|status|scale|history|revert|stop.
func runJob(args []string) int {
	if len(args) == 0 {
		jobUsage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		jobUsage(os.Stderr)
		return exitOK
	case "help":
		if len(args) == 1 {
			jobUsage(os.Stdout)
			return exitOK
		}
		for _, c := range jobCommands() {
			if c.name == args[1] {
				old := os.Stderr
				os.Stderr = os.Stdout
				defer func() { os.Stderr = old }()
				return c.run([]string{"-h"})
			}
		}
		fmt.Fprintf(os.Stderr, "scheduler job help: unknown subcommand %q\n\n", escapeText(args[1]))
		jobUsage(os.Stderr)
		return exitUsage
	}
	for _, c := range jobCommands() {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "scheduler job: unknown subcommand %q\n\n", escapeText(args[0]))
	jobUsage(os.Stderr)
	return exitUsage
}

// jobUsage lists the job subcommands, the flags they share and examples.
func jobUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: scheduler job SUBCOMMAND [flags] [ARGS]\n\n")
	fmt.Fprint(w, "Runs and operates jobs: named, versioned groups of identical workloads, read\nfrom a job file (HCL, or JSON with the same schema).\n\n")
	fmt.Fprint(w, "Subcommands:\n")
	t := newTable(w)
	for _, c := range jobCommands() {
		t.row("  "+c.name+" "+c.args, c.summary)
	}
	t.flush()
	fmt.Fprint(w, "\nFlags:\n")
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	fs.SetOutput(w)
	addClientFlags(fs)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nEvery subcommand takes these; run and plan also take --var NAME=VALUE (var.NAME in the\nfile; repeatable; $MO_VAR_NAME sets it too), and run takes --detach. Run\n'scheduler job SUBCOMMAND -h' for one subcommand.\n")
	printExample(w, "job")
}

// jobName checks a job name given on the command line: a name that is not
// a DNS label cannot be a job's.
func jobName(name string) error {
	if err := api.ValidateJobName(name); err != nil {
		return usageError(err.Error())
	}
	return nil
}

// jobPath is the API path of a job, with more path after it.
func jobPath(name string, more ...string) string {
	return "/jobs/" + url.PathEscape(name) + strings.Join(more, "")
}

func runJobStatus(args []string) int {
	const cmd = "job status"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, jobUsageLine("status"), -1); !ok {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "scheduler: wrong number of arguments")
		fs.Usage()
		return exitUsage
	}
	c := cf.client()
	if fs.NArg() == 0 {
		var list api.JobList
		if err := c.do("GET", "/jobs", nil, &list); err != nil {
			return fail(cmd, err)
		}
		if c.json {
			printJSON(list)
			return exitOK
		}
		printJobs(os.Stdout, list.Jobs)
		return exitOK
	}
	name := fs.Arg(0)
	if err := jobName(name); err != nil {
		return fail(cmd, err)
	}
	var j api.Job
	if err := c.do("GET", jobPath(name), nil, &j); err != nil {
		return fail(cmd, err)
	}
	var wl api.WorkloadList
	wlErr := c.do("GET", "/workloads?"+url.Values{"job": {name}}.Encode(), nil, &wl)
	if c.json {
		// The job, with its instances as one more field.
		printJSON(struct {
			api.Job
			Workloads []api.Workload `json:"workloads"`
		}{j, wl.Workloads})
	} else {
		printJob(os.Stdout, j)
		if wlErr == nil {
			fmt.Println()
			printJobInstances(os.Stdout, wl.Workloads)
		}
	}
	if wlErr != nil {
		return fail(cmd, fmt.Errorf("listing its instances: %w", wlErr))
	}
	return exitOK
}

// printJobs prints the job table.
func printJobs(out io.Writer, jobs []api.Job) {
	if len(jobs) == 0 {
		fmt.Fprintln(out, "No jobs.")
		return
	}
	t := newTable(out)
	t.row("NAME", "STATUS", "VERSION", "COUNT", "RUNNING", "HEALTHY", "DEPLOYMENT")
	for _, j := range jobs {
		t.row(j.Name, j.Status, u64(j.Version), itoa(j.Count), itoa(j.Instances[api.StateRunning]), itoa(j.Health[api.HealthHealthy]), deploymentCell(j.Deployment))
	}
	t.flush()
}

// deploymentCell is a deployment in a table cell: its status, with the
// healthy count while it runs.
func deploymentCell(d *api.Deployment) string {
	switch {
	case d == nil:
		return "-"
	case d.Status == api.DeploymentRunning:
		return fmt.Sprintf("running (%d/%d)", d.Healthy, d.Desired)
	}
	return d.Status
}

// printJob prints one job's fields and its deployment.
func printJob(out io.Writer, j api.Job) {
	t := newTable(out)
	t.row("Name:", j.Name)
	t.row("Status:", j.Status)
	t.row("Version:", u64(j.Version))
	t.row("Count:", itoa(j.Count))
	t.row("Command:", strings.TrimSpace(j.Spec.Command+" "+strings.Join(j.Spec.Args, " ")))
	t.row("Instances:", countsStr(j.Instances, api.WorkloadStates))
	t.row("Health:", countsStr(j.Health, healthKinds))
	if d := j.Deployment; d == nil {
		t.row("Deployment:", "-")
	} else {
		t.row("Deployment:", deploymentLine(d))
		if d.Description != "" {
			t.row("", d.Description)
		}
		t.row("", "started "+d.StartedAt.Local().Format(time.RFC3339)+endedStr(d))
	}
	if !j.CreatedAt.IsZero() {
		t.row("Created:", j.CreatedAt.Local().Format(time.RFC3339))
	}
	if !j.UpdatedAt.IsZero() {
		t.row("Updated:", j.UpdatedAt.Local().Format(time.RFC3339))
	}
	t.flush()
}

func endedStr(d *api.Deployment) string {
	if d.EndedAt == nil {
		return ""
	}
	return ", ended " + d.EndedAt.Local().Format(time.RFC3339)
}

// deploymentLine describes a deployment in one line: "version 2 running:
// 1/3 healthy, 2 placed".
func deploymentLine(d *api.Deployment) string {
	s := "version " + u64(d.Version)
	if d.RevertOf != nil {
		s += " (revert to " + u64(*d.RevertOf) + ")"
	}
	return fmt.Sprintf("%s %s: %d/%d healthy, %d placed", s, d.Status, d.Healthy, d.Desired, d.Placed)
}

// healthKinds are the healths of an instance, in the order shown.
var healthKinds = []string{api.HealthHealthy, api.HealthUnhealthy, api.HealthUnknown}

// countsStr prints counts by kind, known kinds first: "3 running, 1 stopped",
// or "-" when there are none.
func countsStr(counts map[string]int, known []string) string {
	parts := countParts(counts, known)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// printJobInstances prints the table of a job's instances.
func printJobInstances(out io.Writer, list []api.Workload) {
	if len(list) == 0 {
		fmt.Fprintln(out, "No instances.")
		return
	}
	t := newTable(out)
	t.row("ID", "VERSION", "NODE", "STATE", "HEALTH", "RESTARTS")
	for _, w := range list {
		v := "-"
		if w.JobVersion != nil {
			v = u64(*w.JobVersion)
		}
		t.row(w.ID, v, dash(w.Node), w.State, healthStr(w), itoa(w.Restarts))
	}
	t.flush()
}

func runJobScale(args []string) int {
	const cmd = "job scale"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	for _, a := range args {
		// "scale web -1" would otherwise be an unknown flag -1.
		if n, err := strconv.Atoi(a); err == nil && n < 0 {
			return fail(cmd, countError(a))
		}
	}
	if code, ok := parse(fs, args, jobUsageLine("scale"), 2); !ok {
		return code
	}
	name := fs.Arg(0)
	if err := jobName(name); err != nil {
		return fail(cmd, err)
	}
	n, err := strconv.Atoi(fs.Arg(1))
	if err != nil || n < 0 || n > api.MaxJobCount {
		return fail(cmd, countError(fs.Arg(1)))
	}
	c := cf.client()
	var j api.Job
	if err := c.do("POST", jobPath(name, "/scale"), api.JobScaleRequest{Count: &n}, &j); err != nil {
		return fail(cmd, err)
	}
	if c.json {
		printJSON(j)
		return exitOK
	}
	fmt.Printf("job %s: count %d (version %d unchanged)\n", escapeText(j.Name), j.Count, j.Version)
	return exitOK
}

// countError is the usage error of a count out of bounds.
func countError(arg string) error {
	return usageError(fmt.Sprintf("the count must be a whole number from 0 to %d, got %q", api.MaxJobCount, arg))
}

func runJobHistory(args []string) int {
	const cmd = "job history"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, jobUsageLine("history"), 1); !ok {
		return code
	}
	name := fs.Arg(0)
	if err := jobName(name); err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	var vs api.JobVersions
	if err := c.do("GET", jobPath(name, "/versions"), nil, &vs); err != nil {
		return fail(cmd, err)
	}
	if c.json {
		printJSON(vs)
		return exitOK
	}
	printJobHistory(os.Stdout, vs.Versions)
	return exitOK
}

// printJobHistory prints a job's versions, newest (the current one) first.
func printJobHistory(out io.Writer, versions []api.JobVersion) {
	t := newTable(out)
	t.row("VERSION", "SUBMITTED", "DEPLOYMENT", "STABLE", "NOTE")
	for i, v := range versions {
		var notes []string
		if i == 0 {
			notes = append(notes, "current")
		}
		if v.RevertOf != nil {
			notes = append(notes, "revert of "+u64(*v.RevertOf))
		}
		t.row(u64(v.Version), v.SubmittedAt.Local().Format("2006-01-02 15:04:05"), dash(v.Deployment), yesNo(v.Stable), dash(strings.Join(notes, ", ")))
	}
	t.flush()
}

func runJobRevert(args []string) int {
	const cmd = "job revert"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, jobUsageLine("revert"), 2); !ok {
		return code
	}
	name := fs.Arg(0)
	if err := jobName(name); err != nil {
		return fail(cmd, err)
	}
	v, err := strconv.ParseUint(fs.Arg(1), 10, 64)
	if err != nil {
		return fail(cmd, usageError(fmt.Sprintf("the version must be a whole number (see 'scheduler job history %s'), got %q", name, fs.Arg(1))))
	}
	c := cf.client()
	var resp api.JobRunResponse
	if err := c.do("POST", jobPath(name, "/revert"), api.JobRevertRequest{Version: &v}, &resp); err != nil {
		return fail(cmd, err)
	}
	if c.json {
		printJSON(resp)
		return exitOK
	}
	fmt.Printf("job %s: back to version %d, rolled out as version %d, count %d\n", escapeText(resp.Name), v, resp.Version, resp.Count)
	fmt.Printf("follow it with 'scheduler job status %s'\n", escapeText(resp.Name))
	return exitOK
}

func runJobStop(args []string) int {
	const cmd = "job stop"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, jobUsageLine("stop"), 1); !ok {
		return code
	}
	name := fs.Arg(0)
	if err := jobName(name); err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	var j api.Job
	if err := c.do("DELETE", jobPath(name), nil, &j); err != nil {
		return fail(cmd, err)
	}
	if c.json {
		printJSON(j)
		return exitOK
	}
	fmt.Printf("job %s: %s at version %d; its instances are being stopped\n", escapeText(j.Name), escapeText(j.Status), j.Version)
	return exitOK
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }
