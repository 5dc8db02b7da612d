package fsm

import (
	"sync"
	"sync/atomic"

	"github.com/micro-orchestrator/mo/api"
)

// freshLimit bounds the log of new workloads; a reader that falls further
// behind (a follower's, or a leader whose loop stalled) is told to look at
// every pending workload instead.
const freshLimit = 1 << 15

// indexEpochs numbers the indexes, so that a reader can tell a state that
// was replaced (a restore, a loaded state file) from the one it followed.
var indexEpochs atomic.Uint64

// pendingIndex lets the leader's placement look only at what may need a
// node, not at every workload. It is not part of the replicated state (no
// JSON, nothing in Apply reads it): apply functions add to it, and the
// leader's readers prune it, under its own lock, so that they can while they
// only hold the state's read lock.
type pendingIndex struct {
	mu    sync.Mutex
	epoch uint64
	// maybe holds every pending workload and possibly some that no longer
	// are (pruned by the reader that finds them).
	maybe map[string]struct{}
	// fresh are the workloads created since position base, in order.
	fresh []string
	base  uint64
}

func newPendingIndex() *pendingIndex {
	return &pendingIndex{epoch: indexEpochs.Add(1), maybe: map[string]struct{}{}}
}

// indexAll builds the index of a state from its workloads.
func (s *State) indexAll() {
	x := newPendingIndex()
	for id, w := range s.Workloads {
		if w.State == api.StatePending {
			x.maybe[id] = struct{}{}
		}
	}
	s.idx = x
}

// notePending records that workload id is pending; created says it is new.
func (s *State) notePending(id string, created bool) {
	x := s.idx
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.maybe[id] = struct{}{}
	if !created {
		return
	}
	x.fresh = append(x.fresh, id)
	if len(x.fresh) > freshLimit {
		drop := len(x.fresh) / 2
		x.fresh = append([]string(nil), x.fresh[drop:]...)
		x.base += uint64(drop)
	}
}

// FreshMark is a position in the log of created workloads.
type FreshMark struct {
	Epoch, Pos uint64
}

// FreshSince returns the workloads created since mark, in the order they
// were created, and the mark to ask from next. ok is false when the log no
// longer reaches back to mark (or the state was replaced): the caller must
// then look at every pending workload (PendingIDs).
func (s *State) FreshSince(mark FreshMark) (ids []string, next FreshMark, ok bool) {
	x := s.idx
	if x == nil {
		return nil, FreshMark{}, false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	end := FreshMark{Epoch: x.epoch, Pos: x.base + uint64(len(x.fresh))}
	if mark.Epoch != x.epoch || mark.Pos < x.base || mark.Pos > end.Pos {
		return nil, end, false
	}
	return append([]string(nil), x.fresh[mark.Pos-x.base:]...), end, true
}

// PendingIDs returns every workload that is pending (and possibly some that
// are not: check the state), dropping from the index those that are no
// longer pending. Without an index it returns every workload.
func (s *State) PendingIDs() []string {
	x := s.idx
	if x == nil {
		ids := make([]string, 0, len(s.Workloads))
		for id := range s.Workloads {
			ids = append(ids, id)
		}
		return ids
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	ids := make([]string, 0, len(x.maybe))
	for id := range x.maybe {
		if w, ok := s.Workloads[id]; !ok || w.State != api.StatePending {
			delete(x.maybe, id)
			continue
		}
		ids = append(ids, id)
	}
	return ids
}
