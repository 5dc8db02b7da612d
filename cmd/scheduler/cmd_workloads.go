package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
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

// optDuration is a duration flag that is sent only when given.
type optDuration struct{ d *api.Duration }

func (o *optDuration) String() string {
	if o.d == nil {
		return ""
	}
	return o.d.D().String()
}
func (o *optDuration) Set(v string) error {
	var d api.Duration
	if err := d.UnmarshalJSON([]byte(strconv.Quote(v))); err != nil {
		return err
	}
	o.d = &d
	return nil
}

// optInt is an integer flag that is sent only when given.
type optInt struct{ n *int }

func (o *optInt) String() string {
	if o.n == nil {
		return ""
	}
	return strconv.Itoa(*o.n)
}
func (o *optInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("want a whole number")
	}
	o.n = &n
	return nil
}

// specFlags are submit's flags for the lifecycle spec.
type specFlags struct {
	typ                      string
	ports                    listFlag
	cpu, memory, pids        int
	restarts                 optInt
	restartDelay, restartMax optDuration
	check, checkPort, path   string
	checkCmd                 string
	interval, timeout, grace optDuration
	failures                 int
}

func addSpecFlags(fs *flag.FlagSet) *specFlags {
	f := &specFlags{}
	fs.StringVar(&f.typ, "type", "", "`service` (runs until stopped; the default) or batch (exit 0 is completed, never restarted)")
	fs.Var(&f.ports, "port", "a port `LABEL` (a-z, 0-9, _): the agent picks a free port and passes it as MO_PORT_<LABEL> (repeatable, or comma-separated)")
	fs.IntVar(&f.cpu, "cpu-millicores", 0, "CPU the workload needs, in `MILLICORES` (1000 a core): placed only where that much is free")
	fs.IntVar(&f.memory, "memory-mb", 0, "memory the workload needs, in `MIB`: placed only where that much is free")
	fs.IntVar(&f.pids, "pids", 0, "most processes the workload may run at once, `N`")
	fs.Var(&f.restarts, "restart-attempts", "`N` restarts in place before the leader moves it elsewhere (default 0, or 3 with a check)")
	fs.Var(&f.restartDelay, "restart-delay", "`DURATION` before the first restart in place, doubling for each next one (default 1s)")
	fs.Var(&f.restartMax, "restart-max-delay", "longest `DURATION` between restarts in place (default 1m)")
	fs.StringVar(&f.check, "check", "", "health check `TYPE`: http, tcp or exec")
	fs.StringVar(&f.checkPort, "check-port", "", "port `LABEL` an http or tcp check probes (default the only --port)")
	fs.StringVar(&f.path, "check-path", "", "`PATH` an http check gets (default /; 2xx and 3xx are healthy)")
	fs.StringVar(&f.checkCmd, "check-command", "", "`COMMAND` an exec check runs (exit 0 is healthy): split on spaces, or a JSON array such as '[\"sh\",\"-c\",\"curl -f localhost:8080\"]' for arguments with spaces")
	fs.Var(&f.interval, "check-interval", "`DURATION` between checks (default 5s)")
	fs.Var(&f.timeout, "check-timeout", "`DURATION` a check may take (default 1s)")
	fs.IntVar(&f.failures, "check-failures", 0, "`N` failed checks in a row make it unhealthy and restarted (default 3)")
	fs.Var(&f.grace, "check-grace", "`DURATION` after a start during which failed checks do not count (default 10s)")
	return f
}

// spec builds the spec the flags ask for; the scheduler validates it.
func (f *specFlags) spec() api.Spec {
	s := api.Spec{Type: f.typ, Ports: f.ports}
	if f.cpu != 0 || f.memory != 0 || f.pids != 0 {
		s.Resources = &api.Resources{CPUMillicores: f.cpu, MemoryMB: f.memory, Pids: f.pids}
	}
	if f.restarts.n != nil || f.restartDelay.d != nil || f.restartMax.d != nil {
		s.Restart = &api.RestartPolicy{}
		switch {
		case f.restarts.n != nil:
			s.Restart.Attempts = *f.restarts.n
		case f.check != "":
			s.Restart.Attempts = api.DefaultCheckedRestarts
		}
		if f.restartDelay.d != nil {
			s.Restart.Delay = *f.restartDelay.d
		}
		if f.restartMax.d != nil {
			s.Restart.MaxDelay = *f.restartMax.d
		}
	}
	if f.check != "" {
		c := &api.Check{Type: f.check, Port: f.checkPort, Path: f.path, Failures: f.failures}
		if f.checkCmd != "" {
			c.Command = splitCheckCommand(f.checkCmd)
		}
		if c.Port == "" && len(f.ports) == 1 && f.check != api.CheckExec {
			c.Port = f.ports[0]
		}
		for _, d := range []struct {
			from *optDuration
			to   *api.Duration
		}{{&f.interval, &c.Interval}, {&f.timeout, &c.Timeout}, {&f.grace, &c.Grace}} {
			if d.from.d != nil {
				*d.to = *d.from.d
			}
		}
		s.Check = c
	}
	return s
}

// checkOnlyFlags are the check's flags, which need --check.
var checkOnlyFlags = []string{"check-port", "check-path", "check-command", "check-interval", "check-timeout", "check-failures", "check-grace"}

func runSubmit(args []string) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	cf := addClientFlags(fs)
	name := fs.String("name", "", "workload name (required)")
	count := fs.Int("count", 1, "number of instances (1-1000)")
	env := envFlag{}
	fs.Var(env, "env", "environment variable K=V for the workload (repeatable)")
	exclusive := fs.Bool("exclusive", false, "never run two instances at once, even while a node is cut off (its agent stops it when its lease lapses; a replacement waits for that)")
	sf := addSpecFlags(fs)
	if code, ok := parse(fs, args, "submit --name NAME [--count N] [--env K=V] [--exclusive] [--type batch] [--port LABEL] [--check TYPE ...] [--cpu-millicores M] [--memory-mb MB] -- COMMAND [ARGS...]", -1); !ok {
		return code
	}
	if sf.check == "" {
		var stray []string
		fs.Visit(func(fl *flag.Flag) {
			if slices.Contains(checkOnlyFlags, fl.Name) {
				stray = append(stray, "--"+fl.Name)
			}
		})
		if len(stray) > 0 {
			fmt.Fprintf(os.Stderr, "scheduler submit: %s need --check http|tcp|exec\n", strings.Join(stray, ", "))
			return exitUsage
		}
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
	req := api.SubmitRequest{Name: *name, Command: fs.Arg(0), Args: fs.Args()[1:], Env: env, Count: count, Exclusive: *exclusive, Spec: sf.spec()}
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
	printWorkloads(os.Stdout, list.Workloads)
	return exitOK
}

// printWorkloads prints the workload table and its summary line. The
// EXCLUSIVE column shows only when a listed workload is exclusive.
func printWorkloads(out io.Writer, list []api.Workload) {
	excl := false
	for _, w := range list {
		excl = excl || w.Exclusive
	}
	t := newTable(out)
	if excl {
		t.row("ID", "NAME", "EXCLUSIVE", "STATE", "HEALTH", "NODE", "PID", "ATTEMPTS", "COMMAND")
	} else {
		t.row("ID", "NAME", "STATE", "HEALTH", "NODE", "PID", "ATTEMPTS", "COMMAND")
	}
	states := make([]string, 0, len(list))
	for _, w := range list {
		if excl {
			t.row(w.ID, w.Name, yesNo(w.Exclusive), w.State, healthStr(w), dash(w.Node), pidStr(w.PID), itoa(w.Attempts), commandLine(w))
		} else {
			t.row(w.ID, w.Name, w.State, healthStr(w), dash(w.Node), pidStr(w.PID), itoa(w.Attempts), commandLine(w))
		}
		states = append(states, w.State)
	}
	t.flush()
	fmt.Fprintln(out)
	fmt.Fprintln(out, summaryLine(len(list), "workload", states, api.WorkloadStates))
}

// healthStr is a workload's health as shown: unknown when not reported.
func healthStr(w api.Workload) string {
	if w.Health == "" {
		return api.HealthUnknown
	}
	return w.Health
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
	// Ports are shown at the address the node advertises.
	var nodeAddr string
	if len(w.Ports) > 0 && w.Node != "" {
		var nodes api.NodeList
		if c.do("GET", "/nodes", nil, &nodes) == nil {
			for _, n := range nodes.Nodes {
				if n.ID == w.Node {
					nodeAddr = n.Address
				}
			}
		}
	}
	printWorkload(os.Stdout, w, nodeAddr)
	return exitOK
}

// printWorkload prints one workload's fields, then its placement history.
// nodeAddr is the advertised address of its node (empty if unknown), whose
// host its ports are shown at.
func printWorkload(out io.Writer, w api.Workload, nodeAddr string) {
	typ := w.Spec.Type
	if typ == "" {
		typ = api.TypeService
	}
	t := newTable(out)
	t.row("ID:", w.ID)
	t.row("Name:", w.Name)
	t.row("Type:", typ)
	t.row("Command:", commandLine(w))
	t.row("Exclusive:", yesNo(w.Exclusive))
	t.row("State:", w.State)
	t.row("Health:", healthStr(w))
	t.row("Node:", dash(w.Node))
	t.row("PID:", pidStr(w.PID))
	t.row("Restarts:", itoa(w.Restarts))
	t.row("Attempts:", itoa(w.Attempts))
	t.row("Generation:", strconv.FormatUint(w.Generation, 10))
	portRows(t, w, nodeAddr)
	t.row("Resources:", resourcesStr(w.Spec.Resources))
	t.row("Check:", checkStr(w.Spec.Check))
	if r := w.Spec.Restart; r != nil {
		t.row("Restart:", restartStr(r))
	}
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
	t.row("ID", "ADDRESS", "STATUS", "RUNNING", "REGISTERED", "ELIGIBLE", "DRAINING")
	statuses := make([]string, 0, len(list.Nodes))
	for _, n := range list.Nodes {
		t.row(n.ID, n.Address, n.Status, itoa(counts[n.ID]), n.RegisteredAt.Local().Format(time.RFC3339), yesNo(n.Eligible), yesNo(n.Draining))
		statuses = append(statuses, n.Status)
	}
	t.flush()
	fmt.Println()
	fmt.Println(summaryLine(len(list.Nodes), "node", statuses, api.NodeStatuses))
	return exitOK
}

// portRows adds a row per port label: "http: 127.0.0.1:20001" once the
// agent picked the port, "http: -" before.
func portRows(t *table, w api.Workload, nodeAddr string) {
	labels := slices.Clone(w.Spec.Ports)
	for _, l := range slices.Sorted(maps.Keys(w.Ports)) {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		t.row("Ports:", "-")
		return
	}
	host := nodeAddr
	if h, _, err := net.SplitHostPort(nodeAddr); err == nil {
		host = h
	}
	for i, l := range labels {
		where := "-"
		if p, ok := w.Ports[l]; ok {
			where = strconv.Itoa(p)
			if host != "" {
				where = net.JoinHostPort(host, where)
			}
		}
		head := ""
		if i == 0 {
			head = "Ports:"
		}
		t.row(head, l+": "+where)
	}
}

// resourcesStr describes what a workload asks for.
func resourcesStr(r *api.Resources) string {
	if r.IsZero() {
		return "-"
	}
	var parts []string
	if r.CPUMillicores > 0 {
		parts = append(parts, fmt.Sprintf("%d millicores", r.CPUMillicores))
	}
	if r.MemoryMB > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB memory", r.MemoryMB))
	}
	if r.Pids > 0 {
		parts = append(parts, fmt.Sprintf("%d pids", r.Pids))
	}
	return strings.Join(parts, ", ")
}

// checkStr describes a health check in one line.
func checkStr(c *api.Check) string {
	if c == nil {
		return "-"
	}
	var what string
	switch c.Type {
	case api.CheckHTTP:
		what = "http GET " + c.Path + " on port " + c.Port
	case api.CheckTCP:
		what = "tcp connect to port " + c.Port
	case api.CheckExec:
		what = "exec " + strings.Join(c.Command, " ")
	default:
		what = c.Type
	}
	return fmt.Sprintf("%s every %s, timeout %s, unhealthy after %d failures, grace %s", what, shortDur(c.Interval), shortDur(c.Timeout), c.Failures, shortDur(c.Grace))
}

// shortDur prints a duration without its zero tail: 1m, not 1m0s.
func shortDur(d api.Duration) string {
	s := d.D().String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// restartStr describes a restart policy in one line.
func restartStr(r *api.RestartPolicy) string {
	return fmt.Sprintf("%d attempts in place, delay %s doubling up to %s", r.Attempts, shortDur(r.Delay), shortDur(r.MaxDelay))
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

// splitCheckCommand reads --check-command: a JSON array of strings is taken
// as the argv; anything else is split on spaces. An argv that does not
// parse goes as one word, which the scheduler then refuses or runs as
// given.
func splitCheckCommand(v string) []string {
	if t := strings.TrimSpace(v); strings.HasPrefix(t, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(t), &argv); err == nil {
			return argv
		}
		return []string{t}
	}
	return strings.Fields(v)
}
