package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/micro-orchestrator/mo/alerts"
)

// replicaContact is what the leader knows of its contact with each
// follower, from raft's heartbeat observations: a follower whose heartbeats
// fail is out of contact since its last successful one, until they resume.
// It feeds the ReplicaDown alert and mo_replica_up.
type replicaContact struct {
	mu   sync.Mutex
	lost map[raft.ServerID]time.Time // follower -> last contact, while its heartbeats fail
}

func newReplicaContact() *replicaContact {
	return &replicaContact{lost: map[raft.ServerID]time.Time{}}
}

// observer returns a raft observer that updates c. It does its work in the
// filter and sends nothing: no goroutine, no channel to drain.
func (c *replicaContact) observer() *raft.Observer {
	return raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		c.observe(o.Data)
		return false
	})
}

func (c *replicaContact) observe(data any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch d := data.(type) {
	case raft.FailedHeartbeatObservation:
		c.lost[d.PeerID] = d.LastContact
	case raft.ResumedHeartbeatObservation:
		delete(c.lost, d.PeerID)
	case raft.PeerObservation:
		if d.Removed {
			delete(c.lost, d.Peer.ID)
		}
	case raft.LeaderObservation:
		// A new leadership starts its replication afresh.
		c.lost = map[raft.ServerID]time.Time{}
	}
}

// lastContact returns when the leader last heard from id, and false while
// it is in contact.
func (c *replicaContact) lastContact(id raft.ServerID) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.lost[id]
	return t, ok
}

// replicaInputs returns the voters of the raft configuration as the leader
// sees them: down when out of contact for longer than the election timeout.
// Only a leader's answer means anything.
func (r *Replica) replicaInputs(now time.Time) []alerts.ReplicaInput {
	addrs := r.replicaHTTPByID()
	var out []alerts.ReplicaInput
	for _, s := range r.servers() {
		if s.Suffrage != raft.Voter {
			continue
		}
		in := alerts.ReplicaInput{ID: string(s.ID), HTTP: addrs[string(s.ID)]}
		if string(s.ID) != r.cfg.ID {
			if last, lost := r.peerContact.lastContact(s.ID); lost && now.Sub(last) > r.cfg.ElectionTimeout {
				in.Down, in.LastContact = true, last
			}
		}
		out = append(out, in)
	}
	return out
}
