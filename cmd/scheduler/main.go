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
		{"workloads", "list workloads: workloads [--state S] [--node N] [--name NAME]", runWorkloads},
		{"workload", "show one workload: workload ID", runWorkload},
		{"stop", "stop workloads wherever they run: stop ID... or stop --name NAME", runStop},
		{"logs", "show a workload's output: logs ID [-f] [--tail N|all]", runLogs},
		{"job", "run and operate jobs from job files: job run|plan|status|scale|history|revert|stop", runJob},
		{"nodes", "list the nodes", runNodes},
		{"node", "operate a node: node drain|eligibility|purge ID", runNode},
		{"gc", "force a garbage collection of stopped workloads, long-offline nodes and stopped jobs", runGC},
		{"health", "health summary and node table", runHealth},
		{"check", "force a health check of every node", runCheck},
		{"recovery", "recovery metrics", runRecovery},
		{"alerts", "active alerts", runAlerts},
		{"events", "recent events; events -f follows them live", runEvents},
		{"backup", "save the state-file JSON: backup [--force] FILE", runBackup},
		{"tls", "make the cluster CA and role certificates: tls ca create | tls cert create --role ROLE", runTLS},
		{"version", "print this binary's version", runVersion},
		{"help", "show a command's usage, flags and examples: help COMMAND", runHelp},
		{"completion", "print a shell completion script: completion bash|zsh", runCompletion},
		{"__complete", "", runComplete}, // hidden: what the completion scripts call
	}
}

func usage() { usageTo(os.Stderr) }

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" {
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
