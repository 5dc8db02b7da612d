package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/cluster"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

func runServe(args []string) int {
	// SIGHUP reloads certificates; caught from the start, one that comes
	// before the replica runs is queued instead of ending the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg := cluster.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.ID, "id", "", "replica ID, unique in the cluster (required)")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:7001", "HTTP API bind address")
	fs.StringVar(&cfg.AdvertiseHTTP, "advertise-http", "", "HTTP address peers, agents and the CLI use (required when --http binds a wildcard)")
	fs.StringVar(&cfg.RaftAddr, "raft", "127.0.0.1:7101", "raft transport bind address")
	fs.StringVar(&cfg.AdvertiseRaft, "advertise-raft", "", "raft address peers use (required when --raft binds a wildcard)")
	fs.StringVar(&cfg.DataDir, "data", "", "data dir for raft state and the state file (required)")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "create a new cluster on first start (ignored when the data dir holds state)")
	join := fs.String("join", "", "comma-separated HTTP addresses of replicas to join, tried in turn until one accepts")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "give up joining after this long")
	fs.StringVar(&cfg.Token, "token", "", "cluster token (default $SCHEDULER_TOKEN)")
	tokenFile := fs.String("token-file", "", "read the cluster token from this file (keeps it out of ps and the environment)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow running without a cluster token")
	fs.StringVar(&cfg.RestoreFile, "restore", "", "seed a new cluster from this state file (empty data dir only)")
	fs.DurationVar(&cfg.SaveInterval, "save-interval", cfg.SaveInterval, "how often the leader writes the state file")
	fs.DurationVar(&cfg.GCAfter, "gc-after", cfg.GCAfter, "remove stopped and completed workloads (and stopped jobs left empty) this long after they ended (at least 1s)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (no token: never expose it)")
	fs.DurationVar(&cfg.NodeGCAfter, "node-gc-after", cfg.NodeGCAfter, "remove nodes offline this long with nothing on them (at least 1s)")
	fs.DurationVar(&cfg.Lease, "agent-lease", cfg.Lease, "how long an agent runs its exclusive workloads after the leader last acknowledged its heartbeat")
	fs.DurationVar(&cfg.HeartbeatTimeout, "raft-heartbeat-timeout", cfg.HeartbeatTimeout, "raft heartbeat timeout")
	fs.DurationVar(&cfg.ElectionTimeout, "raft-election-timeout", cfg.ElectionTimeout, "raft election timeout")
	fs.DurationVar(&cfg.LeaderLeaseTimeout, "raft-lease-timeout", cfg.LeaderLeaseTimeout, "raft leader lease timeout")
	fs.DurationVar(&cfg.Health.Interval, "health-interval", cfg.Health.Interval, "time between health checks of a node")
	fs.DurationVar(&cfg.Health.Timeout, "health-timeout", cfg.Health.Timeout, "timeout of one health check")
	fs.IntVar(&cfg.Health.FailureThreshold, "failure-threshold", cfg.Health.FailureThreshold, "consecutive failed checks that mark a node offline")
	fs.IntVar(&cfg.Health.RecoveryThreshold, "recovery-threshold", cfg.Health.RecoveryThreshold, "consecutive good checks before an offline node is online again")
	fs.DurationVar(&cfg.Health.ConfirmDelay, "confirm-delay", cfg.Health.ConfirmDelay, "a first failed check is re-checked after this, not a whole interval later")
	fs.DurationVar(&cfg.Recovery.Interval, "recovery-interval", cfg.Recovery.Interval, "recovery loop period")
	fs.IntVar(&cfg.Recovery.MaxAttempts, "max-attempts", cfg.Recovery.MaxAttempts, "attempts before a workload is permanently_failed")
	fs.Float64Var(&cfg.Recovery.CPULimit, "cpu-limit", cfg.Recovery.CPULimit, "a target node must be online and below this CPU percent")
	fs.StringVar(&cfg.AlertWebhook, "alert-webhook", "", "`URL` that gets a JSON POST on every alert fire and resolve (retried with backoff; never slows the monitor)")
	var tlsFiles tlsutil.Files
	tlsutil.AddFlags(fs, &tlsFiles, false)
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "write logs as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: scheduler serve --id ID --data DIR (--bootstrap | --join ADDRS) [flags]\n\nRuns one scheduler replica.\n\nFlags:\n")
		fs.PrintDefaults()
		printExample(fs.Output(), "serve")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "scheduler serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *join != "" {
		cfg.Join = splitList(*join)
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scheduler serve: --token-file: %v\n", err)
			return exitUsage
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if cfg.Token == "" {
		// Read after parsing, not as the flag's default, so that -h never prints it.
		cfg.Token = os.Getenv("SCHEDULER_TOKEN")
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{
		Name: "scheduler." + cfg.ID, Level: hclog.LevelFromString(*logLevel), JSONFormat: *logJSON, Output: os.Stderr,
	})
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "scheduler serve: %v\n", err)
		return exitUsage
	}
	if tlsFiles.Enabled() {
		store, err := tlsutil.Load(tlsFiles, tlsutil.RoleServer)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scheduler serve: %v\n", err)
			return exitUsage
		}
		cfg.TLS = store
	}
	r, err := cluster.New(cfg) // reads and checks a --restore file
	if err != nil {
		fmt.Fprintf(os.Stderr, "scheduler serve: %v\n", err)
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		for range hup {
			r.ReloadTLS()
		}
	}()
	if err := r.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "scheduler serve: %v\n", err)
		return exitFail
	}
	return exitOK
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
