package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
// The run's monitor (monitor.go) forks and execs it.
func (s *supervisor) spawnRun(sl *slot, req api.StartRequest, lf *life) (api.AgentWorkload, bool, error) {
	in := &instance{
		id:        req.ID,
		gen:       req.Generation,
		startedAt: time.Now().UTC(),
		dir:       filepath.Join(s.cfg.workDir, req.ID),
		exclusive: req.Exclusive,
		done:      make(chan struct{}),
		detach:    make(chan struct{}),
		detached:  make(chan struct{}),
	}
	s.attachLife(in, req, lf)
	in.tag = s.instanceTag(in)
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
	spec := monitorSpec{
		Version: monitorVersion,
		ID:      in.id,
		Gen:     in.gen,
		Path:    path,
		Argv:    append([]string{req.Command}, req.Args...),
		Env:     env,
		Tag:     in.tag,
		Socket:  socketName(in.gen),
		LogMax:  s.cfg.logMax,
		BootID:  s.cfg.bootID,
	}

	s.forkMu.RLock()
	if s.closed.Load() {
		s.forkMu.RUnlock()
		if in.run == 0 {
			_ = out.Close()
		}
		return api.AgentWorkload{}, false, errShuttingDown
	}
	if in.exclusive {
		// Last look at the lease, just before the fork; the refusal is
		// recorded as this generation's failed instance, so the leader
		// sees that it never ran. The guard learns the tag before the fork,
		// so that an agent paused right after it cannot leave it unguarded.
		if err := s.leaseAdmits(in, req); err != nil {
			s.forkMu.RUnlock()
			return s.failed(sl, in, req, err, false)
		}
		s.guard.announceExclusive(in.tag)
	}
	if err := s.createCgroup(in, req.Resources); err != nil { // isolation.go
		s.forkMu.RUnlock()
		if in.exclusive {
			s.guard.withdrawExclusive(in.tag)
		}
		return s.failed(sl, in, req, err, false)
	}
	spec.Cgroup = s.monitorCgroup(in)
	link, started, pr, err := s.startMonitor(in, spec)
	if err != nil {
		s.forkMu.RUnlock()
		s.dropCgroup(in)
		if in.exclusive {
			s.guard.withdrawExclusive(in.tag)
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return s.failed(sl, in, req, fmt.Errorf("exec %q: %w", path, err), isCommandFault(err))
		}
		return s.failed(sl, in, req, err, false)
	}
	pid := started.PID
	s.mu.Lock()
	in.pid = pid
	in.pidStart = started.Start
	in.session = started.Session
	in.mon = link
	in.pr = pr
	in.drained = make(chan struct{})
	in.state = api.InstanceRunning
	sl.inst = in
	s.leaders[link.pid] = in
	s.notifyLocked()
	w := in.view()
	s.mu.Unlock()
	s.wg.Add(2)
	s.forkMu.RUnlock()
	s.guard.add(pid)
	if in.exclusive {
		s.guard.addExclusive(pid, in.tag)
	}

	if err := writeRecord(recordPath(in.dir, in.gen), s.recordOf(in)); err != nil {
		s.log.Warn("cannot record the workload's process group; a restarted agent will neither kill nor adopt it", "id", in.id, "error", err)
	}
	go s.copyOutput(pr, out, in.drained)
	go s.supervise(in)
	s.log.Info("workload started", "id", in.id, "name", req.Name, "generation", in.gen, "pid", pid, "command", req.Command)
	return w, true, nil
}

// recordOf is the record of run in (see procRecord).
func (s *supervisor) recordOf(in *instance) procRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec := procRecord{
		ID: in.id, Generation: in.gen, PGID: in.pid, StartTime: in.pidStart, Session: in.session, BootID: s.cfg.bootID,
		Version: monitorVersion, Socket: socketName(in.gen), Tag: in.tag, StartedAt: in.startedAt,
		Run: in.run, Begun: in.begun, State: stateRecordRunning,
	}
	if in.mon != nil {
		rec.MonitorPID = in.mon.pid
		if st, err := readProcStat(in.mon.pid); err == nil {
			rec.MonitorStart = st.startTime
		}
	}
	if in.cg != nil {
		rec.Cgroup = in.cg.Name()
	}
	if lf := in.life; lf != nil {
		req := lf.req
		rec.Request = &req
		rec.Ports = maps.Clone(lf.ports)
		rec.Restarts, rec.Attempts, rec.LastBegun = lf.restarts, lf.attempts, lf.lastBegun
	}
	return rec
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
// until every writer has closed the pipe (or supervise closes it, or a
// detach stops it with a read deadline). The file stays open for a restart
// in place; the end of the life closes it.
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

// supervise follows the run through its monitor until it ends, and records
// the outcome; or, when the agent leaves for a restart, hands the run over to
// its monitor (detachRun).
func (s *supervisor) supervise(in *instance) {
	defer s.wg.Done()
	checks := s.startChecks(in)
	ex := in.adoptedExit
	detach := in.detach
	for ex == nil {
		select {
		case msg, ok := <-in.mon.msgs:
			if !ok {
				goto ended
			}
			if msg.Op == opExit && msg.Exit != nil {
				ex = msg.Exit
			}
		case <-detach:
			s.mu.RLock()
			stopping := in.stopping
			s.mu.RUnlock()
			if stopping {
				detach = nil // a stop under way is seen to its end (Detach waits for it)
				continue
			}
			checks.stop()
			s.detachRun(in)
			return
		}
	}
ended:
	checks.stop()
	s.endRun(in, ex)
}

// endRun records the end of run in, as its monitor reported it (ex), or
// with its exit status lost when the monitor went without a word (nil).
func (s *supervisor) endRun(in *instance, ex *exitRecord) {
	var code *int
	var errMsg string
	if ex == nil {
		ex = readExitRecord(in) // the monitor may have written it before it died
	}
	gone := false
	monOOM := false
	if ex == nil {
		errMsg = fmt.Sprintf("exit status lost: the workload's monitor (pid %d) ended without reporting it", in.mon.pid)
		s.log.Error("cannot collect the workload's exit status", "id", in.id, "pid", in.pid, "error", errMsg)
		killRecordedGroup(in.pid, in.pidStart)
		s.killCgroup(in)
	} else {
		code, errMsg, gone, monOOM = ex.Code, ex.Error, ex.GroupGone, ex.OOM
		if errMsg != "" {
			s.log.Error("cannot collect the workload's exit status", "id", in.id, "pid", in.pid, "error", errMsg)
		}
	}
	if ex != nil && !gone {
		s.log.Error("processes of the workload's group are still alive after SIGKILL", "id", in.id, "pgid", in.pid)
	}
	oom := s.killLeftBehind(in) || monOOM // isolation.go: its cgroup, or the processes carrying its tag
	select {
	case <-in.drained:
	case <-time.After(drainTimeout):
		_ = in.pr.Close() // a process outside the group still holds the pipe
		<-in.drained
	}
	// The monitor goes once it has our bye; it is reaped in the background.
	_ = in.mon.send(monMsg{Op: opBye})
	s.wg.Add(1) // the caller is counted: Shutdown cannot be past its wait
	go func() {
		defer s.wg.Done()
		in.mon.awaitGone(monitorGoneTimeout)
		s.mu.Lock()
		delete(s.leaders, in.mon.pid)
		s.mu.Unlock()
	}()
	if gone {
		s.guard.remove(in.pid)
		_ = os.Remove(recordPath(in.dir, in.gen))
		_ = os.Remove(exitPath(in.dir, in.gen))
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
	if ex != nil && !ex.At.IsZero() && in.adoptedExit == ex {
		in.exitedAt = ex.At // it ended while no agent ran
	}
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

// readExitRecord reads the exit record of run in, if its monitor wrote one
// for this very process.
func readExitRecord(in *instance) *exitRecord {
	data, err := os.ReadFile(exitPath(in.dir, in.gen))
	if err != nil {
		return nil
	}
	var ex exitRecord
	if json.Unmarshal(data, &ex) != nil || ex.PID != in.pid || ex.StartTime != in.pidStart || ex.Generation != in.gen {
		return nil
	}
	return &ex
}

func derefOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}
