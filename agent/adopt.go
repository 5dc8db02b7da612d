package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A restart of the agent on the same data dir keeps its workloads: on
// SIGTERM with Config.RestartGrace set, the agent leaves for a restart
// (supervisor.Detach) instead of stopping them, and the next agent adopts
// them (supervisor.adoptPrevious).
//
// Leaving: new starts are refused; exclusive instances are stopped (their
// lease cannot be renewed while no agent runs, so they may not outlive it);
// instances being stopped are stopped to the end; every other running run
// stops reading its output (its monitor spools it from then on), rewrites its
// record with until when it may be adopted and where its output.log stands,
// and tells its monitor to wait for a new agent; an instance waiting for its
// restart in place is recorded as such, and so is an ended one (the leader
// may not have seen its end yet). The guard is told not to kill anything
// when the agent's pipe closes.
//
// Adopting: a record is adopted only if it was left for a restart, its
// deadline has not passed, it comes from this boot and speaks a known
// version, and its monitor is the recorded process (pid and start time) and
// answers on its socket as that process (SO_PEERCRED) with the recorded
// workload (pid, start time, generation). The instance then goes on as if the
// agent had never left: same id, generation, pid, started_at, ports and
// restart count, its output (what the monitor spooled meanwhile appended),
// health checks and restart policy; a run that ended meanwhile is reported
// with the exit status its monitor kept. Anything else is left over: killed
// only where provably ours, as before.

// States of an instance in its record.
const (
	stateRecordRunning    = "running"
	stateRecordRestarting = "restarting"
	stateRecordEnded      = "ended"
)

// detachAckTimeout bounds the wait for a monitor to take over a run.
const detachAckTimeout = 2 * time.Second

// Detach leaves for a restart (see above): the workloads go on under their
// monitors, which wait up to grace for the next agent. It returns once every
// run has been handed over or ctx is done.
func (s *supervisor) Detach(ctx context.Context, grace time.Duration) error {
	if !s.finishing.CompareAndSwap(false, true) {
		return nil
	}
	s.forkMu.Lock()
	s.closed.Store(true)
	s.detaching.Store(true)
	s.detachGrace = grace
	s.forkMu.Unlock()
	s.stopOnce.Do(func() { close(s.stopBG) })
	<-s.bgDone
	close(s.stopFollow)

	var keep, exclusive, stopping []*instance
	s.mu.Lock()
	for _, sl := range s.slots {
		in := sl.inst
		if in == nil || in.state != api.InstanceRunning {
			continue
		}
		switch {
		case in.stopping:
			stopping = append(stopping, in)
		case in.exclusive:
			in.stopping = true
			exclusive = append(exclusive, in)
		default:
			keep = append(keep, in)
		}
	}
	s.mu.Unlock()
	s.log.Info("leaving for a restart: the workloads keep running for the next agent", "workloads", len(keep), "grace", grace)
	if len(exclusive) > 0 {
		s.log.Info("stopping the exclusive workloads: their lease cannot be renewed while no agent runs", "count", len(exclusive))
	}
	// The guard first: should the agent die before every monitor has been
	// told, those monitors kill their workloads, and the guard does not
	// kill the others.
	s.guard.restarting()
	for _, in := range keep {
		close(in.detach)
	}
	var errs []error
	errs = append(errs, s.stopAll(ctx, exclusive))
	for _, in := range keep {
		select {
		case <-in.detached:
		case <-in.done:
		case <-ctx.Done():
		}
	}
	if left := waitAll(ctx, stopping); len(left) > 0 {
		errs = append(errs, fmt.Errorf("%d workloads being stopped were not confirmed gone", len(left)))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, errors.New("the workloads were not all handed over before the shutdown timeout"))
	}
	s.persistIdle(grace)
	// The guard ends at once, killing nothing (restarting); it is reaped
	// in the background, the agent does not wait for it to leave.
	gctx, gcancel := context.WithTimeout(context.Background(), monitorGoneTimeout)
	go func() { defer gcancel(); s.guard.close(gctx) }()
	_ = s.devNull.Close()
	return errors.Join(errs...)
}

// detachRun hands run in over to its monitor; supervise calls it.
func (s *supervisor) detachRun(in *instance) {
	defer close(in.detached)
	// The monitor reads the pipe from now on: stop reading it first, with
	// everything read written to output.log.
	_ = in.pr.SetReadDeadline(time.Now())
	<-in.drained
	rec := s.recordOf(in)
	rec.AdoptBy = boottime() + s.detachGrace
	if in.out != nil {
		st := in.out.state()
		rec.Log = &st
	}
	if err := writeRecord(recordPath(in.dir, in.gen), rec); err != nil {
		s.log.Error("cannot record the workload for the next agent; it will not be adopted", "id", in.id, "error", err)
	}
	if err := in.mon.send(monMsg{Op: opRestart, GraceMS: max(s.detachGrace.Milliseconds(), 1)}); err != nil {
		s.log.Error("cannot tell the workload's monitor of the restart; it will kill the workload", "id", in.id, "monitor_pid", in.mon.pid, "error", err)
	} else {
		t := time.NewTimer(detachAckTimeout)
	wait:
		for {
			select {
			case msg, ok := <-in.mon.msgs:
				if !ok || msg.Op == opOK {
					break wait
				}
			case <-t.C:
				s.log.Warn("the workload's monitor did not acknowledge the restart", "id", in.id, "monitor_pid", in.mon.pid)
				break wait
			}
		}
		t.Stop()
	}
	in.mon.close()
	s.log.Info("workload left running for the next agent", "id", in.id, "generation", in.gen, "pid", in.pid)
}

// persistIdle records the instances without a process: those waiting for a
// restart in place, for the next agent to restart them, and those that have
// ended, for it to show them as they were (the leader may not have seen
// their end yet). An exclusive one waiting to restart is not handed over:
// its lease does not outlive the agent.
func (s *supervisor) persistIdle(grace time.Duration) {
	var idle []*instance
	s.mu.Lock()
	for _, sl := range s.slots {
		in := sl.inst
		switch {
		case in == nil || in.life == nil:
		case in.state == api.InstanceRestarting && in.exclusive:
			s.cancelRestartLocked(in, "the agent is restarting, and the lease of an exclusive workload does not outlive it")
		case in.state == api.InstanceRestarting && !in.life.over:
			idle = append(idle, in)
		case !in.live():
			idle = append(idle, in)
		}
	}
	s.mu.Unlock()
	for _, in := range idle {
		rec := s.recordOf(in)
		s.mu.RLock()
		rec.MonitorPID, rec.MonitorStart = 0, 0
		rec.AdoptBy = boottime() + grace
		rec.Reason = in.reason
		rec.ExitCode = in.exitCode
		if in.state == api.InstanceRestarting {
			rec.State = stateRecordRestarting
			rec.RestartAt = in.life.restartAt
		} else {
			rec.State = stateRecordEnded
			rec.EndState, rec.Error, rec.ExitedAt = in.state, in.errMsg, in.exitedAt
		}
		s.mu.RUnlock()
		if in.out != nil {
			st := in.out.state()
			rec.Log = &st
		}
		if err := ensureDir(in.dir); err != nil {
			continue
		}
		if err := writeRecord(recordPath(in.dir, in.gen), rec); err != nil {
			s.log.Error("cannot record a workload for the next agent", "id", rec.ID, "state", rec.State, "error", err)
		} else if rec.State == stateRecordRestarting {
			s.log.Info("workload waiting to restart left for the next agent", "id", rec.ID, "generation", rec.Generation)
		}
	}
}

// adoptPrevious adopts what the previous run of the agent on this data dir
// left for it and kills what it left over (see above). It returns the
// workload dirs and cgroups adopted, which the caller keeps.
func (s *supervisor) adoptPrevious() (dirs, cgroups map[string]bool) {
	dirs, cgroups = map[string]bool{}, map[string]bool{}
	paths, _ := filepath.Glob(filepath.Join(s.cfg.workDir, "*", "proc-*.json"))
	killed := 0
	for _, path := range paths {
		rec, err := readRecord(path)
		if err != nil {
			s.log.Warn("cannot read a record left by the previous run", "record", path, "error", err)
			_ = os.Remove(path)
			continue
		}
		dir := filepath.Dir(path)
		if why := s.adoptable(rec, path); why != "" {
			if rec.AdoptBy > 0 {
				s.log.Warn("not adopting a workload left by the previous run", "id", rec.ID, "generation", rec.Generation, "reason", why)
			}
		} else if err := s.adopt(rec, dir); err != nil {
			s.log.Warn("not adopting a workload left by the previous run", "id", rec.ID, "generation", rec.Generation, "reason", err)
		} else {
			dirs[filepath.Base(dir)] = true
			if rec.Cgroup != "" {
				cgroups[rec.Cgroup] = true
			}
			continue
		}
		if k, err := killLeftoverRecord(rec, s.cfg.bootID, s.log); err != nil {
			s.log.Warn("cannot check a workload left by the previous run", "record", path, "error", err)
		} else if k {
			killed++
		}
		_ = os.Remove(path)
	}
	if killed > 0 {
		s.log.Warn("killed workloads left running by the previous run of this agent", "count", killed)
	}
	return dirs, cgroups
}

// adoptable says why rec cannot be adopted ("" if it may be).
func (s *supervisor) adoptable(rec procRecord, path string) string {
	switch {
	case rec.AdoptBy == 0:
		return "not left for a restart"
	case rec.Version != monitorVersion:
		return fmt.Sprintf("recorded by an agent of another version (%d, this one knows %d)", rec.Version, monitorVersion)
	case rec.BootID != s.cfg.bootID:
		return "recorded before the machine rebooted"
	case boottime() >= rec.AdoptBy:
		return "its restart grace has passed"
	case rec.Request == nil || rec.Request.ID != rec.ID || filepath.Base(filepath.Dir(path)) != rec.ID || validWorkloadID(rec.ID) != nil:
		return "incomplete record"
	case rec.State != stateRecordRunning && rec.State != stateRecordRestarting && rec.State != stateRecordEnded:
		return fmt.Sprintf("unknown state %q", rec.State)
	case rec.Request.Generation != rec.Generation || recordPath(filepath.Dir(path), rec.Generation) != path:
		return "the record's generation does not match"
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.slots[rec.ID] != nil {
		return "another record of the same workload was adopted"
	}
	return ""
}

// adopt takes over one instance left for a restart.
func (s *supervisor) adopt(rec procRecord, dir string) error {
	var (
		link  *monitorLink
		hello monMsg
		pr    *os.File
	)
	if rec.State == stateRecordRunning {
		st, err := readProcStat(rec.MonitorPID)
		if err != nil || st.startTime != rec.MonitorStart || st.state == 'Z' || rec.MonitorPID <= 1 {
			return fmt.Errorf("its monitor (pid %d) is gone", rec.MonitorPID)
		}
		conn, err := dialMonitor(dir, rec.Socket, rec.MonitorPID)
		if err != nil {
			return fmt.Errorf("cannot reach its monitor: %v", err)
		}
		link = newLink(conn, rec.MonitorPID, false)
		if err := link.send(monMsg{Op: opAdopt, Version: monitorVersion}); err != nil {
			link.close()
			return fmt.Errorf("cannot talk to its monitor: %v", err)
		}
		hello, pr, err = recvMsg(conn, monitorHelloTimeout)
		switch {
		case err != nil:
			link.close()
			return fmt.Errorf("its monitor did not answer: %v", err)
		case hello.Op != opHello || pr == nil:
			link.close()
			return fmt.Errorf("its monitor answered %q", hello.Op)
		case hello.ID != rec.ID || hello.Gen != rec.Generation || hello.PID != rec.PGID || hello.Start != rec.StartTime:
			_ = pr.Close()
			link.close()
			return fmt.Errorf("its monitor runs another process (%s generation %d, pid %d)", hello.ID, hello.Gen, hello.PID)
		}
		if hello.Exit == nil {
			if st, err := readProcStat(rec.PGID); err != nil || st.startTime != rec.StartTime {
				_ = pr.Close()
				link.close()
				return fmt.Errorf("its workload (pid %d) is not the recorded process", rec.PGID)
			}
		}
	}

	req := *rec.Request
	lf := &life{req: req, cancel: make(chan struct{}), ports: rec.Ports, attempts: rec.Attempts, restarts: rec.Restarts,
		lastBegun: rec.LastBegun, restartAt: rec.RestartAt}
	lf.env = s.lifeEnv(lf)
	in := &instance{
		id:        rec.ID,
		gen:       rec.Generation,
		startedAt: rec.StartedAt,
		dir:       dir,
		done:      make(chan struct{}),
		detach:    make(chan struct{}),
		detached:  make(chan struct{}),
		tag:       rec.Tag,
		pid:       rec.PGID,
		pidStart:  rec.StartTime,
		session:   rec.Session,
		life:      lf,
		run:       rec.Run,
		begun:     rec.Begun,
		reason:    rec.Reason,
		exitCode:  rec.ExitCode,
	}
	out, err := openCappedFile(filepath.Join(dir, "output.log"), s.cfg.logMax, rec.Log)
	if err != nil {
		if pr != nil {
			_ = pr.Close()
		}
		link.close()
		return fmt.Errorf("cannot open its output.log: %v", err)
	}
	lf.out, in.out = out, out
	spool := filepath.Join(dir, spoolName)
	if _, err := os.Stat(spool); err == nil {
		if err := out.appendFile(spool); err != nil {
			s.log.Warn("cannot append the output kept while no agent ran", "id", rec.ID, "error", err)
		}
		_ = os.Remove(spool)
	}
	if rec.Cgroup != "" && s.cfg.cgroups != nil && rec.State == stateRecordRunning {
		if g, err := s.cfg.cgroups.Load(rec.Cgroup); err == nil {
			in.cg = g
		} else {
			s.log.Warn("cannot find the adopted workload's cgroup", "id", rec.ID, "cgroup", rec.Cgroup, "error", err)
		}
	}
	if in.cg != nil && rec.State == stateRecordRunning && hello.Exit == nil {
		if pids, err := in.cg.Pids(); err != nil || !slices.Contains(pids, rec.PGID) {
			_ = pr.Close()
			link.close()
			_ = out.Close()
			return fmt.Errorf("its workload (pid %d) is not in its cgroup %s", rec.PGID, rec.Cgroup)
		}
	}
	sl := &slot{inst: in}
	if rec.State == stateRecordEnded {
		// Shown as it was; nothing runs, nothing is held.
		in.state, in.errMsg, in.exitedAt = rec.EndState, rec.Error, rec.ExitedAt
		lf.over = true
		close(lf.cancel)
		lf.ports = nil
		_ = out.Close()
		close(in.done)
		s.mu.Lock()
		s.slots[in.id] = sl
		s.notifyLocked()
		s.mu.Unlock()
		_ = os.Remove(recordPath(dir, in.gen))
		return nil
	}
	if s.cfg.ports != nil {
		s.cfg.ports.claim(lf.ports)
	}
	if rec.State == stateRecordRestarting {
		in.state = api.InstanceRestarting
		s.noteOutput(in, "[agent: restarted; the workload's restart in place goes on]")
		s.mu.Lock()
		s.slots[in.id] = sl
		s.notifyLocked()
		s.mu.Unlock()
		s.wg.Add(1)
		go s.restartAfter(in, max(rec.RestartAt-boottime(), 0))
		_ = os.Remove(recordPath(dir, in.gen))
		s.log.Info("adopted a workload waiting to restart", "id", in.id, "generation", in.gen, "restarts", lf.restarts)
		return nil
	}

	in.mon = link
	in.pr = pr
	in.drained = make(chan struct{})
	in.adoptedExit = hello.Exit
	in.state = api.InstanceRunning
	if hello.Exit == nil {
		s.noteOutput(in, fmt.Sprintf("[agent: restarted; the workload kept running (pid %d)]", in.pid))
	} else {
		s.noteOutput(in, "[agent: restarted; the workload ended while no agent ran]")
	}
	s.mu.Lock()
	s.slots[in.id] = sl
	s.leaders[link.pid] = in
	s.notifyLocked()
	s.mu.Unlock()
	s.guard.add(in.pid)
	rec.AdoptBy, rec.Log = 0, nil // adopted: a later death of this agent kills it, as for any other
	if err := writeRecord(recordPath(dir, in.gen), rec); err != nil {
		s.log.Warn("cannot rewrite the adopted workload's record", "id", in.id, "error", err)
	}
	go link.listen()
	s.wg.Add(2)
	go s.copyOutput(pr, out, in.drained)
	go s.supervise(in)
	s.log.Info("adopted a workload left running by the previous run of the agent", "id", in.id, "generation", in.gen,
		"pid", in.pid, "monitor_pid", link.pid, "ended", hello.Exit != nil)
	return nil
}
