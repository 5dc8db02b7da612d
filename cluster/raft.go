package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrNotLeader is returned when a write reaches a replica that does not lead.
var ErrNotLeader = errors.New("this replica is not the leader")

// ErrOutcomeUnknown is returned when leadership was lost while a write was
// being committed: it may or may not have been applied.
var ErrOutcomeUnknown = errors.New("leadership was lost while the write was being committed; it may or may not have been applied")

// openRaft creates the raft node on the data dir: raft-boltdb/v2 for the log
// and stable store, a file snapshot store and a TCP transport. It reports
// whether the data dir already held raft state.
func (r *Replica) openRaft() (bool, error) {
	c := r.cfg
	dir := filepath.Join(c.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second},
	})
	if err != nil {
		return false, fmt.Errorf("open raft store %s (is another replica using this data dir?): %w", dir, err)
	}
	r.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, r.log.Named("snapshots"))
	if err != nil {
		return false, fmt.Errorf("open snapshot store: %w", err)
	}
	advertise, err := net.ResolveTCPAddr("tcp", c.AdvertiseRaft)
	if err != nil {
		return false, fmt.Errorf("--advertise-raft %s: %w", c.AdvertiseRaft, err)
	}
	trans, err := r.raftTransport(advertise)
	if err != nil {
		return false, fmt.Errorf("listen for raft on %s: %w", c.RaftAddr, err)
	}
	r.tlsMu.Lock()
	r.transport = trans
	r.tlsMu.Unlock()
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return false, err
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = 20 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	// A dead peer makes raft log the same failure several times a second.
	rc.Logger = newRepeatLogger(r.log.Named("raft"), repeatWindow)
	rc.NotifyCh = r.leaderCh
	ra, err := raft.NewRaft(rc, r.fsm, store, store, snaps, trans)
	if err != nil {
		return false, fmt.Errorf("start raft: %w", err)
	}
	r.raft = ra
	ra.RegisterObserver(r.peerContact.observer())
	return existing, nil
}

// bootstrap makes this replica a one-voter cluster on an empty data dir.
func (r *Replica) bootstrap() error {
	cfg := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(r.cfg.ID),
		Address:  raft.ServerAddress(r.cfg.AdvertiseRaft),
	}}}
	if err := r.raft.BootstrapCluster(cfg).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}
