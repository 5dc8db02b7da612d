package recovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Store is the replicated state as the engine needs it.
type Store interface {
	Read(fn func(s *fsm.State))
	Apply(c fsm.Command) error
}

// NodeView is the leader's latest health view of one node.
type NodeView struct {
	Status  string
	CPU     float64
	Checked bool
	// LastHeard is when the node's latest heartbeat reached this leader
	// (zero if none did): the anchor of its lease.
	LastHeard time.Time
	// LastSeq is the newest heartbeat recorded, first heard at SeqHeard.
	LastSeq  uint64
	SeqHeard time.Time
}

// HealthView answers the latest health view of a node.
type HealthView interface {
	NodeView(id string) (NodeView, bool)
}

// Agents makes the calls to node agents.
type Agents interface {
	Start(ctx context.Context, addr string, req api.StartRequest) (api.StartResponse, error)
	Stop(ctx context.Context, addr, id string, term, generation uint64) error
}

// Config tunes the engine.
type Config struct {
	Term                uint64        // the leader's raft term, sent with every agent call
	Interval            time.Duration // loop period (1s)
	MaxAttempts         int           // attempts before permanently_failed (3)
	CPULimit            float64       // a target must be below this CPU percent (80)
	Concurrency         int           // agent calls in flight at once (64)
	StartTimeout        time.Duration // one start call (10s)
	MissingGrace        time.Duration // how old a report may be next to a start (the health timeout; 2s)
	StableAfter         time.Duration // a workload running this long has its failed attempts cleared (10m)
	MassFailureMinNodes int           // the mass-failure guard applies from this many nodes (5)
	MassFailureFraction float64       // pause evictions when more than this fraction is offline (0.5)
	Lease               time.Duration // the agents' lease for exclusive workloads (7s)
	// ReportedLease, when set, returns the longest lease agents reported
	// holding; the engine counts with it when it is longer than Lease.
	ReportedLease func() time.Duration
	Logger        hclog.Logger
	// OnEvent, when set, is told of notable decisions (recovered, permanently
	// failed, stray stopped, evictions paused); it must not block.
	OnEvent func(kind, workload, node, msg string)
	// OnAttempt, when set, is told of every recovery attempt's outcome (a
	// start of a workload that waited in the recovery queue) with the time
	// since it was queued; it feeds metrics and must not block or call the
	// Engine.
	OnAttempt func(succeeded bool, d time.Duration)
	// Refresh, when set, asks for fresh node readings; the engine calls it
	// (at most once a second) while workloads wait because no node fits, so
	// that a node whose CPU dropped is seen sooner than the next health round.
	Refresh func()
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.CPULimit <= 0 {
		c.CPULimit = 80
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 10 * time.Minute
	}
	if c.MissingGrace <= 0 {
		c.MissingGrace = 2 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.MassFailureMinNodes <= 0 {
		c.MassFailureMinNodes = 5
	}
	if c.Lease <= 0 {
		c.Lease = 7 * time.Second
	}
	if c.MassFailureFraction <= 0 {
		c.MassFailureFraction = 0.5
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.OnEvent == nil {
		c.OnEvent = func(string, string, string, string) {}
	}
	if c.Refresh == nil {
		c.Refresh = func() {}
	}
	if c.OnAttempt == nil {
		c.OnAttempt = func(bool, time.Duration) {}
	}
}

// observation is the latest status an agent reported.
type observation struct {
	status api.AgentStatus
	at     time.Time
}

// Engine is the leader-only placement and recovery loop.
type Engine struct {
	cfg    Config
	store  Store
	health HealthView
	agents Agents
	log    hclog.Logger
	kick   chan struct{}

	mu         sync.Mutex
	inflight   map[string]bool        // workloads whose start is under way
	failedOn   map[string]string      // workload -> node its last start failed on
	observed   map[string]observation // node -> latest status
	dirty      map[string]bool        // nodes with an observation not yet reconciled
	stopping   map[string]bool        // node/workload stops under way
	stats      Stats
	pausedNote bool

	stopSem     chan struct{}
	wg          sync.WaitGroup
	lastRefresh time.Time // only touched by the Run goroutine
	started     time.Time // when Run started; set before any pass
	wantPlace   bool      // a Kick asked for a full pass
	wantFresh   bool      // a KickNew asked for a pass over new workloads
	// What the last passes saw, so that the next looks only at what
	// changed; only touched by the Run goroutine.
	freshMark   fsm.FreshMark         // the log of new workloads read up to here
	idleWhy     string                // every waiting workload was told this (no node can take any)
	movesClear  bool                  // neither a drain nor a move was left at the last look
	nodeCount   int                   // nodes at the last look for workloads of gone nodes
	evictLooked bool                  // evictOffline looked at every workload once
	nextWake    time.Time             // a pass asked for then (exclusive workloads waiting); guarded by mu
	wakeTimer   *time.Timer           // fires at nextWake; guarded by mu
	bounds      map[string]startBound // exclusive starts sent by this leader; guarded by mu
}

// Stats are the engine's counters since it started leading.
type Stats struct {
	Attempted       uint64
	Succeeded       uint64
	Failed          uint64
	Permanent       uint64
	StraysStopped   uint64
	LastDurations   []float64 // seconds from queueing to running, newest last
	EvictionsPaused bool
}

// New returns an engine; Run drives it while the replica leads.
func New(cfg Config, store Store, health HealthView, agents Agents) *Engine {
	cfg.defaults()
	return &Engine{
		cfg: cfg, store: store, health: health, agents: agents, log: cfg.Logger,
		kick:     make(chan struct{}, 1),
		inflight: map[string]bool{}, failedOn: map[string]string{},
		observed: map[string]observation{}, dirty: map[string]bool{}, stopping: map[string]bool{},
		bounds:  map[string]startBound{},
		stopSem: make(chan struct{}, cfg.Concurrency),
		// Set here, not in Run: other loops ask about leases (InstanceGone)
		// from the start.
		started: time.Now(),
	}
}

// Kick asks for a full pass now (after a submission, a registration or a
// status change).
func (e *Engine) Kick() {
	e.mu.Lock()
	e.wantPlace = true
	e.mu.Unlock()
	e.wake()
}

// KickNew asks for a pass over the workloads created since the last pass
// (after a submission): cheaper than Kick, it looks at nothing else.
func (e *Engine) KickNew() {
	e.mu.Lock()
	e.wantFresh = true
	e.mu.Unlock()
	e.wake()
}

func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Observe takes an agent's status from a health check, for reconciliation.
// It wakes the loop for a reconciliation only; placement runs when the
// reconciliation changed something, on a Kick, or on the periodic tick.
func (e *Engine) Observe(nodeID string, st api.AgentStatus) {
	e.mu.Lock()
	e.observed[nodeID] = observation{status: st, at: time.Now()}
	e.dirty[nodeID] = true
	e.mu.Unlock()
	e.wake()
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.LastDurations = append([]float64(nil), e.stats.LastDurations...)
	return s
}

// Run loops until ctx is cancelled (leadership lost), then waits for the
// agent calls it started.
func (e *Engine) Run(ctx context.Context) {
	defer e.wg.Wait()
	defer e.stopWake()
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	full, fresh := true, false
	for {
		e.pass(ctx, full, fresh)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			full = true
		case <-e.kick:
			e.mu.Lock()
			full, e.wantPlace = e.wantPlace, false
			fresh, e.wantFresh = e.wantFresh, false
			e.mu.Unlock()
		}
	}
}

// pass reconciles the reported statuses and, on a full pass or when the
// reconciliation changed the state, evicts the workloads of offline nodes
// and places every workload that needs a node; a fresh pass places only the
// workloads created since the last pass.
func (e *Engine) pass(ctx context.Context, full, fresh bool) {
	if ctx.Err() != nil {
		return
	}
	if e.reconcile(ctx) {
		full = true
	}
	if full {
		e.evictOffline()
		e.drainStep(ctx)
	}
	if full || fresh {
		e.place(ctx, full)
	}
}

// AllowEvict is the mass-failure guard: a leader that suddenly sees most of
// its nodes offline is more likely cut off itself, so it pauses evictions.
func (e *Engine) AllowEvict(offline, total int) bool {
	paused := total >= e.cfg.MassFailureMinNodes && float64(offline) > e.cfg.MassFailureFraction*float64(total)
	e.mu.Lock()
	was := e.stats.EvictionsPaused
	e.stats.EvictionsPaused = paused
	e.mu.Unlock()
	if paused && !was {
		e.log.Error("mass failure: most nodes offline at once; evictions paused (this leader may be the one cut off)", "offline", offline, "total", total)
		e.cfg.OnEvent("evictions_paused", "", "", "most nodes offline at once; evictions paused")
	} else if !paused && was {
		e.log.Info("evictions resumed", "offline", offline, "total", total)
		e.cfg.OnEvent("evictions_resumed", "", "", "evictions resumed")
	}
	return !paused
}

// evictOffline queues the live workloads still placed on offline nodes (the
// health monitor normally does it with the status change; this catches the
// rest: a paused guard that lifted, a change made by an earlier leader).
func (e *Engine) evictOffline() {
	var reqs []fsm.RecoveryRequest
	var offline, total int
	e.store.Read(func(s *fsm.State) {
		total = len(s.Nodes)
		for _, n := range s.Nodes {
			if n.Status == api.NodeOffline {
				offline++
			}
		}
		// With no node offline, only a node that is gone (fewer nodes than
		// at the last look) can have left workloads behind.
		gone := !e.evictLooked || total < e.nodeCount
		e.nodeCount, e.evictLooked = total, true
		if offline == 0 && !gone {
			return
		}
		// One pass without sorting; only what is found is sorted (this runs
		// at every pass, over every workload).
		for id, w := range s.Workloads {
			if w.Node == "" || (w.State != api.StateRunning && w.State != api.StatePending) {
				continue
			}
			n, ok := s.Nodes[w.Node]
			if (ok && n.Status != api.NodeOffline) || e.isInflight(id) {
				continue
			}
			reason := "node " + w.Node + " offline"
			if !ok {
				reason = "node " + w.Node + " is gone"
			}
			reqs = append(reqs, fsm.RecoveryRequest{ID: id, Reason: reason})
		}
		sort.Slice(reqs, func(i, j int) bool { return reqs[i].ID < reqs[j].ID })
	})
	if len(reqs) == 0 || !e.AllowEvict(offline, total) {
		return
	}
	if err := e.store.Apply(&fsm.EnqueueRecovery{At: time.Now().UTC(), MaxAttempts: e.cfg.MaxAttempts, Requests: reqs}); err != nil {
		e.log.Warn("queueing workloads of offline nodes failed", "error", err)
	}
}

func (e *Engine) isInflight(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inflight[id]
}

// work is one workload to place.
type work struct {
	w      *api.Workload
	since  time.Time // when it entered the recovery queue; zero for a new one
	queued string    // why it entered the recovery queue; empty for a new one
	// migrate moves a running workload off a draining node, start first:
	// its old instance runs on until the new one is up.
	migrate bool
}

// place picks nodes for the workloads that need one (on a full pass every
// one, otherwise those created since the last pass), records the intents in
// one raft write, starts them concurrently, and records the outcomes in one
// raft write.
func (e *Engine) place(ctx context.Context, full bool) {
	var todo []work
	var cands []Candidate
	busy, online := 0, 0       // online nodes, and those checked at or over the CPU limit
	var outcomes []fsm.Outcome // running instances found for an earlier leader's intent
	var completed []completion // and batch instances found completed
	e.mu.Lock()
	observed := make(map[string]observation, len(e.observed))
	for k, v := range e.observed {
		observed[k] = v
	}
	e.mu.Unlock()
	now := time.Now()
	var waitUntil time.Time
	e.store.Read(func(s *fsm.State) {
		// The nodes first: which can take work.
		var up []Candidate // online, eligible, checked and below the CPU limit (counts filled in below)
		live := false      // a node not offline, whose reports may show an earlier leader's start
		for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
			n := s.Nodes[id]
			if n.Status != api.NodeOffline {
				live = true
			}
			if n.Status != api.NodeOnline || !n.Eligible || n.Draining {
				continue // an ineligible or draining node takes no new work
			}
			online++
			v, ok := e.health.NodeView(id)
			if ok && v.Checked && v.Status == api.NodeOnline && v.CPU >= e.cfg.CPULimit {
				busy++
			}
			if ok && v.Checked && v.Status == api.NodeOnline && v.CPU < e.cfg.CPULimit {
				up = append(up, Candidate{ID: id, Address: n.Address, CPU: v.CPU, Capacity: n.Capacity})
			}
		}
		ids, all := e.scope(s, full, len(up) == 0 && !live, noCandidateReason(online, busy, e.cfg.CPULimit))
		full = all
		// add takes a workload to place, unless it is exclusive and its
		// last node may still run it.
		add := func(wk work) {
			if wait, until := e.exclusiveWait(s, wk.w, observed, now); wait {
				if waitUntil.IsZero() || until.Before(waitUntil) {
					waitUntil = until
				}
				return
			}
			todo = append(todo, wk)
		}
		queued := make(map[string]fsm.QueueEntry, len(s.RecoveryQueue))
		for _, q := range s.RecoveryQueue {
			queued[q.WorkloadID] = q
		}
		queuedWork := func(w *api.Workload) work {
			q := queued[w.ID]
			return work{w: fsm.CopyWorkload(w), since: q.Since, queued: q.Reason}
		}
		if full {
			todo = append(todo, e.drainMoves(s)...)
		}
		for _, id := range ids {
			w, ok := s.Workloads[id]
			if !ok || e.isInflight(id) {
				continue
			}
			switch {
			case w.State == api.StateFailed:
				if _, ok := queued[id]; ok {
					add(queuedWork(w))
				}
			case w.State == api.StatePending && w.Node == "":
				add(queuedWork(w))
			case w.State == api.StatePending:
				// An intent without an outcome, left by an earlier leader or a
				// start abandoned half-way: look at what the node reports.
				n, ok := s.Nodes[w.Node]
				obs, seen := observed[w.Node]
				switch {
				case !ok || n.Status == api.NodeOffline:
					add(queuedWork(w))
				case seen && obs.at.After(laterOf(w.UpdatedAt, e.started)):
					inst, ok := findInstance(obs.status, id)
					switch {
					case ok && inst.Generation == w.Generation && present(inst.State):
						outcomes = append(outcomes, fsm.Outcome{ID: id, Generation: w.Generation, Running: true, PID: inst.PID})
					case ok && inst.Generation == w.Generation && completedExit(w, inst):
						// It ran to its end before anyone recorded it running.
						outcomes = append(outcomes, completedOutcome(w, inst))
						completed = append(completed, completion{id: id, node: w.Node})
					default:
						add(queuedWork(w))
					}
				}
			}
		}
		if len(todo) == 0 || len(up) == 0 {
			return // nothing to place, or nowhere to: no need to count what nodes hold
		}
		// What each node has given: the declared resources of the
		// workloads placed there and starting or running. Failed workloads
		// hold nothing (their instance ended, or their node is offline and
		// no candidate), nor do stopped, completed or permanently failed
		// ones; a workload about to be placed again is counted only where
		// this pass puts it.
		moving := make(map[string]bool, len(todo))
		for _, t := range todo {
			moving[t.w.ID] = true
		}
		assigned := map[string]int{}
		jobsOn := map[string]map[string]int{} // node -> job -> instances
		allocated := map[string]api.Capacity{}
		hold := func(w *api.Workload) {
			need := asks(w.Spec.Resources)
			a := allocated[w.Node]
			a.CPUMillicores += need.CPUMillicores
			a.MemoryMB += need.MemoryMB
			allocated[w.Node] = a
		}
		for _, w := range s.Workloads {
			if m := w.MoveFrom; m != nil && fsm.IsLive(w) {
				// The old instance of a move holds its room until it stops.
				need := asks(w.Spec.Resources)
				a := allocated[m.Node]
				a.CPUMillicores += need.CPUMillicores
				a.MemoryMB += need.MemoryMB
				allocated[m.Node] = a
			}
			if w.Node != "" && (w.State == api.StateRunning || w.State == api.StatePending) {
				assigned[w.Node]++
				if w.Job != "" && !moving[w.ID] {
					if jobsOn[w.Node] == nil {
						jobsOn[w.Node] = map[string]int{}
					}
					jobsOn[w.Node][w.Job]++
				}
				if !moving[w.ID] {
					hold(w)
				}
			}
			// A stopped workload whose instance its node still reports
			// running (the stop grace) holds its room until it is gone.
			if w.State == api.StateStopped && w.Node != "" && w.Spec.Resources != nil && stillRuns(observed[w.Node], w) {
				hold(w)
			}
		}
		for _, c := range up {
			c.Assigned, c.Leased, c.Allocated, c.Jobs = assigned[c.ID], e.leased(c.ID, now), allocated[c.ID], jobsOn[c.ID]
			cands = append(cands, c)
		}
	})
	if !waitUntil.IsZero() {
		e.wakeAt(waitUntil)
	}
	if full {
		e.pruneFailedOn(todo)
	}
	if len(outcomes) > 0 {
		if err := e.store.Apply(&fsm.RecordOutcomes{At: time.Now().UTC(), MaxAttempts: e.cfg.MaxAttempts, Outcomes: outcomes}); err != nil {
			e.log.Warn("recording adopted instances failed", "error", err)
		} else {
			for _, c := range completed {
				e.noteCompleted(c.id, c.node)
			}
		}
	}
	if len(todo) == 0 {
		return
	}
	if len(cands) == 0 {
		// Moves off draining nodes are not waiting workloads: they run
		// where they are, with no reason to record and nothing to refresh for.
		waiting := todo[:0:0]
		for _, t := range todo {
			if !t.migrate {
				waiting = append(waiting, t)
			}
		}
		if len(waiting) == 0 {
			return
		}
		todo = waiting
		e.log.Debug("no node fits; workloads wait", "waiting", len(todo))
		e.noteNoCandidates(todo, online, busy)
		if time.Since(e.lastRefresh) >= time.Second {
			e.lastRefresh = time.Now()
			e.cfg.Refresh()
		}
		return
	}
	sel := NewSelector(cands)
	jobs := make([]job, 0, len(todo))
	intents := make([]fsm.Placement, 0, len(todo))
	var waits []fsm.WaitReason
	e.mu.Lock()
	for _, t := range todo {
		avoid := map[string]bool{}
		if n := e.failedOn[t.w.ID]; n != "" {
			avoid[n] = true
		}
		if t.migrate {
			if n, _, ok := abandonedMove(t.w); ok {
				avoid[n] = true // its last move there was given up
			}
		}
		if (t.w.State == api.StateFailed || t.migrate) && t.w.Node != "" {
			// Its instance ended there (or the node died): another node
			// when there is a choice, as a start that failed.
			avoid[t.w.Node] = true
		}
		var leased func(Candidate) bool
		if t.w.Exclusive {
			leased = func(c Candidate) bool { return c.Leased }
		}
		res := t.w.Spec.Resources
		node, ok := sel.PickSpread(avoid, res, leased, t.w.Job)
		if ok && t.migrate && node.ID == t.w.Node {
			ok = false // a move needs another node
		}
		if t.migrate && !ok {
			continue // no room elsewhere yet: it runs on where it is
		}
		if !ok {
			if !sel.Fits(res) {
				// It stays where it is (pending, or failed in the queue)
				// and says why; a pass after capacity frees places it.
				reason := sel.NoFitReason(res)
				if t.queued != "" {
					reason = t.queued + "; " + reason
				}
				if reason != t.w.Reason && reasonRecorded(t.w) {
					waits = append(waits, fsm.WaitReason{ID: t.w.ID, Reason: reason})
				}
			}
			continue // an exclusive workload whose nodes cannot hold a lease yet waits too
		}
		j := job{work: t, node: node, gen: nextGeneration(t.w)}
		jobs = append(jobs, j)
		intents = append(intents, fsm.Placement{ID: t.w.ID, Node: node.ID, Generation: j.gen, Term: e.cfg.Term, Migrate: t.migrate})
		e.inflight[t.w.ID] = true
	}
	e.mu.Unlock()
	if len(waits) > 0 {
		if err := e.store.Apply(&fsm.SetWaitReasons{Reasons: waits}); err != nil {
			e.log.Warn("recording why workloads wait failed", "error", err)
		}
	}
	if len(jobs) == 0 {
		return
	}
	defer func() {
		e.mu.Lock()
		for _, j := range jobs {
			delete(e.inflight, j.w.ID)
		}
		e.mu.Unlock()
	}()
	if err := e.store.Apply(&fsm.PlaceWorkloads{At: time.Now().UTC(), Placements: intents}); err != nil {
		e.log.Warn("recording placement intents failed", "error", err)
		return
	}
	// Apply skips an intent for a workload stopped meanwhile: call agents
	// only for the intents that the state now holds.
	e.store.Read(func(s *fsm.State) {
		kept := jobs[:0]
		for _, j := range jobs {
			if w, ok := s.Workloads[j.w.ID]; ok && w.Generation == j.gen && w.Node == j.node.ID &&
				w.State != api.StateStopped && w.State != api.StatePermanentlyFailed && w.State != api.StateCompleted {
				kept = append(kept, j)
			} else {
				e.mu.Lock()
				delete(e.inflight, j.w.ID)
				e.mu.Unlock()
			}
		}
		jobs = kept
	})

	results := make([]fsm.Outcome, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, e.cfg.Concurrency)
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, j job) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = e.start(ctx, j.w, j.node, j.gen)
		}(i, j)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // deposed: the next leader reconciles from the intents
	}
	var record []fsm.Outcome
	for _, o := range results {
		if o.ID != "" {
			record = append(record, o)
		}
	}
	if err := e.store.Apply(&fsm.RecordOutcomes{At: time.Now().UTC(), MaxAttempts: e.cfg.MaxAttempts, Outcomes: record}); err != nil {
		e.log.Warn("recording start outcomes failed", "error", err)
		return
	}
	e.account(jobs, results)
	for _, j := range jobs {
		if j.migrate {
			e.Kick() // a move's new instance may be up: a pass to end it now
			break
		}
	}
}

// job is one placement decided by a pass.
type job struct {
	work
	node Candidate
	gen  uint64
}

// start re-verifies the node and asks its agent to start the workload.
// It returns the outcome to record, or a zero Outcome when there is nothing
// to record (this leader was deposed).
func (e *Engine) start(ctx context.Context, w *api.Workload, node Candidate, gen uint64) fsm.Outcome {
	if v, ok := e.health.NodeView(node.ID); !ok || v.Status != api.NodeOnline || v.CPU >= e.cfg.CPULimit {
		return fsm.Outcome{ID: w.ID, Generation: gen, Reason: "node " + node.ID + " no longer fits", Uncounted: true}
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	// The agent gets the spec with its defaults filled in; a workload
	// submitted before specs existed has an empty one: a service, no check.
	spec := fsm.CopySpec(w.Spec)
	spec.Normalize()
	if spec.IsPlainService() {
		// Nothing beyond a bare process: send no spec fields at all, so
		// that an agent older than them still starts it.
		spec = api.Spec{}
	}
	req := api.StartRequest{
		ID: w.ID, Name: w.Name, Command: w.Command, Args: w.Args, Env: w.Env, Generation: gen, Term: e.cfg.Term,
		Exclusive: w.Exclusive, Spec: spec,
	}
	if w.Exclusive {
		v, _ := e.health.NodeView(node.ID)
		req.HeartbeatSeq = v.LastSeq
		e.noteStart(w.ID, gen, v.SeqHeard)
	}
	resp, err := e.agents.Start(cctx, node.Address, req)
	if err == nil && !startedNow(resp, gen) {
		// The agent answered with an instance of this generation that is
		// no longer up (a generation it ran before): not a start.
		err = fmt.Errorf("the agent reports generation %d %s", resp.Generation, resp.State)
	}
	if err == nil {
		e.mu.Lock()
		delete(e.failedOn, w.ID)
		e.mu.Unlock()
		return fsm.Outcome{ID: w.ID, Generation: gen, Running: true, PID: resp.PID}
	}
	var ae *api.AgentError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		e.log.Warn("agent refused a start as stale; this leader may be deposed", "workload", w.ID, "node", node.ID, "error", err)
		return fsm.Outcome{}
	}
	if ctx.Err() != nil {
		return fsm.Outcome{}
	}
	e.mu.Lock()
	e.failedOn[w.ID] = node.ID
	e.mu.Unlock()
	reason := "start on " + node.ID + " failed: " + err.Error()
	if ae != nil && ae.Status == http.StatusUnprocessableEntity {
		reason = "cannot start on " + node.ID + ": " + ae.Message
	}
	e.log.Warn("workload start failed", "workload", w.ID, "node", node.ID, "error", err)
	return fsm.Outcome{ID: w.ID, Generation: gen, Reason: reason}
}

// account updates the counters after a round of starts.
func (e *Engine) account(jobs []job, results []fsm.Outcome) {
	now := time.Now()
	var permanent []string
	e.store.Read(func(s *fsm.State) {
		for _, o := range results {
			if o.ID == "" || o.Running {
				continue
			}
			if w, ok := s.Workloads[o.ID]; ok && w.State == api.StatePermanentlyFailed {
				permanent = append(permanent, o.ID)
			}
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, o := range results {
		if o.ID == "" {
			continue
		}
		recovery := !jobs[i].since.IsZero()
		node := jobs[i].node.ID
		if recovery {
			e.stats.Attempted++
			e.cfg.OnAttempt(o.Running, now.Sub(jobs[i].since))
		}
		if o.Running {
			if recovery {
				e.stats.Succeeded++
				d := now.Sub(jobs[i].since).Seconds()
				e.stats.LastDurations = append(e.stats.LastDurations, d)
				if len(e.stats.LastDurations) > 20 {
					e.stats.LastDurations = e.stats.LastDurations[1:]
				}
				e.log.Info("workload recovered", "workload", o.ID, "node", node, "seconds", d)
				e.cfg.OnEvent("workload_recovered", o.ID, node, "running again on "+node)
			}
			continue
		}
		if recovery {
			e.stats.Failed++
		}
	}
	for _, id := range permanent {
		e.stats.Permanent++
		e.log.Error("workload permanently failed", "workload", id)
		e.cfg.OnEvent("workload_permanently_failed", id, "", "gave up after the maximum attempts")
	}
}

// pruneFailedOn forgets the failed nodes of workloads that no longer wait.
func (e *Engine) pruneFailedOn(waiting []work) {
	keep := make(map[string]bool, len(waiting))
	for _, w := range waiting {
		keep[w.w.ID] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.failedOn {
		if !keep[id] {
			delete(e.failedOn, id)
		}
	}
}

// nextGeneration is the generation of w's next placement: above every one
// placed before, its abandoned moves' included, so that no agent is ever
// asked twice for one generation.
func nextGeneration(w *api.Workload) uint64 {
	g := w.Generation
	for _, p := range w.History {
		g = max(g, p.Generation)
	}
	return g + 1
}

// startedNow reports whether a start answer is an instance of gen up now
// (an agent older than these fields answers none of them).
func startedNow(r api.StartResponse, gen uint64) bool {
	if r.Generation != 0 && r.Generation != gen {
		return false
	}
	switch r.State {
	case "", api.InstanceRunning, api.InstanceRestarting:
		return true
	}
	return false
}

// laterOf returns the later of two times.
func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// noCandidateReason says why no node can take work: none is online and
// checked, or every one is at or over the CPU limit (the guide's 80 % rule).
// It holds no measured value, so that it is written once, not at every
// change of load.
func noCandidateReason(online, busy int, limit float64) string {
	switch {
	case busy > 0:
		return fmt.Sprintf("every online node checked is at or over the %.0f%% CPU limit (see scheduler health)", limit)
	case online > 0:
		return "no online node has passed a health check under this leader yet"
	}
	return "no node is online"
}

// noteNoCandidates records why workloads wait when no node can take any
// (noCandidateReason).
func (e *Engine) noteNoCandidates(todo []work, online, busy int) {
	why := noCandidateReason(online, busy, e.cfg.CPULimit)
	var waits []fsm.WaitReason
	for _, t := range todo {
		reason := why
		if t.queued != "" {
			reason = t.queued + "; " + why
		}
		if reason != t.w.Reason && reasonRecorded(t.w) {
			waits = append(waits, fsm.WaitReason{ID: t.w.ID, Reason: reason})
		}
	}
	if len(waits) == 0 {
		return
	}
	if err := e.store.Apply(&fsm.SetWaitReasons{Reasons: waits}); err != nil {
		e.log.Warn("recording why workloads wait failed", "error", err)
	}
}

// reasonRecorded reports whether SetWaitReasons records a reason for w: a
// pending workload not yet given a node, or a failed one in the queue. A
// pending one already on a node (its start being retried) keeps its own, so
// the leader must not write one at every pass.
func reasonRecorded(w *api.Workload) bool {
	return !(w.State == api.StatePending && w.Node != "")
}

// stillRuns reports whether a node's latest report shows w's instance of its
// current generation running (or restarting).
func stillRuns(o observation, w *api.Workload) bool {
	for _, inst := range o.status.Workloads {
		if inst.ID == w.ID && inst.Generation == w.Generation {
			return inst.State == api.InstanceRunning || inst.State == api.InstanceRestarting
		}
	}
	return false
}
