package jobs

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Store is the replicated state as the watcher needs it.
type Store interface {
	Read(fn func(s *fsm.State))
	Apply(c fsm.Command) error
}

// Config wires the watcher to the replica.
type Config struct {
	// Interval is how often every job is looked at (250ms); Kick looks at
	// once.
	Interval time.Duration
	Logger   hclog.Logger
	// NewIDs reserves n workload IDs at time at, and returns them with the
	// sequence number of the last.
	NewIDs func(n int, at time.Time) ([]string, uint64)
	// StopInstance stops a stopped instance on its node's agent (after the
	// raft write; reconciliation stops it later if this fails).
	StopInstance func(ctx context.Context, w *api.Workload) error
	// Placed asks the placement loop to place new instances now.
	Placed func()
	// Refresh asks for fresh agent reports (at most once a second) while a
	// deployment waits for new instances to be healthy.
	Refresh func()
	// OnEvent is told of deployments that end; it must not block.
	OnEvent func(kind, job, msg string)
	// Gone reports whether a stopped instance is surely no longer running
	// on its node; an exclusive job creates no instance until it is. Nil:
	// always.
	Gone func(w *api.Workload) bool
}

// Watcher is the leader-only deployment loop.
type Watcher struct {
	cfg   Config
	store Store
	log   hclog.Logger
	kick  chan struct{}
	wg    sync.WaitGroup
	sem   chan struct{}

	seen        healthySince // only touched by the Run goroutine
	lastRefresh time.Time
	leading     time.Time // when Run started
}

// New returns a watcher; Run drives it while the replica leads.
func New(cfg Config, store Store) *Watcher {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Placed == nil {
		cfg.Placed = func() {}
	}
	if cfg.Refresh == nil {
		cfg.Refresh = func() {}
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(string, string, string) {}
	}
	return &Watcher{cfg: cfg, store: store, log: cfg.Logger, kick: make(chan struct{}, 1), sem: make(chan struct{}, 16), seen: healthySince{}}
}

// Kick asks for a pass now (after a run, a scale or a stop).
func (w *Watcher) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run loops until ctx is cancelled (leadership lost), then waits for the
// stops it started.
func (w *Watcher) Run(ctx context.Context) {
	defer w.wg.Wait()
	w.leading = time.Now().UTC()
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// pass decides and records one step for every job that needs one.
func (w *Watcher) pass(ctx context.Context) {
	now := time.Now().UTC()
	var decisions []decision
	live := map[string]bool{}
	w.store.Read(func(s *fsm.State) {
		if len(s.Jobs) == 0 {
			return
		}
		byJob := map[string][]*api.Workload{}
		for _, wl := range s.Workloads {
			if wl.Job != "" {
				byJob[wl.Job] = append(byJob[wl.Job], wl)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(s.Jobs)) {
			insts := byJob[name]
			sort.Slice(insts, func(i, k int) bool { return insts[i].ID < insts[k].ID })
			for _, wl := range insts {
				live[instanceKey(wl)] = true
			}
			if d := decideIn(s.Jobs[name], insts, env{now: now, seen: w.seen, leading: w.leading, gone: w.cfg.Gone}); !d.empty() || d.waiting {
				decisions = append(decisions, d)
			}
		}
	})
	for k := range w.seen {
		if !live[k] {
			delete(w.seen, k)
		}
	}
	waiting, placed := false, false
	for _, d := range decisions {
		if ctx.Err() != nil {
			return
		}
		waiting = waiting || d.waiting
		if d.empty() {
			continue
		}
		if w.record(ctx, d, now) && d.create > 0 {
			placed = true
		}
	}
	if placed {
		w.cfg.Placed()
	}
	if waiting && time.Since(w.lastRefresh) >= time.Second {
		w.lastRefresh = time.Now()
		w.cfg.Refresh()
	}
}

// record writes one step through raft, then stops the instances it stopped
// on their agents. It reports whether the step was recorded.
func (w *Watcher) record(ctx context.Context, d decision, now time.Time) bool {
	step := d.step
	step.At = now
	if d.create > 0 {
		step.Create, step.Seq = w.cfg.NewIDs(d.create, now)
	}
	if err := w.store.Apply(&step); err != nil {
		if errors.Is(err, fsm.ErrConflict) {
			w.log.Debug("job changed while its step was decided; deciding again", "job", step.Name)
		} else {
			w.log.Warn("recording a deployment step failed", "job", step.Name, "error", err)
		}
		return false
	}
	w.log.Debug("job step", "job", step.Name, "create", len(step.Create), "stop", len(step.Stop),
		"relabel", len(step.Relabel), "counted", len(step.Counted), "status", step.Status)
	for _, s := range step.Stop {
		w.log.Info("job instance stopped", "job", step.Name, "workload", s.ID, "reason", s.Reason)
	}
	if step.Status != "" {
		kind, msg := "deployment_"+step.Status, step.Description
		if step.Revert {
			kind = api.EventDeploymentReverted
		}
		w.log.Info("deployment ended", "job", step.Name, "status", kind, "description", msg)
		w.cfg.OnEvent(kind, step.Name, msg)
	}
	w.stopOnAgents(ctx, step.Stop)
	return true
}

// stopOnAgents stops the instances a step stopped, in the background.
func (w *Watcher) stopOnAgents(ctx context.Context, stops []fsm.InstanceStop) {
	if len(stops) == 0 || w.cfg.StopInstance == nil {
		return
	}
	var ws []*api.Workload
	w.store.Read(func(s *fsm.State) {
		for _, st := range stops {
			if wl, ok := s.Workloads[st.ID]; ok && wl.Node != "" && wl.State == api.StateStopped {
				ws = append(ws, fsm.CopyWorkload(wl))
			}
		}
	})
	for _, wl := range ws {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			select {
			case w.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-w.sem }()
			if err := w.cfg.StopInstance(ctx, wl); err != nil {
				w.log.Warn("stopping a replaced instance failed; reconciliation will retry", "workload", wl.ID, "node", wl.Node, "error", err)
			}
		}()
	}
}
