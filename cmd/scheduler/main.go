// Command scheduler runs a scheduler replica (serve), a local dev cluster
// (dev), and is the CLI for operating a cluster.
package main

import (
	"fmt"
	"os"
)

// Exit codes of every command.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type command struct {
	name    string
	summary string
	run     func(args []string) int
}

func commands() []command {
	return []command{
		{"serve", "run a scheduler replica", runServe},
		{"dev", "run a local cluster: 3 replicas and 3 agents", runDev},
		{"cluster", "show the replicas, their raft state and the leader", runCluster},
		{"submit", "submit a workload: submit --name NAME [--count N] -- COMMAND [ARGS...]", runSubmit},
		{"workloads", "list workloads", runWorkloads},
		{"workload", "show one workload: workload ID", runWorkload},
		{"stop", "stop a workload wherever it runs: stop ID", runStop},
		{"logs", "show a workload's output: logs ID [--tail N]", runLogs},
		{"nodes", "list the nodes", runNodes},
		{"health", "health summary and node table", runHealth},
		{"check", "force a health check of every node", runCheck},
		{"recovery", "recovery metrics", runRecovery},
		{"alerts", "active alerts", runAlerts},
		{"events", "recent events; events -f follows them live", runEvents},
		{"backup", "save the state-file JSON: backup FILE", runBackup},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "Usage: scheduler COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nEvery client command takes --addr (comma-separated replica addresses; default $SCHEDULER_ADDR or 127.0.0.1:7001),\n--token (default $SCHEDULER_TOKEN) and --json. Run 'scheduler COMMAND -h' for its flags.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		os.Exit(exitOK)
	}
	for _, c := range commands() {
		if c.name == name {
			os.Exit(c.run(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "scheduler: unknown command %q\n\n", name)
	usage()
	os.Exit(exitUsage)
}
