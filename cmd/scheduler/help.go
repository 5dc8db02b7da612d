package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// examples are shown under each command's flags by -h and help COMMAND.
var examples = map[string][]string{
	"serve": {
		"scheduler serve --id s1 --http 127.0.0.1:7001 --raft 127.0.0.1:7101 --data /var/lib/mo/s1 --bootstrap",
		"scheduler serve --id s2 --http 127.0.0.1:7002 --raft 127.0.0.1:7102 --data /var/lib/mo/s2 --join 127.0.0.1:7001",
	},
	"dev":     {"scheduler dev"},
	"cluster": {"scheduler cluster --addr 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", "scheduler cluster --stale --addr 127.0.0.1:7002"},
	"submit": {"scheduler submit --name web --count 3 --env MODE=demo -- sleep 600", "scheduler submit --name singleton --exclusive -- sleep 600", "scheduler submit --name greeter -- sh -c 'while true; do date; sleep 1; done'",
		"scheduler submit --name web --port http --check http --cpu-millicores 250 --memory-mb 128 -- sh -c 'exec python3 -m http.server --bind 127.0.0.1 $MO_PORT_HTTP'",
		"scheduler submit --name migrate --type batch -- sh -c 'echo migrated'"},
	"workloads": {"scheduler workloads --state running --node n1", "scheduler workloads --name web --json"},
	"workload":  {"scheduler workload workload_1795739665_1"},
	"stop":      {"scheduler stop workload_1795739665_1 workload_1795739665_2", "scheduler stop --name web"},
	"logs":      {"scheduler logs workload_1795739665_1 --tail 20", "scheduler logs -f --tail all workload_1795739665_1"},
	"nodes":     {"scheduler nodes", "scheduler nodes --json"},
	"health":    {"scheduler health", "scheduler health --json"},
	"check":     {"scheduler check"},
	"recovery":  {"scheduler recovery"},
	"alerts":    {"scheduler alerts"},
	"events":    {"scheduler events --limit 20", "scheduler events -f"},
	"backup":    {"scheduler backup state-backup.json", "scheduler backup --force state-backup.json"},
	"help":      {"scheduler help logs", "scheduler help node drain"},
	"version":   {"scheduler version", "scheduler version --json"},
	"completion": {
		"source <(scheduler completion bash)     # in ~/.bashrc",
		"scheduler completion zsh > \"${fpath[1]}/_scheduler\"",
	},
	"job": {
		"scheduler job plan web.hcl",
		"scheduler job run --var greeting=bonjour web.hcl",
		"scheduler job status web",
		"scheduler job scale web 5",
		"scheduler job history web",
		"scheduler job revert web 1",
	},
	"job run":     {"scheduler job run web.hcl", "scheduler job run --var greeting=bonjour --detach web.hcl", "MO_VAR_greeting=hello scheduler job run --json web.hcl"},
	"job plan":    {"scheduler job plan web.hcl", "scheduler job plan --var greeting=bonjour web.hcl && echo unchanged"},
	"job status":  {"scheduler job status", "scheduler job status web", "scheduler job status --json web"},
	"job scale":   {"scheduler job scale web 5", "scheduler job scale web 0"},
	"job history": {"scheduler job history web"},
	"job revert":  {"scheduler job revert web 1"},
	"job stop":    {"scheduler job stop web"},
	"tls": {
		"scheduler tls ca create --dir /etc/mo/tls",
		"scheduler tls cert create --role server --dir /etc/mo/tls --ip 10.0.0.11 --dns s1.example.com",
		"scheduler tls cert create --role agent --dir /etc/mo/tls",
		"scheduler tls cert create --role cli --dir ~/.mo --ca /etc/mo/tls/ca.pem --ca-key /etc/mo/tls/ca-key.pem",
	},
	"tls ca create":   {"scheduler tls ca create --dir /etc/mo/tls", "scheduler tls ca create --dir /etc/mo/tls --days 3650"},
	"tls cert create": {"scheduler tls cert create --role server --dir /etc/mo/tls --ip 10.0.0.11,10.0.0.12 --dns s1.example.com", "scheduler tls cert create --role cli --dir /etc/mo/tls --days 90"},
	"node": {
		"scheduler node drain n1",
		"scheduler node drain n1 --deadline 10m --detach",
		"scheduler node drain n1 --disable",
		"scheduler node eligibility n1 --enable",
		"scheduler node purge n1",
	},
	"node drain":       {"scheduler node drain n1", "scheduler node drain n1 --deadline 10m --detach", "scheduler node drain n1 --json", "scheduler node drain n1 --disable"},
	"node eligibility": {"scheduler node eligibility n1 --disable", "scheduler node eligibility n1 --enable"},
	"node purge":       {"scheduler node purge n1"},
	"gc":               {"scheduler gc", "scheduler gc --json"},
}

// printExample prints what the command does and its examples, for the end
// of its -h.
func printExample(w io.Writer, name string) {
	ex := examples[name]
	if len(ex) == 0 {
		return
	}
	fmt.Fprintf(w, "\nExample")
	if len(ex) > 1 {
		fmt.Fprint(w, "s")
	}
	fmt.Fprintln(w, ":")
	for _, e := range ex {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// runHelp shows the usage of one command: help COMMAND is COMMAND -h.
func runHelp(args []string) int {
	if len(args) == 0 {
		usageTo(os.Stdout)
		return exitOK
	}
	if len(args) == 2 && (args[0] == "job" || args[0] == "node") {
		// help job run, help node drain: the subcommand's own help.
		for _, c := range commands() {
			if c.name == args[0] {
				return c.run([]string{"help", args[1]})
			}
		}
	}
	if len(args) > 1 {
		fmt.Fprintln(os.Stderr, "Usage: scheduler help [COMMAND [SUBCOMMAND]]")
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			// -h prints on stderr; asked for, help goes to stdout (help logs | less).
			old := os.Stderr
			os.Stderr = os.Stdout
			defer func() { os.Stderr = old }()
			return c.run([]string{"-h"})
		}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "Usage: scheduler help [COMMAND [SUBCOMMAND]]\n\nShows a command's usage line, its flags and examples.")
		printExample(os.Stderr, "help")
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "scheduler help: unknown command %q\n\n", args[0])
	usageTo(os.Stderr)
	return exitUsage
}

// usageTo prints the list of commands.
func usageTo(w io.Writer) {
	fmt.Fprintf(w, "Usage: scheduler COMMAND [flags]\n\nCommands:\n")
	width := 0
	for _, c := range commands() {
		if !strings.HasPrefix(c.name, "_") {
			width = max(width, len(c.name))
		}
	}
	for _, c := range commands() {
		if !strings.HasPrefix(c.name, "_") {
			fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\nEvery client command takes --addr (comma-separated replica addresses; default $SCHEDULER_ADDR or 127.0.0.1:7001),\n--token (default $SCHEDULER_TOKEN), --json and --timeout. Run 'scheduler help COMMAND' or 'scheduler COMMAND -h' for its flags.\n")
}
