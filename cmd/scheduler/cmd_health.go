package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/micro-orchestrator/mo/api"
)

func runHealth(args []string) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	cf := addClientFlags(fs)
	stale := fs.Bool("stale", false, "let the leader answer without first confirming that it still leads (faster; may lag after a failover)")
	if code, ok := parse(fs, args, "health [--stale]", 0); !ok {
		return code
	}
	path := "/health/summary"
	if *stale {
		path += "?stale=true"
	}
	var s api.HealthSummary
	c := cf.client()
	if err := c.do("GET", path, nil, &s); err != nil {
		return fail("health", err)
	}
	if c.json {
		printJSON(s)
		return exitOK
	}
	printHealth(os.Stdout, s)
	return exitOK
}

// printHealth prints the guide's health summary and node table.
func printHealth(w io.Writer, s api.HealthSummary) {
	fmt.Fprintln(w, "=== Health Summary ===")
	fmt.Fprintf(w, "Total Nodes: %d\n", s.TotalNodes)
	fmt.Fprintf(w, "Online Nodes: %d\n", s.OnlineNodes)
	fmt.Fprintf(w, "Offline Nodes: %d\n", s.OfflineNodes)
	if s.DegradedNodes > 0 {
		fmt.Fprintf(w, "Degraded Nodes: %d\n", s.DegradedNodes)
	}
	if s.DrainingNodes > 0 {
		fmt.Fprintf(w, "Draining Nodes: %d\n", s.DrainingNodes)
	}
	if s.IneligibleNodes > 0 {
		fmt.Fprintf(w, "Ineligible Nodes: %d\n", s.IneligibleNodes)
	}
	fmt.Fprintf(w, "Failed Workloads: %d\n", s.FailedWorkloads)
	fmt.Fprintf(w, "Desired Workloads: %d\n", s.DesiredWorkloads)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "=== Node Details ===")
	rows := [][]string{{"Node", "Status", "CPU %", "Memory %", "Failures", "Response Time", "Eligible", "Draining", "Agent"}}
	for _, n := range s.NodeDetails {
		agent := "-"
		if n.Restarting {
			agent = "restarting"
		}
		rows = append(rows, []string{nodeLabel(n), n.Status, fmt.Sprintf("%.1f", n.CPUUsage), fmt.Sprintf("%.1f", n.MemoryUsage),
			fmt.Sprintf("%d", n.ConsecutiveFailures), responseTime(n.ResponseTime), yesNo(n.Eligible), yesNo(n.Draining), agent})
	}
	printBoxTable(w, rows)
}

// nodeLabel names a node by its ID and address: "n1 (127.0.0.1:8081)".
func nodeLabel(n api.NodeDetail) string {
	if n.NodeID == "" || n.NodeID == n.NodeKey {
		return n.NodeKey
	}
	return n.NodeID + " (" + n.NodeKey + ")"
}

// printBoxTable prints rows (the first is the header) in a +---+ box, each
// cell escaped and padded by its display width.
func printBoxTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			r[i] = escapeText(c)
			widths[i] = max(widths[i], displayWidth(r[i]))
		}
	}
	sep := "+"
	for _, wd := range widths {
		sep += strings.Repeat("-", wd+2) + "+"
	}
	line := func(r []string) {
		b := "|"
		for i, c := range r {
			b += " " + padRight(c, widths[i]) + " |"
		}
		fmt.Fprintln(w, b)
	}
	fmt.Fprintln(w, sep)
	line(rows[0])
	fmt.Fprintln(w, sep)
	for _, r := range rows[1:] {
		line(r)
	}
	fmt.Fprintln(w, sep)
}

func responseTime(rt *float64) string {
	if rt == nil {
		return "N/A"
	}
	return fmt.Sprintf("%.3fs", *rt)
}

func runCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "check", 0); !ok {
		return code
	}
	var s api.HealthSummary
	c := cf.client()
	if err := c.do("POST", "/health/check", nil, &s); err != nil {
		return fail("check", err)
	}
	if c.json {
		printJSON(s)
		return exitOK
	}
	fmt.Println("✓ Health check completed")
	fmt.Printf("Online Nodes: %d\n", s.OnlineNodes)
	fmt.Printf("Offline Nodes: %d\n", s.OfflineNodes)
	if s.DegradedNodes > 0 {
		fmt.Printf("Degraded Nodes: %d\n", s.DegradedNodes)
	}
	fmt.Printf("Failed Workloads: %d\n", s.FailedWorkloads)
	return exitOK
}

func runRecovery(args []string) int {
	fs := flag.NewFlagSet("recovery", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "recovery", 0); !ok {
		return code
	}
	var m api.RecoveryMetrics
	c := cf.client()
	if err := c.do("GET", "/recovery/metrics", nil, &m); err != nil {
		return fail("recovery", err)
	}
	if c.json {
		printJSON(m)
		return exitOK
	}
	printRecovery(os.Stdout, m)
	return exitOK
}

// printRecovery prints the guide's recovery metrics, then the counters.
func printRecovery(w io.Writer, m api.RecoveryMetrics) {
	fmt.Fprintln(w, "=== Recovery Metrics ===")
	fmt.Fprintf(w, "Failed Workloads: %d\n", len(m.FailedWorkloads))
	fmt.Fprintf(w, "Desired State Count: %d\n", m.DesiredStateCount)
	if len(m.FailedWorkloads) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failed Workloads:")
		perm := map[string]bool{}
		for _, id := range m.PermanentlyFailed {
			perm[id] = true
		}
		for _, id := range m.FailedWorkloads {
			if perm[id] {
				fmt.Fprintf(w, "  - %s (permanently failed)\n", escapeText(id))
			} else {
				fmt.Fprintf(w, "  - %s\n", escapeText(id))
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Health Check Details:")
	keys := make([]string, 0, len(m.HealthChecks))
	for k := range m.HealthChecks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h := m.HealthChecks[k]
		label := k
		if h.NodeID != "" && h.NodeID != k {
			label = h.NodeID + " (" + k + ")"
		}
		fmt.Fprintf(w, "  %s: %s (Failures: %d, Response: %s)\n", escapeText(label), escapeText(h.Status), h.ConsecutiveFailures, responseTime(h.ResponseTime))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Recovery Queue: %d\n", m.QueueLength)
	rate := "n/a" // nothing attempted (the API's success_rate then reads 100)
	if m.Attempted > 0 {
		rate = fmt.Sprintf("%.1f%%", m.SuccessRate)
	}
	fmt.Fprintf(w, "Recoveries: %d attempted, %d succeeded, %d failed (success rate %s)\n", m.Attempted, m.Succeeded, m.Failed, rate)
	if len(m.LastDurations) > 0 {
		var parts []string
		for _, d := range m.LastDurations {
			parts = append(parts, fmt.Sprintf("%.2fs", d))
		}
		fmt.Fprintf(w, "Last Recovery Durations: %s\n", strings.Join(parts, " "))
	}
	if m.EvictionsPaused {
		fmt.Fprintln(w, "WARNING: evictions paused: most nodes went offline at once (mass-failure guard)")
	}
}
