// Command agent is the micro-orchestrator node agent: it registers with the
// scheduler replicas and runs workloads as OS processes for their leader.
// It is a thin main: flags → agent.Config → agent.Run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/micro-orchestrator/mo/agent"
	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

const usageHead = `Usage: agent --id ID --join ADDRS --data DIR [flags]

The micro-orchestrator node agent. It serves the agent HTTP API on --listen,
registers with the scheduler replicas of --join (retrying until one accepts),
and runs the workloads their leader sends as OS processes, each in its own
process group under a small monitor process of its own.

A killed agent (SIGKILL, a crash) is a dead node: its workloads die with it
at once. SIGTERM or SIGINT keeps them running instead: the agent tells the
schedulers that the node is restarting (POST /nodes/ID/restarting), hands each
workload to its monitor and exits; an agent started again on the same --data
within --restart-grace adopts them (same pids, output, ports, checks,
restart policy), and the monitors kill those that no agent adopts in time.
Upgrading the agent is: replace the binary, SIGTERM, start it again.
With --restart-grace 0, SIGTERM stops every workload instead; with
--drain-on-shutdown it has the node drained first.

Example:
  SCHEDULER_TOKEN=T agent --id n1 --listen 127.0.0.1:8080 \
      --join 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data /var/lib/mo/n1

Flags:
`

const usageFoot = `
Transport security: with --tls-ca, --tls-cert and --tls-key (an agent
certificate from 'scheduler tls cert create --role agent') the agent API
speaks mutual TLS and accepts scheduler (server) certificates only, and the
agent calls the schedulers over TLS. SIGHUP reloads the three files; a broken
file keeps the old ones in use. Without them the agent warns that it speaks
plaintext.

Environment:
  SCHEDULER_TOKEN   the cluster token when neither --token nor --token-file is
                    given (flags are visible to every user in ps). Workloads do
                    not inherit it, and the agent makes its /proc entries
                    unreadable to other users; a workload running as the
                    agent's own user, or as root, can still find it.

Signals: SIGTERM or SIGINT shuts down as above. A second one while the node
drains exits at once, keeping the workloads for the next agent as a plain
SIGTERM does (with --restart-grace 0 they die with the agent); a second one
while the workloads are being stopped exits at once, and they die with the
agent; a third gets the default action. SIGHUP reloads the TLS files.

A supervisor such as systemd must signal the agent's main process only (for
systemd: KillMode=process), or it kills the workloads itself.

Exit codes: 0 clean shutdown, 1 runtime error, 2 usage error.
`

func main() {
	if agent.IsGuard() {
		os.Exit(agent.RunGuard())
	}
	if agent.IsMonitor() { // a workload's monitor
		os.Exit(agent.RunMonitor())
	}
	if cgroup.IsShim() { // enters a workload's cgroup, then execs it
		os.Exit(cgroup.RunShim())
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run parses args, then runs the agent until SIGTERM or SIGINT, and returns
// the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	// SIGHUP reloads certificates (agent.Run watches for it); caught from
	// the start, one that comes early never ends the agent.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageFoot)
	}
	var (
		cfg      agent.Config
		join     string
		logJSON  bool
		logLevel string
	)
	fs.StringVar(&cfg.ID, "id", "", "node `ID` to register under (required)")
	fs.StringVar(&cfg.Listen, "listen", agent.DefaultListen, "`HOST:PORT` the agent API binds")
	fs.StringVar(&cfg.Advertise, "advertise", "", "`HOST:PORT` told to the schedulers (default --listen; required when --listen binds a wildcard such as 0.0.0.0 or :PORT)")
	fs.StringVar(&join, "join", "", "comma-separated scheduler replica HTTP `ADDRS` (host:port), tried in turn")
	fs.StringVar(&cfg.DataDir, "data", "", "data `DIR` for state and workload output, created 0700 (required)")
	fs.StringVar(&cfg.Token, "token", "", "cluster `TOKEN` (default $SCHEDULER_TOKEN)")
	var tokenFile string
	fs.StringVar(&tokenFile, "token-file", "", "read the cluster token from `FILE` (keeps it out of ps and the environment)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow running without a token: anyone who reaches the agent can run commands")
	fs.DurationVar(&cfg.StopGrace, "stop-grace", agent.DefaultStopGrace, "wait between SIGTERM and SIGKILL when stopping a workload")
	fs.Int64Var(&cfg.LogMaxBytes, "log-max-bytes", agent.DefaultLogMaxBytes, "cap of each workload's output.log in `BYTES`; over it the oldest half is dropped")
	cfg.PortRange = agent.DefaultPortRange
	fs.Var(&cfg.PortRange, "port-range", "`LOW-HIGH` ports (both included) from which workloads' ports are picked, each passed as MO_PORT_<LABEL>")
	fs.IntVar(&cfg.CPUMillicores, "cpu-millicores", 0, "CPU the node offers to placement, in `MILLICORES` (1000 a core; 0 detects the CPUs the agent may run on)")
	fs.IntVar(&cfg.MemoryMB, "memory-mb", 0, "memory the node offers to placement, in `MIB` (0 detects MemTotal of /proc/meminfo)")
	fs.StringVar(&cfg.CPUFile, "cpu-file", "", "failure-drill hook: report the number (percent) in this `FILE` as cpu_usage at each sample instead of measuring /proc/stat; leave unset in production")
	fs.BoolVar(&cfg.NoCgroups, "no-cgroups", false, "run workloads without a cgroup each (no resource limits; processes are found by group and environment tag)")
	fs.DurationVar(&cfg.RestartGrace, "restart-grace", agent.DefaultRestartGrace, "on SIGTERM keep the workloads running this long for an agent restarted on the same --data to adopt (the leader waits as long before it moves them); 0 stops every workload on SIGTERM")
	fs.BoolVar(&cfg.DrainOnShutdown, "drain-on-shutdown", false, "on SIGTERM first ask the scheduler to drain this node and wait until its workloads have moved (each replacement started before the old instance stops), then stop what is left")
	fs.DurationVar(&cfg.DrainDeadline, "drain-deadline", agent.DefaultDrainDeadline, "with --drain-on-shutdown, the drain's deadline: the scheduler stops what has not moved by then")
	var tlsFiles tlsutil.Files
	tlsutil.AddFlags(fs, &tlsFiles, false)
	fs.BoolVar(&logJSON, "log-json", false, "log in JSON")
	fs.StringVar(&logLevel, "log-level", "info", "log `LEVEL`: trace, debug, info, warn or error")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	for _, j := range strings.Split(join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Join = append(cfg.Join, j)
		}
	}
	if tokenFile != "" {
		if cfg.Token != "" {
			return usageError(stderr, fmt.Errorf("--token and --token-file are exclusive"))
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return usageError(stderr, fmt.Errorf("--token-file: %v", err))
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if cfg.Token == "" {
		cfg.Token = getenv("SCHEDULER_TOKEN")
	}
	// Keep other users from reading the token out of /proc/<pid>/environ.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Zero would mean "default" to agent.Config; on the command line it is a mistake.
	if cfg.StopGrace <= 0 {
		return usageError(stderr, fmt.Errorf("--stop-grace must be positive, not %s", cfg.StopGrace))
	}
	if cfg.RestartGrace < 0 {
		return usageError(stderr, fmt.Errorf("--restart-grace must be 0 or positive, not %s", cfg.RestartGrace))
	}
	if cfg.DrainDeadline <= 0 {
		return usageError(stderr, fmt.Errorf("--drain-deadline must be positive, not %s", cfg.DrainDeadline))
	}
	if cfg.LogMaxBytes <= 0 {
		return usageError(stderr, fmt.Errorf("--log-max-bytes must be positive, not %d", cfg.LogMaxBytes))
	}
	level := hclog.LevelFromString(logLevel)
	if level == hclog.NoLevel {
		return usageError(stderr, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", logLevel))
	}
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, err)
	}
	if tlsFiles.Enabled() {
		store, err := tlsutil.Load(tlsFiles, tlsutil.RoleAgent)
		if err != nil {
			return usageError(stderr, err)
		}
		cfg.TLS = store
	}

	logger := hclog.New(&hclog.LoggerOptions{Level: level, Output: stderr, JSONFormat: logJSON})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	again := make(chan struct{})
	cfg.Interrupt = again
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(again)
		signal.Reset(syscall.SIGTERM, syscall.SIGINT) // a third one gets the default action
	}()
	if err := agent.Run(ctx, cfg, logger); err != nil {
		logger.Named("agent").Error("agent failed", "error", err)
		return exitRuntime
	}
	return exitOK
}

// usageError prints err (one line per problem) and a pointer to -h.
func usageError(w io.Writer, err error) int {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "agent: %s\n", line)
	}
	fmt.Fprintln(w, "Run 'agent -h' for help.")
	return exitUsage
}
