package health

import (
	"context"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// writer writes the pending status changes each time a batch completes, one
// SetNodeStatus at a time, until ctx is cancelled.
func (m *Monitor) writer(ctx context.Context, rs *runState) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rs.flush:
			m.flush(ctx)
		}
	}
}

// flush writes, in one SetNodeStatus, every node whose decided status differs
// from its replicated one, plus the held evictions AllowEvict now lets
// through, then tells the waiters queued before it started the result. A
// failed write changes nothing in memory, so the next flush retries it.
func (m *Monitor) flush(ctx context.Context) {
	m.mu.Lock()
	waiters := m.flushWaiters
	m.flushWaiters = nil
	var changes []fsm.NodeStatusChange
	var held []string
	newOffline := false
	offlineAfter := 0
	for _, id := range m.sortedIDs() {
		ns := m.nodes[id]
		if ns.decided == api.NodeOffline {
			offlineAfter++
		}
		switch {
		case ns.decided != ns.h.Status:
			changes = append(changes, fsm.NodeStatusChange{ID: id, Status: ns.decided})
			newOffline = newOffline || ns.decided == api.NodeOffline
		case ns.decided == api.NodeOffline && ns.evictHeld:
			held = append(held, id)
		}
	}
	total := len(m.nodes)
	if len(changes) == 0 && len(held) == 0 {
		m.mu.Unlock()
		notify(waiters, nil)
		return
	}
	m.writing = true
	m.writeGen++
	m.mu.Unlock()

	err := m.write(ctx, changes, held, newOffline, offlineAfter, total)
	notify(waiters, err)
}

// write completes the changes with their Evict flags and commits them; it
// runs with Monitor.writing set, and clears it.
func (m *Monitor) write(ctx context.Context, changes []fsm.NodeStatusChange, held []string, newOffline bool, offlineAfter, total int) error {
	evict := true
	if (newOffline || len(held) > 0) && m.cfg.AllowEvict != nil {
		evict = m.cfg.AllowEvict(offlineAfter, total)
	}
	for i := range changes {
		if changes[i].Status == api.NodeOffline {
			changes[i].Evict = evict
		}
	}
	if evict {
		for _, id := range held {
			changes = append(changes, fsm.NodeStatusChange{ID: id, Status: api.NodeOffline, Evict: true})
		}
	}
	if newOffline && !evict {
		m.log.Warn("evictions held by the mass-failure guard", "offline_after", offlineAfter, "total", total)
	}

	var err error
	switch {
	case len(changes) == 0:
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		err = m.store.SetNodeStatus(ctx, fsm.SetNodeStatus{At: m.cfg.Clock.Now().UTC(), Changes: changes})
	}

	m.mu.Lock()
	m.writing = false
	from := make([]string, len(changes))
	if err == nil {
		for i, ch := range changes {
			ns, ok := m.nodes[ch.ID]
			if !ok {
				continue
			}
			from[i] = ns.h.Status
			ns.h.Status = ch.Status
			ns.evictHeld = ch.Status == api.NodeOffline && !ch.Evict
		}
	}
	logFailure := err != nil && !m.writeFailing && ctx.Err() == nil
	recovered := err == nil && m.writeFailing && len(changes) > 0
	if len(changes) > 0 {
		m.writeFailing = err != nil
	}
	m.mu.Unlock()

	switch {
	case logFailure:
		m.log.Warn("cannot write node status changes; will retry at the next round", "changes", len(changes), "error", err)
	case err != nil:
		m.log.Debug("node status write failed again", "changes", len(changes), "error", err)
	case recovered:
		m.log.Info("node status writes succeed again")
	}
	if err != nil || len(changes) == 0 {
		return err
	}
	for i, ch := range changes {
		if from[i] == ch.Status {
			m.log.Info("node workloads evicted", "node", ch.ID)
			continue
		}
		m.log.Info("node status changed", "node", ch.ID, "from", from[i], "to", ch.Status, "evict", ch.Evict)
	}
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(changes)
	}
	return nil
}

// notify tells each waiter the result of the write it waited for.
func notify(waiters []chan error, err error) {
	for _, w := range waiters {
		w <- err // capacity 1, one send each
	}
}
