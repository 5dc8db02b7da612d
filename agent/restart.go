package agent

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// A generation of a workload is one life: its first run, started by the
// leader, and the runs the agent starts in its place when the restart
// policy allows (restarts in place). The runs of a life share its
// directory, output.log, ports and restart count; each run is an instance
// of its own, with its own process group, pid and done channel, and the
// slot's instance is always the latest run.
//
// When a run ends by itself (not stopped), the agent decides:
//   - a batch run that exited 0 has completed: the life ends, exited;
//   - with no restart policy, or none left, the life ends as exited, or as
//     failed with the reason when the policy ran out;
//   - otherwise the instance shows restarting until its delay has passed,
//     then the next run starts. A stop, a newer generation or the agent's
//     shutdown calls a pending restart off.
//
// Whoever ends a life that is waiting to restart holds the workload's slot.

// life is what the runs of one generation share. Fields other than req,
// env and out are guarded by supervisor.mu; those are set by the first run
// before it is published and only read afterwards.
type life struct {
	req api.StartRequest // its Spec normalized
	env []string         // the runs' environment, without the instance tag
	out *cappedFile      // shared by the runs; closed when the life ends

	ports    map[string]int // by label; nil once given back
	attempts int            // restarts since the count was last reset
	restarts int            // restarts in place of the generation, all told
	endedAt  time.Duration  // boottime at which the latest run ended
	// lastBegun is the boottime at which the latest run started: an
	// exclusive restart needs a lease unbroken since then.
	lastBegun time.Duration
	restartAt time.Duration // boottime at which a pending restart in place is due
	cancel    chan struct{} // closed when the life ends
	over      bool
}

// lifeState is the supervisor's share of lifecycle bookkeeping.
type lifeState struct {
	checksOK   atomic.Uint64
	checksFail atomic.Uint64
	restarts   atomic.Uint64

	mu     sync.Mutex
	probes map[int]bool // exec check processes not yet reaped
}

// addProbe registers an exec check process, so the stray reaper leaves it
// to its checker; the caller holds forkMu shared.
func (l *lifeState) addProbe(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.probes == nil {
		l.probes = map[int]bool{}
	}
	l.probes[pid] = true
}

// removeProbe forgets a reaped exec check process.
func (l *lifeState) removeProbe(pid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.probes, pid)
}

// isProbe reports whether pid is an exec check process not yet reaped.
func (l *lifeState) isProbe(pid int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probes[pid]
}

// live reports whether the instance runs or waits to run again; call it
// under supervisor.mu.
func (in *instance) live() bool {
	return in.state == api.InstanceRunning || in.state == api.InstanceRestarting
}

// lifeView adds health, restarts, ports and reason to w; call it under
// supervisor.mu.
func (in *instance) lifeView(w *api.AgentWorkload) {
	w.Health = cmp.Or(in.health, api.HealthUnknown)
	w.Reason = in.reason
	if lf := in.life; lf != nil {
		w.Restarts = lf.restarts
		if len(lf.ports) > 0 {
			w.Ports = maps.Clone(lf.ports)
		}
	}
}

// attachLife gives a new run its life: lf for a restart in place, a new
// one (from req, its spec normalized) for the first run of a generation.
func (s *supervisor) attachLife(in *instance, req api.StartRequest, lf *life) {
	if lf == nil {
		req.Spec.Normalize() // the leader sends it normalized; defaults again, in case
		lf = &life{req: req, cancel: make(chan struct{})}
	} else {
		in.run = lf.restarts
	}
	in.life = lf
	in.begun = boottime()
}

// openOutput returns the run's output.log: created (truncated) by the first
// run of a generation, the same open file for a restart in place.
func (s *supervisor) openOutput(in *instance) (*cappedFile, error) {
	lf := in.life
	if lf.out == nil {
		out, err := createCappedFile(filepath.Join(in.dir, "output.log"), s.cfg.logMax)
		if err != nil {
			return nil, err
		}
		lf.out = out
	}
	return lf.out, nil
}

// runEnv returns the run's environment: the agent's (without the token),
// the submitted env, MO_PORT_<LABEL> for each port, and the instance tag.
// The first run of a generation picks the ports; a restart keeps them.
func (s *supervisor) runEnv(in *instance) ([]string, error) {
	lf := in.life
	if in.run == 0 {
		if len(lf.req.Ports) > 0 {
			if s.cfg.ports == nil {
				return nil, errors.New("this agent hands out no ports")
			}
			ports, err := s.cfg.ports.allocate(lf.req.Ports)
			if err != nil {
				return nil, err
			}
			lf.ports = ports // published with the instance, under s.mu
		}
		lf.env = s.lifeEnv(lf)
	}
	return append(slices.Clip(lf.env), in.tag), nil
}

// lifeEnv is the environment of lf's runs without the instance tag: the
// agent's, the submitted env and MO_PORT_<LABEL> for each of its ports.
func (s *supervisor) lifeEnv(lf *life) []string {
	extra := maps.Clone(lf.req.Env)
	if len(lf.ports) > 0 {
		if extra == nil {
			extra = map[string]string{}
		}
		for label, p := range lf.ports {
			extra[api.PortEnv(label)] = fmt.Sprint(p)
		}
	}
	return mergeEnv(s.baseEnv, extra)
}

// endLifeLocked ends in's life for good: its ports go back, its output is
// closed, a pending restart is called off. Idempotent; call it under s.mu.
func (s *supervisor) endLifeLocked(in *instance) {
	lf := in.life
	if lf == nil || lf.over {
		return
	}
	lf.over = true
	close(lf.cancel)
	if s.cfg.ports != nil {
		s.cfg.ports.release(lf.ports)
	}
	lf.ports = nil
	if in.out != nil {
		_ = in.out.Close()
	}
}

// restartResetAfter is how long a run must last for the restart count and
// delay to start again from zero.
func (s *supervisor) restartResetAfter() time.Duration {
	return cmp.Or(s.cfg.restartResetAfter, api.RestartResetAfter)
}

// restartDelay is the delay before restart n (1 for the first): the
// policy's delay, doubled for each restart before it, at most MaxDelay.
func restartDelay(p *api.RestartPolicy, n int) time.Duration {
	d, limit := p.Delay.D(), p.MaxDelay.D()
	if limit < d {
		limit = d
	}
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// runCause says how a run ended, for the output and the reason.
func runCause(in *instance) string {
	switch {
	case in.unhealthy != "":
		return in.unhealthy
	case in.reason != "": // recorded by whatever saw the run end, such as "OOM killed"
		return in.reason
	case in.errMsg != "":
		return in.errMsg
	case in.exitCode != nil:
		return fmt.Sprintf("exited with code %d", *in.exitCode)
	}
	return "ended"
}

// afterRunLocked decides, once a run has ended (state exited or stopped,
// exit code recorded), whether its life goes on: it turns the instance
// restarting and schedules the next run, or to failed when the restart
// policy has run out, or ends the life as it is. Call it under s.mu.
func (s *supervisor) afterRunLocked(in *instance) {
	lf := in.life
	if lf == nil {
		return
	}
	if in.unhealthy == "" {
		in.health = "" // nothing runs to be healthy
	}
	lf.endedAt = boottime()
	lf.lastBegun = in.begun
	p := lf.req.Restart
	completed := lf.req.Type == api.TypeBatch && in.exitCode != nil && *in.exitCode == 0 && in.errMsg == ""
	if in.state != api.InstanceExited || completed || p == nil || p.Attempts <= 0 {
		if in.state == api.InstanceExited && in.unhealthy != "" {
			in.reason = in.unhealthy
		}
		s.endLifeLocked(in)
		return
	}
	cause := runCause(in)
	if lf.endedAt-in.begun >= s.restartResetAfter() {
		lf.attempts = 0
	}
	if lf.attempts >= p.Attempts {
		in.state = api.InstanceFailed
		in.reason = fmt.Sprintf("restarted %s; last: %s", times(lf.attempts), cause)
		in.errMsg = in.reason
		s.noteOutput(in, "[agent: not restarting: "+in.reason+"]")
		s.log.Warn("workload restarted too often: failed", "id", in.id, "generation", in.gen, "reason", in.reason)
		s.endLifeLocked(in)
		return
	}
	lf.attempts++
	lf.restarts++
	delay := restartDelay(p, lf.attempts)
	in.state = api.InstanceRestarting
	in.reason = cause
	in.exitedAt = time.Time{}
	lf.restartAt = boottime() + delay
	s.noteOutput(in, fmt.Sprintf("[agent: restart %d of %d in %s: %s]", lf.attempts, p.Attempts, delay, cause))
	s.log.Info("restarting workload in place", "id", in.id, "generation", in.gen, "attempt", lf.attempts, "of", p.Attempts, "delay", delay, "cause", cause)
	s.wg.Add(1) // the caller, a supervise goroutine, is counted: Shutdown cannot be past its wait
	go s.restartAfter(in, delay)
}

// noteOutput appends an agent line to the instance's output.
func (s *supervisor) noteOutput(in *instance, line string) {
	if in.out != nil {
		_, _ = in.out.Write([]byte(line + "\n"))
	}
}

// restartAfter starts the next run of in's life after delay, unless the
// restart is called off meanwhile.
func (s *supervisor) restartAfter(in *instance, delay time.Duration) {
	defer s.wg.Done()
	lf := in.life
	t := time.NewTimer(delay)
	defer t.Stop()
	shutdown := false
	select {
	case <-t.C:
	case <-lf.cancel:
		return
	case <-s.stopBG:
		shutdown = true
	}
	sl, err := s.acquire(in.id, false)
	if err != nil {
		return
	}
	defer s.release(in.id, sl)
	s.mu.Lock()
	if sl.inst != in || in.state != api.InstanceRestarting {
		s.mu.Unlock()
		return
	}
	if s.detaching.Load() {
		s.mu.Unlock()
		return // the agent leaves for a restart: the next one restarts it (adopt.go)
	}
	if shutdown || s.closed.Load() {
		s.cancelRestartLocked(in, "the agent is shutting down")
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.lifecycle.restarts.Add(1)
	w, _, err := s.spawnRun(sl, lf.req, lf)
	switch {
	case errors.Is(err, errShuttingDown) && s.detaching.Load():
	case errors.Is(err, errShuttingDown):
		s.mu.Lock()
		if sl.inst == in {
			s.cancelRestartLocked(in, "the agent is shutting down")
		}
		s.mu.Unlock()
	case err != nil:
		s.log.Warn("restart in place failed", "id", in.id, "generation", in.gen, "error", err)
	default:
		s.log.Info("workload restarted in place", "id", in.id, "generation", in.gen, "pid", w.PID, "restarts", w.Restarts)
	}
	s.pruneEnded()
}

// cancelRestartLocked ends an instance waiting to restart as stopped and
// reports whether it was waiting; the caller holds its slot and s.mu.
func (s *supervisor) cancelRestartLocked(in *instance, why string) bool {
	if in.state != api.InstanceRestarting {
		return false
	}
	s.log.Info("restart in place called off", "id", in.id, "generation", in.gen, "reason", why)
	in.state = api.InstanceStopped
	in.reason = ""
	in.exitedAt = time.Now().UTC()
	s.noteOutput(in, "[agent: restart called off: "+why+"]")
	s.endLifeLocked(in)
	s.notifyLocked()
	return true
}

// leaseHeldThrough is the lease test for a restart in place of an exclusive
// instance: the lease must hold now and must not have lapsed since its
// previous run began (the leader may have placed it elsewhere meanwhile,
// and the run's end is only recorded once its group is gone, which may be
// long after its process exited).
func (s *supervisor) leaseHeldThrough(lf *life) error {
	since, until := s.cfg.lease.held()
	now := boottime()
	switch {
	case now+leaseKillWindow >= until:
		return errNoLease
	case since > lf.lastBegun:
		return errLeaseBroken
	}
	return nil
}

// errLeaseBroken refuses to restart an exclusive instance in place after
// its node's lease has lapsed.
var errLeaseBroken = errors.New("this node's lease from the leader lapsed since the exclusive workload last ran: not restarted in place")

// times says "once", "2 times", ...
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}
