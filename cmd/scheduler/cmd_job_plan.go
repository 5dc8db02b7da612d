package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/jobs/jobfile"
)

// addVarFlag adds run's and plan's repeatable --var NAME=VALUE.
func addVarFlag(fs *flag.FlagSet) envFlag {
	vars := envFlag{}
	fs.Var(vars, "var", "`NAME=VALUE`: sets var.NAME of the job file (repeatable; overrides $MO_VAR_NAME)")
	return vars
}

// readJobFile parses a job file with the variables of the environment
// ($MO_VAR_NAME) and of --var, which win. Its error is the parser's, which
// names the file, line and field.
func readJobFile(path string, flagVars envFlag) (api.JobSpec, error) {
	vars := jobfile.VarsFromEnv(os.Environ())
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, flagVars)
	spec, err := jobfile.ParseFile(path, vars)
	if err != nil {
		return api.JobSpec{}, usageError(err.Error())
	}
	return spec, nil
}

func runJobPlan(args []string) int {
	const cmd = "job plan"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	vars := addVarFlag(fs)
	if code, ok := parse(fs, args, jobUsageLine("plan"), 1); !ok {
		return code
	}
	spec, err := readJobFile(fs.Arg(0), vars)
	if err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	var plan api.JobPlan
	if err := c.do("POST", "/jobs?plan=true", spec, &plan); err != nil {
		fail(cmd, err)
		return exitUsage // plan's exit 1 means changes: any error is 2
	}
	if c.json {
		printJSON(plan)
	} else {
		printPlan(os.Stdout, plan)
	}
	if plan.Changes {
		return exitFail
	}
	return exitOK
}

// printPlan prints a plan as a diff, after Nomad's job plan:
//
//	~ job "web"
//	  ~ env.GREETING: "hello" => "bonjour"
//	  + ports: ["http"]
//
//	count: 3 => 5
//	instances: 1 to create, 3 to replace, 0 in place, 0 to stop
//	version: 1 => 2
func printPlan(out io.Writer, p api.JobPlan) {
	name := escapeText(p.Name)
	switch {
	case p.New:
		fmt.Fprintf(out, "+ job %q (new)\n", name)
	case p.Changes:
		fmt.Fprintf(out, "~ job %q\n", name)
	default:
		fmt.Fprintf(out, "  job %q (no changes)\n", name)
	}
	for _, d := range p.Diff {
		fmt.Fprintf(out, "  %s\n", diffLine(d))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "count: "+countChange(p))
	fmt.Fprintf(out, "instances: %d to create, %d to replace, %d in place, %d to stop\n", p.Create, p.Replace, p.InPlace, p.Stop)
	switch {
	case p.New:
		fmt.Fprintf(out, "version: %d (new)\n", p.Version)
	case p.NewVersion && p.Version > 0:
		fmt.Fprintf(out, "version: %d => %d\n", p.Version-1, p.Version)
	default:
		fmt.Fprintf(out, "version: %d (unchanged)\n", p.Version)
	}
}

// diffLine is one changed field: "~ env.GREETING: "hello" => "bonjour"",
// "+ ports: ["http"]", "- check: {...}".
func diffLine(d api.FieldDiff) string {
	field := escapeText(d.Field)
	switch d.Op {
	case "+":
		return fmt.Sprintf("+ %s: %s", field, escapeText(d.New))
	case "-":
		return fmt.Sprintf("- %s: %s", field, escapeText(d.Old))
	}
	return fmt.Sprintf("%s %s: %s => %s", escapeText(d.Op), field, escapeText(d.Old), escapeText(d.New))
}

// countChange is the count of a plan or run: "3 => 5" or "3", then the
// server's note on a count kept from a scale, if any.
func countChange(p api.JobPlan) string {
	s := itoa(p.CountTo)
	if p.CountFrom != p.CountTo && !p.New {
		s = fmt.Sprintf("%d => %d", p.CountFrom, p.CountTo)
	}
	if p.CountNote != "" {
		s += " (" + escapeText(p.CountNote) + ")"
	}
	return s
}

// changedFields summarizes a plan's diff for one line: "env.GREETING
// changed, ports added", at most three fields named.
func changedFields(diff []api.FieldDiff) string {
	const most = 3
	var parts []string
	seen := map[string]bool{}
	for _, d := range diff {
		if seen[d.Field] {
			continue
		}
		seen[d.Field] = true
		verb := "changed"
		switch d.Op {
		case "+":
			verb = "added"
		case "-":
			verb = "removed"
		}
		parts = append(parts, escapeText(d.Field)+" "+verb)
	}
	if len(parts) > most {
		parts = append(parts[:most], fmt.Sprintf("%d more", len(parts)-most))
	}
	return strings.Join(parts, ", ")
}
