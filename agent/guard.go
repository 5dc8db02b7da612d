package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// guardScript runs in a small sh process, the guard, started by the agent.
// The agent announces each workload process group on the guard's stdin
// ("+PGID" once started, "-PGID" once gone). When stdin reaches EOF, because
// the agent has exited for whatever reason, SIGKILL included, the guard kills
// every group still announced. Pdeathsig only reaches a workload's main
// process; the guard takes its background processes along too, so that a
// killed agent really is a dead node. It ignores the usual termination
// signals and lives in its own process group.
const guardScript = `trap '' HUP INT TERM QUIT PIPE
set -f
groups=' '
while IFS= read -r line; do
	case "$line" in
	+[0-9]*) groups="$groups${line#+} " ;;
	-[0-9]*) g=${line#-}
		case "$groups" in *" $g "*) groups="${groups%%" $g "*} ${groups#*" $g "}" ;; esac ;;
	esac
done
for g in $groups; do
	[ "$g" -gt 1 ] && kill -9 "-$g" 2>/dev/null
done
# Processes that left their group (setsid, daemons) still carry the run's tag.
if [ -n "$1" ]; then
	set +f
	for d in /proc/[0-9]*; do
		if tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -q "^` + instanceEnv + `=$1:"; then
			kill -9 "${d#/proc/}" 2>/dev/null
		fi
	done
fi
exit 0
`

// guardWriteTimeout bounds a write to the guard's pipe.
const guardWriteTimeout = time.Second

// guard is the agent's side of the guard process.
type guard struct {
	log hclog.Logger
	pid int

	mu     sync.Mutex
	w      *os.File // nil once closed
	broken bool
}

// startGuard starts the guard process with stdout and stderr on nullFd.
func startGuard(nullFd uintptr, runID string, log hclog.Logger) (*guard, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"mo-agent-guard", "-c", guardScript, "mo-agent-guard", runID}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
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
func (g *guard) add(pgid int) { g.send('+', pgid) }

// remove announces that a process group is gone.
func (g *guard) remove(pgid int) { g.send('-', pgid) }

func (g *guard) send(op byte, pgid int) {
	if g == nil || pgid <= 1 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.w == nil || g.broken {
		return
	}
	line := strconv.AppendInt([]byte{op}, int64(pgid), 10)
	line = append(line, '\n')
	_ = g.w.SetWriteDeadline(time.Now().Add(guardWriteTimeout))
	if _, err := g.w.Write(line); err != nil {
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
