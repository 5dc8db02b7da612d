package agent

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
)

const (
	// maxEnded is how many ended (exited, failed, stopped) instances are kept
	// for GET /status before the oldest are dropped.
	maxEnded = 256
	// groupGoneTimeout bounds the wait for a group's members to die after
	// SIGKILL (a process stuck in uninterruptible sleep cannot die at once).
	groupGoneTimeout = 10 * time.Second
	// drainTimeout bounds the wait for the last output once a group is gone.
	drainTimeout = 2 * time.Second
	// strayReapInterval is how often ended children that belong to no
	// instance (processes that left their group) are reaped.
	strayReapInterval = 5 * time.Second
)

// supervisorConfig holds what the supervisor needs from Config.
type supervisorConfig struct {
	workDir    string // <data>/workloads
	stopGrace  time.Duration
	logMax     int64
	token      string
	fence      *fence
	bootID     string
	reapStrays bool                      // reap children of no instance; only for a process that execs nothing else
	keepEnded  int                       // ended instances kept in /status (default maxEnded)
	onChange   func([]api.AgentWorkload) // called under the supervisor lock with a fresh snapshot
	lease      *lease                    // nil: exclusive workloads are refused

	ports             *portAllocator  // nil: workloads with ports are refused
	restartResetAfter time.Duration   // 0: api.RestartResetAfter
	cgroups           *cgroup.Manager // nil: no cgroups, see isolation.go
}

// supervisor runs workload instances as process groups and keeps their state.
// Start and stop of one id are serialized by that id's slot; different ids
// proceed in parallel.
type supervisor struct {
	cfg     supervisorConfig
	log     hclog.Logger
	baseEnv []string
	runID   string // tags every workload process of this agent run (escaped.go)
	devNull *os.File
	nullFd  uintptr
	guard   *guard // nil if it could not start

	lifecycle lifeState // health checks, restarts in place, exec check processes

	// forkMu is held shared around fork+registration and exclusively by the
	// stray reaper (so it never reaps a child not yet registered) and by
	// shutdown (so nothing is forked after it has begun).
	forkMu sync.RWMutex
	closed atomic.Bool

	// finishing is set by Shutdown or Detach, whichever comes first;
	// detaching when it is Detach (adopt.go), with its grace.
	finishing   atomic.Bool
	detaching   atomic.Bool
	detachGrace time.Duration
	stopFollow  chan struct{} // closed by Detach: log followers end, to go on with the next agent

	mu      sync.RWMutex
	slots   map[string]*slot
	leaders map[int]*instance // monitors (our children) not yet reaped, by pid

	wg       sync.WaitGroup // supervise and copy goroutines
	stopOnce sync.Once
	stopBG   chan struct{}
	bgDone   chan struct{}
}

// slot is the place of one workload id.
type slot struct {
	op   sync.Mutex // serializes start and stop of this id
	refs int        // goroutines holding or waiting for op; guarded by supervisor.mu
	inst *instance  // latest instance; guarded by supervisor.mu
}

// newSupervisor makes the calling process a child subreaper, starts the
// guard process, and the stray reaper if asked.
func newSupervisor(cfg supervisorConfig, log hclog.Logger) (*supervisor, error) {
	if err := becomeSubreaper(); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	s := &supervisor{
		cfg:        cfg,
		log:        log,
		baseEnv:    workloadBaseEnv(os.Environ(), cfg.token),
		devNull:    devNull,
		nullFd:     devNull.Fd(),
		slots:      make(map[string]*slot),
		leaders:    make(map[int]*instance),
		stopBG:     make(chan struct{}),
		bgDone:     make(chan struct{}),
		stopFollow: make(chan struct{}),
	}
	s.runID = newRunID()
	if s.guard, err = startGuard(s.nullFd, s.runID, cfg.cgroups, log); err != nil {
		log.Warn("no guard process: background processes of workloads will outlive a killed agent until it restarts", "error", err)
	}
	if cfg.keepEnded <= 0 {
		s.cfg.keepEnded = maxEnded
	}
	if cfg.onChange == nil {
		s.cfg.onChange = func([]api.AgentWorkload) {}
	}
	go s.background()
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	return s, nil
}

// background reaps stray children until shutdown.
func (s *supervisor) background() {
	defer close(s.bgDone)
	if !s.cfg.reapStrays {
		<-s.stopBG
		return
	}
	t := time.NewTicker(strayReapInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopBG:
			return
		case <-t.C:
			s.reapStrays()
		}
	}
}

// reapStrays reaps ended children that are not an instance's main process:
// processes that left their group and were orphaned to the agent.
func (s *supervisor) reapStrays() {
	s.forkMu.Lock()
	defer s.forkMu.Unlock()
	for range 1000 {
		pid := endedChild()
		if pid <= 0 {
			return
		}
		s.mu.RLock()
		ours := s.leaders[pid] != nil || s.lifecycle.isProbe(pid)
		s.mu.RUnlock()
		if ours {
			return // its supervise goroutine reaps it; look again next round
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// notifyLocked publishes a snapshot of all instances, sorted by id. Callers
// hold s.mu for writing, so snapshots are published in order.
func (s *supervisor) notifyLocked() {
	ws := make([]api.AgentWorkload, 0, len(s.slots))
	for _, sl := range s.slots {
		if sl.inst != nil {
			ws = append(ws, sl.inst.view())
		}
	}
	slices.SortFunc(ws, func(a, b api.AgentWorkload) int { return cmp.Compare(a.ID, b.ID) })
	s.cfg.onChange(ws)
}

// acquire returns the slot of id with its op lock held, creating the slot if
// create is set; release undoes it.
func (s *supervisor) acquire(id string, create bool) (*slot, error) {
	s.mu.Lock()
	sl := s.slots[id]
	if sl == nil {
		if !create {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w %q", errUnknownWorkload, id)
		}
		if s.closed.Load() {
			s.mu.Unlock()
			return nil, errShuttingDown
		}
		sl = &slot{}
		s.slots[id] = sl
	}
	sl.refs++
	s.mu.Unlock()
	sl.op.Lock()
	return sl, nil
}

func (s *supervisor) release(id string, sl *slot) {
	sl.op.Unlock()
	s.mu.Lock()
	sl.refs--
	if sl.refs == 0 && sl.inst == nil && s.slots[id] == sl {
		delete(s.slots, id)
	}
	s.mu.Unlock()
}

// get returns the latest instance of id.
func (s *supervisor) get(id string) (*instance, api.AgentWorkload, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sl := s.slots[id]
	if sl == nil || sl.inst == nil {
		return nil, api.AgentWorkload{}, false
	}
	return sl.inst, sl.inst.view(), true
}

// Start runs req unless it is stale or already done: the same generation is
// answered with the existing instance (started=false), a higher one replaces
// the old instance. A command that cannot start gives a *startError and an
// instance in state failed.
func (s *supervisor) Start(req api.StartRequest) (w api.AgentWorkload, started bool, err error) {
	if err := s.cfg.fence.check(req.Term); err != nil {
		return w, false, err
	}
	if req.Exclusive {
		s.awaitLease() // spawn decides, holding the slot
	}
	sl, err := s.acquire(req.ID, true)
	if err != nil {
		return w, false, err
	}
	defer s.release(req.ID, sl)

	s.mu.RLock()
	cur := sl.inst
	if cur != nil {
		w = cur.view()
	}
	s.mu.RUnlock()

	if cur != nil && req.Generation < cur.gen {
		if err := s.cfg.fence.check(req.Term); err != nil {
			return w, false, err
		}
		return w, false, fmt.Errorf("%w %d: workload %s is at generation %d here", errStaleGeneration, req.Generation, req.ID, cur.gen)
	}
	if err := s.cfg.fence.admit(req.Term); err != nil {
		return w, false, err
	}
	if cur != nil && req.Generation == cur.gen {
		if w.State == api.InstanceFailed {
			return w, false, &startError{reason: w.Error}
		}
		return w, false, nil
	}
	if cur != nil {
		if err := s.stopInstance(cur, fmt.Sprintf("replaced by generation %d", req.Generation)); err != nil {
			return w, false, err
		}
	}
	return s.spawn(sl, req)
}

// Stop stops the instance of id (SIGTERM to its group, SIGKILL after the
// grace period) and returns it once its group is gone. Stopping an instance
// that has already ended changes nothing.
func (s *supervisor) Stop(id string, term, gen uint64) (api.AgentWorkload, error) {
	if err := s.cfg.fence.check(term); err != nil {
		return api.AgentWorkload{}, err
	}
	sl, err := s.acquire(id, false)
	if err != nil {
		return api.AgentWorkload{}, err
	}
	defer s.release(id, sl)

	s.mu.RLock()
	cur := sl.inst
	s.mu.RUnlock()
	if cur == nil {
		return api.AgentWorkload{}, fmt.Errorf("%w %q", errUnknownWorkload, id)
	}
	if gen < cur.gen {
		return api.AgentWorkload{}, fmt.Errorf("%w %d: workload %s is at generation %d here", errStaleGeneration, gen, id, cur.gen)
	}
	if err := s.cfg.fence.admit(term); err != nil {
		return api.AgentWorkload{}, err
	}
	err = s.stopInstance(cur, "stop requested")
	s.mu.RLock()
	w := cur.view()
	s.mu.RUnlock()
	return w, err
}

// stopInstance terminates a running instance and waits until its group is
// gone. The caller holds the instance's slot.
func (s *supervisor) stopInstance(in *instance, why string) error {
	return s.stopInstanceWithin(in, why, s.cfg.stopGrace)
}

// stopInstanceWithin is stopInstance with grace between SIGTERM and SIGKILL.
func (s *supervisor) stopInstanceWithin(in *instance, why string, grace time.Duration) error {
	s.mu.Lock()
	if s.cancelRestartLocked(in, why) || in.state != api.InstanceRunning {
		s.mu.Unlock()
		return nil
	}
	in.stopping = true
	s.mu.Unlock()

	s.log.Info("stopping workload", "id", in.id, "generation", in.gen, "pid", in.pid, "reason", why)
	in.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-in.done:
		return nil
	case <-t.C:
	}
	s.log.Warn("workload ignored SIGTERM for the grace period; killing its process group", "id", in.id, "pid", in.pid, "grace", grace)
	in.signal(syscall.SIGKILL)
	s.killCgroup(in)
	t.Reset(groupGoneTimeout + drainTimeout + time.Second)
	select {
	case <-in.done:
		return nil
	case <-t.C:
		return fmt.Errorf("process group %d of workload %s did not end after SIGKILL", in.pid, in.id)
	}
}

// pruneEnded drops the oldest ended instances beyond keepEnded, with their
// directories. A slot in use is never dropped.
func (s *supervisor) pruneEnded() {
	var trash []string
	s.mu.Lock()
	type ended struct {
		id string
		at time.Time
	}
	var list []ended
	for id, sl := range s.slots {
		if sl.inst != nil && !sl.inst.live() && sl.refs == 0 {
			list = append(list, ended{id, sl.inst.exitedAt})
		}
	}
	if len(list) > s.cfg.keepEnded {
		slices.SortFunc(list, func(a, b ended) int { return a.at.Compare(b.at) })
		for _, e := range list[:len(list)-s.cfg.keepEnded] {
			dir := s.slots[e.id].inst.dir
			delete(s.slots, e.id)
			// Renamed under the lock: a new start of the id cannot have
			// created its dir yet, since it needs the lock to get a slot.
			t := filepath.Join(filepath.Dir(dir), ".deleted-"+filepath.Base(dir)) // no id starts with '.'
			if os.Rename(dir, t) == nil {
				trash = append(trash, t)
			}
		}
		s.notifyLocked()
	}
	s.mu.Unlock()
	for _, t := range trash {
		_ = os.RemoveAll(t)
	}
}

// Logs returns the last n lines of the output of id's latest instance.
func (s *supervisor) Logs(id string, n int) ([]byte, error) {
	in, _, ok := s.get(id)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownWorkload, id)
	}
	if in.out == nil {
		return []byte{}, nil
	}
	return in.out.Tail(n)
}

// Shutdown refuses new starts, stops every running instance (SIGTERM, then
// SIGKILL after the grace period) and waits for them until ctx is done.
func (s *supervisor) Shutdown(ctx context.Context) error {
	if !s.finishing.CompareAndSwap(false, true) {
		return nil
	}
	s.forkMu.Lock()
	s.closed.Store(true)
	s.forkMu.Unlock()
	s.stopOnce.Do(func() { close(s.stopBG) })
	<-s.bgDone

	var running []*instance
	s.mu.Lock()
	for _, sl := range s.slots {
		if in := sl.inst; in != nil && in.state == api.InstanceRunning {
			in.stopping = true
			running = append(running, in)
		}
	}
	s.mu.Unlock()
	if len(running) > 0 {
		s.log.Info("stopping all workloads", "count", len(running), "grace", s.cfg.stopGrace)
	}
	err := s.stopAll(ctx, running)

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		_ = s.devNull.Close()
	case <-ctx.Done():
	}
	// Closing the guard's stdin makes it SIGKILL whatever group is left.
	s.guard.close(ctx)
	return err
}

// stopAll stops the instances (marked stopping by the caller): SIGTERM,
// then SIGKILL after the grace period, and waits for them until ctx is done.
func (s *supervisor) stopAll(ctx context.Context, running []*instance) error {
	for _, in := range running {
		in.signal(syscall.SIGTERM)
	}
	grace, cancel := context.WithTimeout(ctx, s.cfg.stopGrace)
	left := waitAll(grace, running)
	cancel()
	if len(left) > 0 {
		s.log.Warn("workloads ignored SIGTERM for the grace period; killing their process groups", "count", len(left))
		for _, in := range left {
			in.signal(syscall.SIGKILL)
			s.killCgroup(in)
		}
		left = waitAll(ctx, left)
	}
	if len(left) > 0 {
		return fmt.Errorf("%d workloads were not confirmed gone before the shutdown timeout", len(left))
	}
	return nil
}

// waitAll waits for the instances to end until ctx is done and returns those
// still running.
func waitAll(ctx context.Context, ins []*instance) []*instance {
	var left []*instance
	for i, in := range ins {
		select {
		case <-in.done:
		case <-ctx.Done():
			for _, rest := range ins[i:] {
				select {
				case <-rest.done:
				default:
					left = append(left, rest)
				}
			}
			return left
		}
	}
	return nil
}
