package health

import (
	"context"
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// loop is the goroutine of one Run that owns scheduling: round ticks, confirm
// timers, the check queue and the bounded pool of check goroutines. Fields
// are touched only by that goroutine.
type loop struct {
	m   *Monitor
	ctx context.Context
	rs  *runState

	results chan result // capacity Concurrency: a check never blocks on it
	active  int         // check goroutines running
	urgent  []string    // confirm checks, served first
	queue   []string    // round checks

	inflight map[string]*job      // queued or running, by node id
	confirms map[string]time.Time // due confirm checks, by node id
	overlaps map[string]bool      // overlapping checks running, by node id

	tick, confirm, watch Timer
	nextTick             time.Time
}

// job is one node's queued or running check, and the batches waiting for it.
type job struct {
	node       api.Node
	batches    []*batch
	started    time.Time // when its check started; zero while queued
	overlapped bool      // an overlapping check was started beside it
}

// batch is a round or a confirm step: when its last check ends, the pending
// status changes are written and its waiters are told the write's result.
type batch struct {
	round   bool
	start   time.Time
	pending int
	waiters []chan error
}

// result is the outcome of one check.
type result struct {
	id         string
	st         api.AgentStatus
	err        error
	start, end time.Time
	overlap    bool // an overlapping check, outside any batch
}

func newLoop(ctx context.Context, m *Monitor, rs *runState) *loop {
	return &loop{
		m:        m,
		ctx:      ctx,
		rs:       rs,
		results:  make(chan result, m.cfg.Concurrency),
		inflight: map[string]*job{},
		confirms: map[string]time.Time{},
		overlaps: map[string]bool{},
	}
}

// run checks every node at once, then every Interval, until ctx is cancelled;
// it returns once every check it started has returned.
func (l *loop) run() {
	clock := l.m.cfg.Clock
	l.nextTick = clock.Now().Add(l.m.cfg.Interval)
	l.startRound(nil, false)
	l.armTick()
	for {
		l.dispatch()
		l.armWatch()
		select {
		case <-l.ctx.Done():
			l.stop()
			return
		case <-timerC(l.tick):
			l.tick = nil
			now := clock.Now()
			l.nextTick = l.nextTick.Add(l.m.cfg.Interval)
			if !l.nextTick.After(now) { // the loop fell behind: skip, do not pile up
				l.nextTick = now.Add(l.m.cfg.Interval)
			}
			l.startRound(nil, true)
			l.armTick()
		case <-timerC(l.confirm):
			l.confirm = nil
			l.startConfirms()
		case <-timerC(l.watch):
			l.watch = nil
			l.startOverlaps()
			l.startSuspicions()
		case req := <-l.rs.requests:
			l.startRound(req, true)
		case r := <-l.results:
			l.active--
			l.handle(r)
		}
	}
}

// timerC returns t's channel, or nil (never ready) for no timer.
func timerC(t Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// stop stops the timers and waits for the check goroutines, which see the
// cancelled context.
func (l *loop) stop() {
	if l.tick != nil {
		l.tick.Stop()
	}
	if l.confirm != nil {
		l.confirm.Stop()
	}
	if l.watch != nil {
		l.watch.Stop()
	}
	for l.active > 0 {
		<-l.results
		l.active--
	}
}

// armTick arms the round timer for nextTick.
func (l *loop) armTick() {
	l.tick = l.m.cfg.Clock.NewTimer(l.nextTick.Sub(l.m.cfg.Clock.Now()))
}

// armConfirm re-arms the confirm timer for the earliest due confirm check.
func (l *loop) armConfirm() {
	if l.confirm != nil {
		l.confirm.Stop()
		l.confirm = nil
	}
	var first time.Time
	for _, due := range l.confirms {
		if first.IsZero() || due.Before(first) {
			first = due
		}
	}
	if !first.IsZero() {
		l.confirm = l.m.cfg.Clock.NewTimer(first.Sub(l.m.cfg.Clock.Now()))
	}
}

// startRound queues a check of every node that is not already queued or
// being checked. A forced round (req != nil) also waits for those in flight.
// refresh first picks up the nodes registered or removed since the last round.
func (l *loop) startRound(req *checkRequest, refresh bool) {
	if refresh {
		l.refresh()
	}
	b := &batch{round: true, start: l.m.cfg.Clock.Now()}
	if req != nil {
		b.waiters = append(b.waiters, req.done)
	}
	l.m.mu.Lock()
	ids := l.m.sortedIDs()
	for _, id := range ids {
		if j, ok := l.inflight[id]; ok {
			if req != nil {
				j.batches = append(j.batches, b)
				b.pending++
			}
			continue
		}
		if _, due := l.confirms[id]; due && req != nil {
			// A forced round must not confirm a failure sooner than
			// ConfirmDelay after it: the confirm check is already scheduled.
			continue
		}
		ns := l.m.nodes[id]
		l.inflight[id] = &job{node: api.Node{ID: id, Address: ns.h.Address}, batches: []*batch{b}}
		l.queue = append(l.queue, id)
		b.pending++
		delete(l.confirms, id) // this check confirms as well
	}
	l.m.mu.Unlock()
	l.armConfirm()
	if b.pending == 0 {
		l.finish(b)
	}
}

// startConfirms queues the confirm checks that are due, as one batch.
func (l *loop) startConfirms() {
	now := l.m.cfg.Clock.Now()
	b := &batch{start: now}
	l.m.mu.Lock()
	for id, due := range l.confirms {
		if due.After(now) {
			continue
		}
		delete(l.confirms, id)
		ns, ok := l.m.nodes[id]
		if _, busy := l.inflight[id]; busy || !ok {
			continue // a check in flight confirms it already
		}
		l.inflight[id] = &job{node: api.Node{ID: id, Address: ns.h.Address}, batches: []*batch{b}}
		l.urgent = append(l.urgent, id)
		b.pending++
	}
	l.m.mu.Unlock()
	l.armConfirm()
	if b.pending == 0 {
		l.finish(b)
	}
}

// refresh adds the nodes registered since the last round, drops the removed
// ones, follows address changes, and, when no write raced with the read,
// takes the replicated statuses as the committed ones.
func (l *loop) refresh() {
	m := l.m
	m.mu.Lock()
	gen, writing := m.writeGen, m.writing
	m.mu.Unlock()
	nodes := m.store.Nodes()

	m.mu.Lock()
	defer m.mu.Unlock()
	sync := !writing && !m.writing && gen == m.writeGen
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.ID] = true
		ns, ok := m.nodes[n.ID]
		if !ok {
			m.nodes[n.ID] = newNodeState(n)
			m.log.Debug("new node", "node", n.ID, "address", n.Address)
			continue
		}
		ns.h.Address = n.Address
		ns.noteRestarting(n)
		if st := normStatus(n.Status); sync && st != ns.h.Status {
			m.log.Debug("replicated status differs from the last write", "node", n.ID, "replicated", st, "written", ns.h.Status)
			ns.h.Status = st
		}
	}
	for id := range m.nodes {
		if !seen[id] {
			delete(m.nodes, id)
			delete(l.confirms, id)
			m.log.Debug("node removed", "node", id)
		}
	}
}

// dispatch starts queued checks, confirm checks first, up to Concurrency.
func (l *loop) dispatch() {
	for l.active < l.m.cfg.Concurrency {
		var id string
		switch {
		case len(l.urgent) > 0:
			id, l.urgent = l.urgent[0], l.urgent[1:]
		case len(l.queue) > 0:
			id, l.queue = l.queue[0], l.queue[1:]
		default:
			return
		}
		l.active++
		j := l.inflight[id]
		j.started = l.m.cfg.Clock.Now()
		go l.check(j.node, false)
	}
}

// armWatch arms the watch timer while there is something to watch: a check
// in flight that may need an overlapping one, or nodes that send heartbeats.
func (l *loop) armWatch() {
	if l.watch != nil {
		return
	}
	if (len(l.inflight) > 0 && l.m.cfg.ConfirmDelay > 0) || (l.m.tracking.Load() && l.m.cfg.SuspectAfter > 0) {
		l.watch = l.m.cfg.Clock.NewTimer(watchEvery)
	}
}

// startOverlaps starts a second check of each node whose check has been
// running for ConfirmDelay without an answer, so that a node that stopped
// answering (paused, cut off) has its second failed check ConfirmDelay after
// the first instead of a whole timeout later. A node has at most two checks
// in flight; offline nodes get none.
func (l *loop) startOverlaps() {
	m := l.m
	if m.cfg.ConfirmDelay <= 0 {
		return
	}
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, j := range l.inflight {
		if j.started.IsZero() || j.overlapped || l.overlaps[id] || now.Sub(j.started) < m.cfg.ConfirmDelay ||
			l.active >= m.cfg.Concurrency {
			continue
		}
		if ns, ok := m.nodes[id]; !ok || ns.decided == api.NodeOffline {
			continue
		}
		j.overlapped = true
		l.overlaps[id] = true
		l.active++
		go l.check(j.node, true)
	}
}

// startSuspicions checks at once, as one batch, every node whose heartbeats
// stopped for longer than SuspectAfter (once per silence), instead of
// leaving it to the next round.
func (l *loop) startSuspicions() {
	m := l.m
	if m.cfg.SuspectAfter <= 0 || !m.tracking.Load() {
		return
	}
	now := m.cfg.Clock.Now()
	b := &batch{start: now}
	m.mu.Lock()
	for id, ns := range m.nodes { // every 100 ms: no sorting, order does not matter
		heard := ns.h.LastHeard
		if heard.IsZero() || now.Sub(heard) <= m.cfg.SuspectAfter || ns.decided == api.NodeOffline || ns.suspected.Equal(heard) {
			continue
		}
		if _, busy := l.inflight[id]; busy {
			continue
		}
		ns.suspected = heard
		delete(l.confirms, id)
		l.inflight[id] = &job{node: api.Node{ID: id, Address: ns.h.Address}, batches: []*batch{b}}
		l.urgent = append(l.urgent, id)
		b.pending++
		m.log.Debug("heartbeats stopped: checking now", "node", id, "silent_for", now.Sub(heard))
	}
	m.mu.Unlock()
	if b.pending > 0 {
		l.armConfirm()
	}
}

// check runs one check and reports it on l.results.
func (l *loop) check(node api.Node, overlap bool) {
	m := l.m
	ctx, cancel := context.WithTimeout(l.ctx, m.cfg.Timeout)
	start := m.cfg.Clock.Now()
	st, err := m.checker.Check(ctx, node)
	end := m.cfg.Clock.Now()
	cancel()
	if err == nil && st.NodeID != "" && st.NodeID != node.ID {
		err = fmt.Errorf("agent at %s answers as node %q", node.Address, st.NodeID)
	}
	if err == nil && m.cfg.OnReport != nil && l.ctx.Err() == nil {
		m.cfg.OnReport(node.ID, st)
	}
	if m.cfg.OnCheck != nil && l.ctx.Err() == nil {
		m.cfg.OnCheck(node.ID, end.Sub(start), err)
	}
	l.results <- result{id: node.ID, st: st, err: err, start: start, end: end, overlap: overlap}
}

// handle records one check's result, schedules a confirm check after a
// failure, and completes the batches that waited for it.
func (l *loop) handle(r result) {
	var j *job
	if r.overlap {
		delete(l.overlaps, r.id)
	} else {
		j = l.inflight[r.id]
		delete(l.inflight, r.id)
	}
	if l.ctx.Err() != nil {
		return // cancelled: the result says nothing about the node
	}
	m := l.m
	rearm := false
	m.mu.Lock()
	if ns, ok := m.nodes[r.id]; ok {
		prev := ns.decided
		m.record(ns, r)
		_, had := l.confirms[r.id]
		switch {
		case r.err != nil && ns.decided != api.NodeOffline && m.cfg.ConfirmDelay > 0:
			l.confirms[r.id] = r.end.Add(m.cfg.ConfirmDelay)
			rearm = true
		case had:
			delete(l.confirms, r.id)
			rearm = true
		}
		if ns.decided != prev {
			m.log.Debug("node status decided", "node", r.id, "from", prev, "to", ns.decided,
				"failures", ns.h.ConsecutiveFailures, "successes", ns.h.ConsecutiveSuccesses, "error", ns.h.LastError)
		}
	}
	m.mu.Unlock()
	if rearm {
		l.armConfirm()
	}
	if r.overlap {
		l.finish(&batch{}) // write what it decided
		return
	}
	if j == nil {
		return
	}
	for _, b := range j.batches {
		if b.pending--; b.pending == 0 {
			l.finish(b)
		}
	}
}

// record applies one check's result to a node; the caller holds Monitor.mu.
func (m *Monitor) record(ns *nodeState, r result) {
	h := &ns.h
	if r.err != nil && r.start.Before(h.LastAnswer) {
		return // overlapping checks: a later one was answered, this failure is stale
	}
	h.Checked = true
	h.LastCheck = r.end
	slow := false
	if r.err == nil {
		h.ConsecutiveFailures = 0
		h.ConsecutiveSuccesses++
		h.Answered = true
		h.LastAnswer = r.end
		h.ResponseTime = r.end.Sub(r.start)
		h.CPU, h.Memory = r.st.CPUUsage, r.st.MemoryUsage
		h.LastError = ""
		slow = m.cfg.SlowResponse > 0 && h.ResponseTime > m.cfg.SlowResponse
	} else {
		h.ConsecutiveSuccesses = 0
		h.ConsecutiveFailures++
		h.LastError = r.err.Error()
	}
	alive := m.alive(ns, r.end)
	ns.decided = nextStatus(ns.decided, h.ConsecutiveFailures, h.ConsecutiveSuccesses, r.err == nil, slow, alive, m.th)
	h.HeldAlive = r.err != nil && alive && h.ConsecutiveFailures >= m.th.failure && ns.decided != api.NodeOffline
}

// finish completes a batch: it asks the writer to write the pending changes
// and to tell the batch's waiters the result.
func (l *loop) finish(b *batch) {
	m := l.m
	if b.round {
		d := m.cfg.Clock.Now().Sub(b.start)
		if d > m.cfg.Interval {
			m.log.Warn("health round took longer than the interval", "duration", d, "interval", m.cfg.Interval)
		}
		if m.roundHook != nil {
			m.roundHook(d)
		}
	}
	m.mu.Lock()
	m.flushWaiters = append(m.flushWaiters, b.waiters...)
	m.mu.Unlock()
	select {
	case l.rs.flush <- struct{}{}:
	default: // a flush is already requested; it will take these waiters too
	}
}
