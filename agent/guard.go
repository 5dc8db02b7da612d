package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/micro-orchestrator/mo/agent/cgroup"
)

// The guard is a small process that the agent starts from its own binary
// (GuardEnv set, see RunGuard). The agent announces on the guard's stdin
// each workload process group ("+PGID" once started, "-PGID" once gone), the
// instance tag of each exclusive instance before it is forked ("x TAG"), its
// group once it is ("X PGID TAG"), a tag whose fork failed ("u TAG"), and
// every renewal of its lease ("L DEADLINE", nanoseconds of CLOCK_BOOTTIME;
// the guard keeps the latest deadline), and that it leaves for a restart,
// keeping its workloads for the next agent ("R").
//
//   - When stdin reaches EOF, because the agent has exited for whatever
//     reason, SIGKILL included, the guard kills every group still announced
//     and every process tagged with the agent's run. Pdeathsig only reaches a
//     workload's main process; the guard takes its background processes
//     along too, so that a killed agent really is a dead node.
//   - After "R", stdin's EOF kills nothing but the exclusive groups (none are
//     kept across a restart): the workloads' monitors keep them running for
//     the next agent, and kill them if none comes (monitor.go).
//   - When the lease deadline passes, the guard kills the exclusive groups
//     (and the processes carrying their tags) at once, even if the agent
//     itself is paused or hung: an exclusive workload never outlives its
//     node's lease.
//
// With cgroups (isolation.go) the agent passes its parent cgroup too
// (os.Args[2:] "cgroup VERSION MOUNTPOINT NAME"), and "the processes tagged"
// are the instances' cgroups instead: the guard kills the cgroup an
// exclusive tag names, and at EOF every cgroup under the parent, which it
// then removes. No /proc scan is needed then.
//
// It ignores the usual termination signals and lives in its own process group.
const GuardEnv = "MO_AGENT_GUARD"

// IsGuard reports whether this process was started as the agent's guard;
// the agent's main calls RunGuard first thing when it is.
func IsGuard() bool { return os.Getenv(GuardEnv) == "1" }

// guardWriteTimeout bounds a write to the guard's pipe.
const guardWriteTimeout = time.Second

// boottime returns the current CLOCK_BOOTTIME, which both the agent and the
// guard read and which goes on while the machine is suspended.
func boottime() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// RunGuard is the guard process: it follows the agent's announcements on
// stdin (see GuardEnv) and returns the exit code once stdin is closed.
// os.Args[1], when present, is the agent run's id; os.Args[2:] may name the
// agent's parent cgroup.
func RunGuard() int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGPIPE)
	runID := ""
	if len(os.Args) > 1 {
		runID = os.Args[1]
	}
	cg := guardCgroups(os.Args[2:])
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	groups := map[int]bool{}
	exclusive := map[string]int{} // instance tag -> pgid (0 until forked)
	var deadline time.Duration    // of the lease, in boottime; 0: none yet
	restarting := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func() {
		timer.Stop()
		if deadline > 0 && len(exclusive) > 0 {
			timer.Reset(max(deadline-boottime(), 0))
		}
	}
	expire := func() {
		for tag, g := range exclusive {
			if g > 1 {
				_ = syscall.Kill(-g, syscall.SIGKILL)
			}
			if cg != nil {
				killTagGroup(cg, tag)
			} else {
				killEverywhere(func(env []byte) bool { return hasEnvEntry(env, []byte(tag)) })
			}
			delete(exclusive, tag)
		}
	}
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if restarting {
					expire()
					return 0
				}
				for g := range groups {
					if g > 1 {
						_ = syscall.Kill(-g, syscall.SIGKILL)
					}
				}
				expire()
				switch {
				case cg != nil:
					_, _, _ = cg.KillAll(cgroupKillTimeout)
					_ = cg.Remove()
				case runID != "":
					prefix := []byte(instanceEnv + "=" + runID + ":")
					killEverywhere(func(env []byte) bool { return hasEnvPrefix(env, prefix) })
				}
				return 0
			}
			op, arg, _ := strings.Cut(line, " ")
			switch {
			case strings.HasPrefix(line, "+"):
				if g, err := strconv.Atoi(line[1:]); err == nil {
					groups[g] = true
				}
			case strings.HasPrefix(line, "-"):
				if g, err := strconv.Atoi(line[1:]); err == nil {
					delete(groups, g)
					for tag, eg := range exclusive {
						if eg == g {
							delete(exclusive, tag)
						}
					}
				}
			case op == "x" && arg != "":
				exclusive[arg] = 0
			case op == "X":
				gs, tag, _ := strings.Cut(arg, " ")
				if g, err := strconv.Atoi(gs); err == nil && g > 1 && tag != "" {
					exclusive[tag] = g
				}
			case op == "u":
				delete(exclusive, arg)
			case line == "R":
				restarting = true
			case op == "L":
				if d, err := strconv.ParseInt(arg, 10, 64); err == nil && time.Duration(d) > deadline {
					deadline = time.Duration(d)
				}
			}
			arm()
			if deadline > 0 && len(exclusive) > 0 && boottime() >= deadline {
				expire()
			}
		case <-timer.C:
			if deadline > 0 && boottime() >= deadline {
				expire()
			} else {
				arm()
			}
		}
	}
}

// guardArgs are the guard's arguments after the run id that name the
// agent's parent cgroup (none without cgroups).
func guardArgs(m *cgroup.Manager) []string {
	if m == nil {
		return nil
	}
	o := m.Options()
	return []string{"cgroup", strconv.Itoa(o.Version), o.Mountpoint, o.Name}
}

// guardCgroups opens the parent cgroup that guardArgs named; nil if there
// is none (then the guard scans /proc for tagged processes instead).
func guardCgroups(args []string) *cgroup.Manager {
	if len(args) != 4 || args[0] != "cgroup" {
		return nil
	}
	v, err := strconv.Atoi(args[1])
	if err != nil {
		return nil
	}
	m, err := cgroup.Open(cgroup.Options{Version: v, Mountpoint: args[2], Name: args[3]})
	if err != nil {
		return nil
	}
	return m
}

// killTagGroup kills the cgroup of the instance that tag names.
func killTagGroup(m *cgroup.Manager, tag string) {
	if name := tagGroupName(tag); name != "" {
		if g, err := m.Load(name); err == nil {
			_, _ = g.Kill(cgroupKillTimeout)
		}
	}
}

// killEverywhere sends SIGKILL to every process on the machine whose
// environment block matches, a few rounds until none is left.
func killEverywhere(match func(env []byte) bool) {
	self := os.Getpid()
	for round := 0; round < 5; round++ {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		n := 0
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid <= 1 || pid == self {
				continue
			}
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err != nil || !match(env) {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hasEnvPrefix reports whether an entry of a NUL-separated environment block
// starts with prefix.
func hasEnvPrefix(env, prefix []byte) bool {
	for len(env) > 0 {
		entry := env
		if i := bytes.IndexByte(env, 0); i >= 0 {
			entry, env = env[:i], env[i+1:]
		} else {
			env = nil
		}
		if bytes.HasPrefix(entry, prefix) {
			return true
		}
	}
	return false
}

// guard is the agent's side of the guard process.
type guard struct {
	log hclog.Logger
	pid int

	mu     sync.Mutex
	w      *os.File // nil once closed
	broken bool
}

// startGuard starts the guard process from the agent's own executable, with
// stdout and stderr on nullFd; cg is the agent's parent cgroup (nil: none).
func startGuard(nullFd uintptr, runID string, cg *cgroup.Manager, log hclog.Logger) (*guard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the agent's executable for the guard process: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec(exe, append([]string{"mo-agent-guard", runID}, guardArgs(cg)...), &syscall.ProcAttr{
		Dir:   "/",
		Env:   append([]string{GuardEnv + "=1", "PATH=/usr/bin:/bin", "LC_ALL=C", "GOMAXPROCS=1"}, runtimeEnv()...),
		Files: []uintptr{pr.Fd(), nullFd, nullFd},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	_ = pr.Close()
	if err != nil {
		_ = pw.Close()
		return nil, fmt.Errorf("start the guard process: %w", err)
	}
	return &guard{log: log, pid: pid, w: pw}, nil
}

// add announces a new workload process group.
func (g *guard) add(pgid int) {
	if pgid > 1 {
		g.send("+" + strconv.Itoa(pgid))
	}
}

// announceExclusive announces the tag of an exclusive instance about to be
// forked: from now on the guard kills its processes when the lease lapses.
func (g *guard) announceExclusive(tag string) { g.send("x " + tag) }

// withdrawExclusive withdraws a tag whose fork failed.
func (g *guard) withdrawExclusive(tag string) { g.send("u " + tag) }

// addExclusive announces the group of a forked exclusive instance.
func (g *guard) addExclusive(pgid int, tag string) {
	if pgid > 1 {
		g.send("X " + strconv.Itoa(pgid) + " " + tag)
	}
}

// working reports whether the guard runs and its pipe is whole.
func (g *guard) working() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.w != nil && !g.broken
}

// remove announces that a process group is gone.
func (g *guard) remove(pgid int) {
	if pgid > 1 {
		g.send("-" + strconv.Itoa(pgid))
	}
}

// restarting tells the guard that the agent leaves for a restart: its
// end kills nothing then (see GuardEnv).
func (g *guard) restarting() { g.send("R") }

// setLease tells the guard when the lease lapses (boottime).
func (g *guard) setLease(until time.Duration) {
	g.send("L " + strconv.FormatInt(int64(until), 10))
}

func (g *guard) send(line string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.w == nil || g.broken {
		return
	}
	_ = g.w.SetWriteDeadline(time.Now().Add(guardWriteTimeout))
	if _, err := g.w.WriteString(line + "\n"); err != nil {
		g.broken = true
		g.log.Error("the guard process is gone: background processes of workloads will outlive a killed agent until it restarts", "guard_pid", g.pid, "error", err)
	}
}

// close closes the guard's stdin, so it kills the groups still announced
// (none after a clean shutdown) and exits, and reaps it until ctx is done.
func (g *guard) close(ctx context.Context) {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.w != nil {
		_ = g.w.Close()
		g.w = nil
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := reap(g.pid); err != nil && !errors.Is(err, syscall.ECHILD) {
			g.log.Warn("cannot reap the guard process", "guard_pid", g.pid, "error", err)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
