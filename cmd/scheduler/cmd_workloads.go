package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// envFlag collects repeated --env K=V flags.
type envFlag map[string]string

func (e envFlag) String() string { return "" }
func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", v)
	}
	e[k] = val
	return nil
}

func runSubmit(args []string) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	cf := addClientFlags(fs)
	name := fs.String("name", "", "workload name (required)")
	count := fs.Int("count", 1, "number of instances (1-1000)")
	env := envFlag{}
	fs.Var(env, "env", "environment variable K=V for the workload (repeatable)")
	if code, ok := parse(fs, args, "submit --name NAME [--count N] [--env K=V] -- COMMAND [ARGS...]", -1); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "scheduler submit: a command is required after --")
		return exitUsage
	}
	if *name == "" {
		fmt.Fprintln(os.Stderr, "scheduler submit: --name is required")
		return exitUsage
	}
	if *count < 1 || *count > 1000 {
		fmt.Fprintf(os.Stderr, "scheduler submit: --count must be between 1 and 1000, got %d\n", *count)
		return exitUsage
	}
	req := api.SubmitRequest{Name: *name, Command: fs.Arg(0), Args: fs.Args()[1:], Env: env, Count: count}
	var resp api.SubmitResponse
	c := cf.client()
	if err := c.do("POST", "/workloads", req, &resp); err != nil {
		return fail("submit", err)
	}
	if c.json {
		printJSON(resp)
		return exitOK
	}
	for _, id := range resp.IDs {
		fmt.Println(id)
	}
	return exitOK
}

func runWorkloads(args []string) int {
	fs := flag.NewFlagSet("workloads", flag.ContinueOnError)
	cf := addClientFlags(fs)
	state := fs.String("state", "", "only workloads in this state")
	node := fs.String("node", "", "only workloads on this node")
	stale := fs.Bool("stale", false, "let any replica answer from its own state (faster, may lag)")
	if code, ok := parse(fs, args, "workloads [--state S] [--node N]", 0); !ok {
		return code
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	if *node != "" {
		q.Set("node", *node)
	}
	if *stale {
		q.Set("stale", "true")
	}
	var list api.WorkloadList
	c := cf.client()
	if err := c.do("GET", "/workloads?"+q.Encode(), nil, &list); err != nil {
		return fail("workloads", err)
	}
	if c.json {
		printJSON(list)
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tNODE\tPID\tATTEMPTS\tCOMMAND")
	for _, w := range list.Workloads {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", w.ID, w.Name, w.State, dash(w.Node), pidStr(w.PID), w.Attempts, commandLine(w))
	}
	tw.Flush()
	return exitOK
}

func runWorkload(args []string) int {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "workload ID", 1); !ok {
		return code
	}
	var w api.Workload
	c := cf.client()
	if err := c.do("GET", "/workloads/"+url.PathEscape(fs.Arg(0)), nil, &w); err != nil {
		return fail("workload", err)
	}
	if c.json {
		printJSON(w)
		return exitOK
	}
	printWorkload(w)
	return exitOK
}

func printWorkload(w api.Workload) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", w.ID)
	fmt.Fprintf(tw, "Name:\t%s\n", w.Name)
	fmt.Fprintf(tw, "Command:\t%s\n", commandLine(w))
	fmt.Fprintf(tw, "State:\t%s\n", w.State)
	fmt.Fprintf(tw, "Node:\t%s\n", dash(w.Node))
	fmt.Fprintf(tw, "PID:\t%s\n", pidStr(w.PID))
	fmt.Fprintf(tw, "Attempts:\t%d\n", w.Attempts)
	fmt.Fprintf(tw, "Generation:\t%d\n", w.Generation)
	if w.ExitCode != nil {
		fmt.Fprintf(tw, "Exit code:\t%d\n", *w.ExitCode)
	}
	if w.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", w.Reason)
	}
	fmt.Fprintf(tw, "Created:\t%s\n", w.CreatedAt.Local().Format(time.RFC3339))
	fmt.Fprintf(tw, "Updated:\t%s\n", w.UpdatedAt.Local().Format(time.RFC3339))
	tw.Flush()
	if len(w.History) > 0 {
		fmt.Println("Placements:")
		for _, p := range w.History {
			fmt.Printf("  gen %d on %s (term %d) at %s\n", p.Generation, p.Node, p.Term, p.At.Local().Format(time.RFC3339))
		}
	}
}

func runStop(args []string) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "stop ID", 1); !ok {
		return code
	}
	var w api.Workload
	c := cf.client()
	if err := c.do("DELETE", "/workloads/"+url.PathEscape(fs.Arg(0)), nil, &w); err != nil {
		return fail("stop", err)
	}
	if c.json {
		printJSON(w)
		return exitOK
	}
	fmt.Printf("%s stopped\n", w.ID)
	return exitOK
}

func runLogs(args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	cf := addClientFlags(fs)
	tail := fs.Int("tail", 100, "number of lines from the end")
	if code, ok := parse(fs, args, "logs ID [--tail N]", 1); !ok {
		return code
	}
	if *tail < 1 || *tail > 10000 {
		fmt.Fprintf(os.Stderr, "scheduler logs: --tail must be between 1 and 10000, got %d\n", *tail)
		return exitUsage
	}
	var b []byte
	if err := cf.client().do("GET", "/workloads/"+url.PathEscape(fs.Arg(0))+"/logs?tail="+itoa(*tail), nil, &b); err != nil {
		return fail("logs", err)
	}
	os.Stdout.Write(b)
	return exitOK
}

func runNodes(args []string) int {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "nodes", 0); !ok {
		return code
	}
	var list api.NodeList
	c := cf.client()
	if err := c.do("GET", "/nodes", nil, &list); err != nil {
		return fail("nodes", err)
	}
	if c.json {
		printJSON(list)
		return exitOK
	}
	var wl api.WorkloadList
	counts := map[string]int{}
	if c.do("GET", "/workloads?state=running", nil, &wl) == nil {
		for _, w := range wl.Workloads {
			counts[w.Node]++
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATUS\tRUNNING\tREGISTERED")
	for _, n := range list.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n.ID, n.Address, n.Status, counts[n.ID], n.RegisteredAt.Local().Format(time.RFC3339))
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pidStr(p int) string {
	if p == 0 {
		return "-"
	}
	return itoa(p)
}

func commandLine(w api.Workload) string {
	return strings.TrimSpace(w.Command + " " + strings.Join(w.Args, " "))
}
