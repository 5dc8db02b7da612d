package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// devProc is one process of the local cluster.
type devProc struct {
	role, id, addr string
	cmd            *exec.Cmd
	exited         chan struct{}
}

func runDev(args []string) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", "", "folder for all data and logs (default: a new folder under the system temp dir)")
	keep := fs.Bool("keep", false, "keep the data folder after Ctrl-C")
	httpBase := fs.Int("http-port", 7001, "first replica HTTP port (then +1, +2); busy ports are replaced by free ones")
	raftBase := fs.Int("raft-port", 7101, "first replica raft port")
	agentBase := fs.Int("agent-port", 8081, "first agent port")
	agentBin := fs.String("agent-bin", "", "path of the agent binary (default: 'agent' beside this binary, else on PATH)")
	extra := fs.String("serve-flags", "", "extra flags for every replica, space-separated (e.g. \"--health-interval 1s\")")
	noTLS := fs.Bool("no-tls", false, "run everything in plaintext instead of mutual TLS")
	if code, ok := parse(fs, args, "dev [--dir DIR] [--keep] [--no-tls]", 0); !ok {
		return code
	}
	self, err := os.Executable()
	if err != nil {
		return fail("dev", err)
	}
	agent := *agentBin
	if agent == "" {
		agent = filepath.Join(filepath.Dir(self), "agent")
		if _, err := os.Stat(agent); err != nil {
			if agent, err = exec.LookPath("agent"); err != nil {
				return fail("dev", errors.New("no agent binary beside this one or on PATH; run 'make build' or pass --agent-bin"))
			}
		}
	}
	root := *dir
	if root == "" {
		if root, err = os.MkdirTemp("", "mo-dev-"); err != nil {
			return fail("dev", err)
		}
	} else if err := os.MkdirAll(root, 0o700); err != nil {
		return fail("dev", err)
	}
	root, _ = filepath.Abs(root)
	tokenBytes := make([]byte, 16)
	rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)

	// Cleanup must not depend on stdout: under `make run | tee log`, Ctrl-C
	// ends tee too, and a write to the closed pipe would kill this process
	// with SIGPIPE before it stopped its children and removed the folder.
	// Caught (not ignored, which children would inherit), SIGPIPE only
	// makes such writes fail.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	var procs []*devProc
	cleanup := func() {
		stopAll(procs)
		if !*keep && *dir == "" {
			os.RemoveAll(root)
		}
	}
	var certs *devTLS
	if !*noTLS {
		if certs, err = makeDevTLS(root); err != nil {
			cleanup()
			return fail("dev", fmt.Errorf("making the TLS certificates: %w", err))
		}
	}
	devClientTLS, err := certs.clientConfig()
	if err != nil {
		cleanup()
		return fail("dev", err)
	}
	httpAddrs := make([]string, 3)
	raftAddrs := make([]string, 3)
	agentAddrs := make([]string, 3)
	for i := range 3 {
		httpAddrs[i] = pickPort(*httpBase + i)
		raftAddrs[i] = pickPort(*raftBase + i)
		agentAddrs[i] = pickPort(*agentBase + i)
	}
	join := strings.Join(httpAddrs, ",")
	env := append(envWithout(os.Environ(), "SCHEDULER_TOKEN"), "SCHEDULER_TOKEN="+token)
	for i := range 3 {
		id := "s" + strconv.Itoa(i+1)
		a := []string{"serve", "--id", id, "--http", httpAddrs[i], "--raft", raftAddrs[i], "--data", filepath.Join(root, id)}
		if i == 0 {
			a = append(a, "--bootstrap")
		} else {
			a = append(a, "--join", join)
		}
		a = append(a, certs.flags(tlsutil.RoleServer)...)
		a = append(a, strings.Fields(*extra)...)
		p, err := startDevProc("replica", id, httpAddrs[i], self, a, env, filepath.Join(root, id+".log"))
		if err != nil {
			cleanup()
			return fail("dev", err)
		}
		procs = append(procs, p)
	}
	for i := range 3 {
		id := "n" + strconv.Itoa(i+1)
		a := []string{"--id", id, "--listen", agentAddrs[i], "--join", join, "--data", filepath.Join(root, id),
			// Agents on one machine pick workloads' ports from ranges of
			// their own, so that two never hand out the same port.
			"--port-range", fmt.Sprintf("%d-%d", 20000+i*4000, 20000+i*4000+3999),
			// Ctrl-C stops everything: its SIGTERM must not leave the
			// workloads running for a restarted agent to re-adopt.
			"--restart-grace", "0"}
		a = append(a, certs.flags(tlsutil.RoleAgent)...)
		p, err := startDevProc("agent", id, agentAddrs[i], agent, a, env, filepath.Join(root, id+".log"))
		if err != nil {
			cleanup()
			return fail("dev", err)
		}
		procs = append(procs, p)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	fmt.Printf("Starting a local cluster in %s ...\n", root)
	if err := waitDevReady(ctx, httpAddrs, token, devClientTLS, procs); err != nil {
		cleanup()
		return fail("dev", fmt.Errorf("%v (logs in %s)", err, root))
	}
	printDevTable(procs, root)
	fmt.Printf("\nIn another terminal:\n\n")
	fmt.Printf("  export SCHEDULER_ADDR=%s\n", join)
	fmt.Printf("  export SCHEDULER_TOKEN=%s\n", token)
	certs.printExports()
	bin := "scheduler"
	if rel, err := filepath.Rel(mustWd(), self); err == nil && !strings.HasPrefix(rel, "..") {
		bin = "./" + rel
	}
	fmt.Printf("\n  %s submit --name web --count 3 -- sleep 600\n", bin)
	fmt.Printf("  %s workloads\n  %s health\n  %s cluster\n", bin, bin, bin)
	if _, err := os.Stat(filepath.Join("deploy", "jobs", "web.hcl")); err == nil {
		fmt.Printf("  %s job run deploy/jobs/web.hcl   # a job of 3 web servers; then: job status web\n", bin)
	}
	fmt.Printf("\nFailover drill: kill -9 an agent pid above, then watch '%s health' and '%s workloads'.\n", bin, bin)
	fmt.Printf("Logs: %s/*.log. Press Ctrl-C to stop everything.\n", root)

	for _, p := range procs {
		go func(p *devProc) {
			<-p.exited
			if ctx.Err() == nil {
				fmt.Printf("[dev] %s %s (pid %d) exited: %v\n", p.role, p.id, p.cmd.Process.Pid, p.cmd.ProcessState)
			}
		}(p)
	}
	<-ctx.Done()
	fmt.Println("\nStopping the local cluster ...")
	cleanup()
	fmt.Println("Stopped.")
	return exitOK
}

func mustWd() string {
	wd, _ := os.Getwd()
	return wd
}

// pickPort returns 127.0.0.1:port when that port is free, else a free one.
func pickPort(port int) string {
	a := "127.0.0.1:" + strconv.Itoa(port)
	if l, err := net.Listen("tcp", a); err == nil {
		l.Close()
		return a
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return a
	}
	defer l.Close()
	return l.Addr().String()
}

func startDevProc(role, id, addr, bin string, args, env []string, logPath string) (*devProc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s %s: %w", role, id, err)
	}
	p := &devProc{role: role, id: id, addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// stopAll stops agents first (they stop their workloads), then replicas.
func stopAll(procs []*devProc) {
	for _, role := range []string{"agent", "replica"} {
		for _, p := range procs {
			if p.role == role {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, p := range procs {
			if p.role != role {
				continue
			}
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.exited
			}
		}
	}
}

// waitDevReady waits for a leader with three voters and three online nodes.
func waitDevReady(ctx context.Context, addrs []string, token string, tc api.TLSClient, procs []*devProc) error {
	c := &client{addrs: addrs, http: api.NewHTTPClient(token, 2*time.Second, tc), timeout: time.Second, quiet: true}
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range procs {
			select {
			case <-p.exited:
				return fmt.Errorf("%s %s exited during start-up", p.role, p.id)
			default:
			}
		}
		var st api.ClusterStatus
		var hs api.HealthSummary
		if c.do("GET", "/cluster/status", nil, &st) == nil && len(st.Replicas) == 3 && st.Leader.ID != "" &&
			c.do("GET", "/health/summary", nil, &hs) == nil && checkedOnline(hs) == 3 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the cluster did not come up within 60s")
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkedOnline counts the nodes the leader has checked and found online.
func checkedOnline(hs api.HealthSummary) int {
	n := 0
	for _, d := range hs.NodeDetails {
		if d.Status == api.NodeOnline && d.LastCheck != "" {
			n++
		}
	}
	return n
}

func printDevTable(procs []*devProc, root string) {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tID\tADDRESS\tPID\tLOG")
	for _, p := range procs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.role, p.id, p.addr, p.cmd.Process.Pid, filepath.Join(root, p.id+".log"))
	}
	tw.Flush()
}

func envWithout(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
