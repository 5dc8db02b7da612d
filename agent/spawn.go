package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// spawn starts a new instance of req in slot sl (whose op the caller holds).
func (s *supervisor) spawn(sl *slot, req api.StartRequest) (api.AgentWorkload, bool, error) {
	return s.spawnRun(sl, req, nil)
}

// spawnRun starts a run of req in slot sl (whose op the caller holds): the
// first of a generation when lf is nil, else a restart in place of lf's.
func (s *supervisor) spawnRun(sl *slot, req api.StartRequest, lf *life) (api.AgentWorkload, bool, error) {
	in := &instance{
		id:        req.ID,
		gen:       req.Generation,
		startedAt: time.Now().UTC(),
		dir:       filepath.Join(s.cfg.workDir, req.ID),
		exclusive: req.Exclusive,
		done:      make(chan struct{}),
	}
	s.attachLife(in, req, lf)
	if err := ensureDir(in.dir); err != nil {
		return s.failed(sl, in, req, fmt.Errorf("create workload dir: %w", err), false)
	}
	out, err := s.openOutput(in)
	if err != nil {
		return s.failed(sl, in, req, fmt.Errorf("create output.log: %w", err), false)
	}
	in.out = out
	path, err := resolveCommand(req.Command)
	if err != nil {
		return s.failed(sl, in, req, err, true)
	}
	env, err := s.runEnv(in)
	if err != nil {
		return s.failed(sl, in, req, err, false)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return s.failed(sl, in, req, fmt.Errorf("create output pipe: %w", err), false)
	}
	wfd := pw.Fd()
	attr := &syscall.ProcAttr{
		Dir:   in.dir,
		Env:   env,
		Files: []uintptr{s.nullFd, wfd, wfd},
		// Own process group, so that stop reaches every process of the
		// workload; SIGKILL when the agent dies, so a dead agent is a dead
		// node. (Pdeathsig fires when the forking thread exits; Go threads
		// only exit when a goroutine locked to one returns, never here.)
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	argv := append([]string{req.Command}, req.Args...)

	s.forkMu.RLock()
	if s.closed.Load() {
		s.forkMu.RUnlock()
		_ = pr.Close()
		_ = pw.Close()
		_ = out.Close()
		return api.AgentWorkload{}, false, errShuttingDown
	}
	if in.exclusive {
		// Last look at the lease, just before the fork; the refusal is
		// recorded as this generation's failed instance, so the leader
		// sees that it never ran. The guard learns the tag before the fork,
		// so that an agent paused right after it cannot leave it unguarded.
		if err := s.leaseAdmits(in, req); err != nil {
			s.forkMu.RUnlock()
			_ = pr.Close()
			_ = pw.Close()
			return s.failed(sl, in, req, err, false)
		}
		s.guard.announceExclusive(s.instanceTag(in))
	}
	pid, err := s.forkExec(in, req.Resources, path, argv, attr) // isolation.go: cgroup, or plain ForkExec
	_ = pw.Close()
	if err != nil {
		s.forkMu.RUnlock()
		_ = pr.Close()
		if in.exclusive {
			s.guard.withdrawExclusive(s.instanceTag(in))
		}
		return s.failed(sl, in, req, fmt.Errorf("exec %q: %w", path, err), isCommandFault(err))
	}
	s.mu.Lock()
	in.pid = pid
	in.state = api.InstanceRunning
	sl.inst = in
	s.leaders[pid] = in
	s.notifyLocked()
	w := in.view()
	s.mu.Unlock()
	s.wg.Add(2)
	s.forkMu.RUnlock()
	s.guard.add(pid)
	if in.exclusive {
		s.guard.addExclusive(pid, s.instanceTag(in))
	}

	if err := writeProcRecord(recordPath(in.dir, in.gen), in.id, in.gen, pid, s.cfg.bootID); err != nil {
		s.log.Warn("cannot record the workload's process group; a restarted agent will not kill it", "id", in.id, "error", err)
	}
	drained := make(chan struct{})
	go s.copyOutput(pr, out, drained)
	go s.supervise(in, pr, drained)
	s.log.Info("workload started", "id", in.id, "name", req.Name, "generation", in.gen, "pid", pid, "command", req.Command)
	return w, true, nil
}

// failed records an instance that could not start. commandFault says whether
// the command is to blame (422) rather than the agent (500).
func (s *supervisor) failed(sl *slot, in *instance, req api.StartRequest, cause error, commandFault bool) (api.AgentWorkload, bool, error) {
	reason := cause.Error()
	if in.out != nil {
		_, _ = fmt.Fprintf(in.out, "agent: cannot start workload: %s\n", reason)
		_ = in.out.Close()
	}
	s.mu.Lock()
	in.state = api.InstanceFailed
	in.errMsg = reason
	in.exitedAt = time.Now().UTC()
	sl.inst = in
	s.endLifeLocked(in)
	close(in.done)
	s.notifyLocked()
	w := in.view()
	s.mu.Unlock()
	s.log.Warn("workload could not start", "id", in.id, "generation", in.gen, "command", req.Command, "error", reason)
	s.pruneEnded()
	if commandFault {
		return w, false, &startError{reason: reason}
	}
	return w, false, fmt.Errorf("cannot start workload %s: %w", in.id, cause)
}

// copyOutput copies the workload's stdout and stderr into its output file
// until every writer has closed the pipe (or supervise closes it). The file
// stays open for a restart in place; the end of the life closes it.
func (s *supervisor) copyOutput(pr *os.File, out *cappedFile, drained chan<- struct{}) {
	defer s.wg.Done()
	defer close(drained)
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			_, _ = out.Write(buf[:n])
		}
		if err != nil {
			_ = pr.Close()
			return
		}
	}
}

// supervise waits for the instance's main process to end, kills and reaps
// what is left of its group, and records the outcome.
func (s *supervisor) supervise(in *instance, pr *os.File, drained <-chan struct{}) {
	defer s.wg.Done()
	var code *int
	var errMsg string
	var ws syscall.WaitStatus
	var rerr error
	checks := s.startChecks(in)
	werr := waitExited(in.pid)
	if werr == nil {
		in.sigMu.Lock()
		// The main process is a zombie, so its pid, and with it the group
		// id, cannot be reused while the rest of the group is killed.
		_ = syscall.Kill(-in.pid, syscall.SIGKILL)
		ws, rerr = reap(in.pid)
		in.reaped = true
		in.sigMu.Unlock()
	} else {
		// Someone else reaped it (ECHILD): the pid is no longer ours to signal.
		ws, rerr = reap(in.pid)
		in.sigMu.Lock()
		in.reaped = true
		in.sigMu.Unlock()
	}
	checks.stop()
	if werr != nil || rerr != nil {
		errMsg = fmt.Sprintf("exit status lost: %v", errors.Join(werr, rerr))
		s.log.Error("cannot collect the workload's exit status", "id", in.id, "pid", in.pid, "error", errMsg)
	} else {
		c := exitCode(ws)
		code = &c
	}
	s.mu.Lock()
	delete(s.leaders, in.pid)
	s.mu.Unlock()

	gone := reapGroup(in.pid, groupGoneTimeout)
	if !gone {
		s.log.Error("processes of the workload's group are still alive after SIGKILL", "id", in.id, "pgid", in.pid)
	}
	oom := s.killLeftBehind(in) // isolation.go: its cgroup, or the processes carrying its tag
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		_ = pr.Close() // a process outside the group still holds the pipe
		<-drained
	}
	if gone {
		s.guard.remove(in.pid)
		_ = os.Remove(recordPath(in.dir, in.gen))
	}

	// An exclusive instance that ends once the lease has lapsed was stopped
	// for it, by the agent or, while the agent was paused, by the guard.
	// (SIGKILL from the guard; one that exits by itself meanwhile has exited).
	lapsed := in.exclusive && s.cfg.lease != nil && boottime() >= s.cfg.lease.expiry() && code != nil && *code == 128+int(syscall.SIGKILL)
	s.mu.Lock()
	if errMsg == "" && (in.leaseStop || lapsed) {
		errMsg = leaseLapsedMsg
	}
	errMsg = in.oomEnded(oom, errMsg)
	in.exitCode = code
	in.errMsg = errMsg
	in.exitedAt = time.Now().UTC()
	if in.stopping || lapsed {
		in.state = api.InstanceStopped
	} else {
		in.state = api.InstanceExited
	}
	s.afterRunLocked(in) // may restart it in place, or fail it
	state := in.state
	close(in.done)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("workload ended", "id", in.id, "generation", in.gen, "pid", in.pid, "state", state, "exit_code", derefOr(code, -1))
	s.pruneEnded()
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}
