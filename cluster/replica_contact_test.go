package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestReplicaContactFollowsHeartbeats(t *testing.T) {
	c := newReplicaContact()
	last := time.Now().Add(-2 * time.Second)
	c.observe(raft.FailedHeartbeatObservation{PeerID: "s2", LastContact: last})
	c.observe(raft.FailedHeartbeatObservation{PeerID: "s3", LastContact: last})
	if got, lost := c.lastContact("s2"); !lost || !got.Equal(last) {
		t.Fatalf("s2 after failed heartbeats: %v %v", got, lost)
	}
	c.observe(raft.ResumedHeartbeatObservation{PeerID: "s2"})
	if _, lost := c.lastContact("s2"); lost {
		t.Fatal("s2 still lost after its heartbeats resumed")
	}
	c.observe(raft.PeerObservation{Peer: raft.Server{ID: "s3"}, Removed: true})
	if _, lost := c.lastContact("s3"); lost {
		t.Fatal("a removed peer is still lost")
	}
	c.observe(raft.FailedHeartbeatObservation{PeerID: "s3", LastContact: last})
	c.observe(raft.LeaderObservation{LeaderID: "s2"})
	if _, lost := c.lastContact("s3"); lost {
		t.Fatal("a new leadership kept the old one's view")
	}
	if c.observer() == nil {
		t.Fatal("no observer")
	}
}
