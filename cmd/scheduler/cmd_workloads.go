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
	exclusive := fs.Bool("exclusive", false, "never run two instances at once, even while a node is cut off (its agent stops it when its lease lapses; a replacement waits for that)")
	if code, ok := parse(fs, args, "submit --name NAME [--count N] [--env K=V] [--exclusive] -- COMMAND [ARGS...]", -1); !ok {
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
	req := api.SubmitRequest{Name: *name, Command: fs.Arg(0), Args: fs.Args()[1:], Env: env, Count: count, Exclusive: *exclusive}
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
	state := fs.String("state", "", "only workloads in this `STATE`: "+strings.Join(api.WorkloadStates, ", "))
	node := fs.String("node", "", "only workloads on this node `ID`")
	name := fs.String("name", "", "only workloads of this `NAME`")
	stale := fs.Bool("stale", false, "let any replica answer from its own state (faster, may lag)")
	if code, ok := parse(fs, args, "workloads [--state S] [--node N] [--name NAME] [--stale]", 0); !ok {
		return code
	}
	if err := checkEnum("--state", *state, api.WorkloadStates); err != nil {
		return fail("workloads", err)
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	if *node != "" {
		q.Set("node", *node)
	}
	if *name != "" {
		q.Set("name", *name)
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
	// The EXCLUSIVE column shows only when a listed workload is exclusive.
	excl := false
	for _, w := range list.Workloads {
		excl = excl || w.Exclusive
	}
	t := newTable(os.Stdout)
	if excl {
		t.row("ID", "NAME", "EXCLUSIVE", "STATE", "NODE", "PID", "ATTEMPTS", "COMMAND")
	} else {
		t.row("ID", "NAME", "STATE", "NODE", "PID", "ATTEMPTS", "COMMAND")
	}
	states := make([]string, 0, len(list.Workloads))
	for _, w := range list.Workloads {
		if excl {
			t.row(w.ID, w.Name, yesNo(w.Exclusive), w.State, dash(w.Node), pidStr(w.PID), itoa(w.Attempts), commandLine(w))
		} else {
			t.row(w.ID, w.Name, w.State, dash(w.Node), pidStr(w.PID), itoa(w.Attempts), commandLine(w))
		}
		states = append(states, w.State)
	}
	t.flush()
	fmt.Println()
	fmt.Println(summaryLine(len(list.Workloads), "workload", states, api.WorkloadStates))
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
	printWorkload(os.Stdout, w)
	return exitOK
}

// printWorkload prints one workload's fields, then its placement history.
func printWorkload(out io.Writer, w api.Workload) {
	t := newTable(out)
	t.row("ID:", w.ID)
	t.row("Name:", w.Name)
	t.row("Command:", commandLine(w))
	t.row("Exclusive:", yesNo(w.Exclusive))
	t.row("State:", w.State)
	t.row("Node:", dash(w.Node))
	t.row("PID:", pidStr(w.PID))
	t.row("Attempts:", itoa(w.Attempts))
	t.row("Generation:", strconv.FormatUint(w.Generation, 10))
	if w.ExitCode != nil {
		t.row("Exit code:", itoa(*w.ExitCode))
	}
	if w.Reason != "" {
		t.row("Reason:", w.Reason)
	}
	t.row("Created:", w.CreatedAt.Local().Format(time.RFC3339))
	t.row("Updated:", w.UpdatedAt.Local().Format(time.RFC3339))
	t.flush()
	if len(w.History) > 0 {
		fmt.Fprintln(out, "Placements:")
		for _, p := range w.History {
			fmt.Fprintf(out, "  gen %d on %s (term %d) at %s\n", p.Generation, escapeText(p.Node), p.Term, p.At.Local().Format(time.RFC3339))
		}
	}
}

func runNodes(args []string) int {
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	cf := addClientFlags(fs)
	stale := fs.Bool("stale", false, "let any replica answer from its own state (faster, may lag)")
	if code, ok := parse(fs, args, "nodes [--stale]", 0); !ok {
		return code
	}
	q := ""
	if *stale {
		q = "?stale=true"
	}
	var list api.NodeList
	c := cf.client()
	if err := c.do("GET", "/nodes"+q, nil, &list); err != nil {
		return fail("nodes", err)
	}
	if c.json {
		printJSON(list)
		return exitOK
	}
	var wl api.WorkloadList
	counts := map[string]int{}
	running := "/workloads?state=running"
	if *stale {
		running += "&stale=true"
	}
	if c.do("GET", running, nil, &wl) == nil {
		for _, w := range wl.Workloads {
			counts[w.Node]++
		}
	}
	t := newTable(os.Stdout)
	t.row("ID", "ADDRESS", "STATUS", "RUNNING", "REGISTERED")
	statuses := make([]string, 0, len(list.Nodes))
	for _, n := range list.Nodes {
		t.row(n.ID, n.Address, n.Status, itoa(counts[n.ID]), n.RegisteredAt.Local().Format(time.RFC3339))
		statuses = append(statuses, n.Status)
	}
	t.flush()
	fmt.Println()
	fmt.Println(summaryLine(len(list.Nodes), "node", statuses, api.NodeStatuses))
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
