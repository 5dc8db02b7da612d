package alerts

import (
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// ReplicaInput is one voter of the raft configuration as the leader sees
// it. The leader itself is one, never Down.
type ReplicaInput struct {
	ID, HTTP string
	// Down is set when the leader has not been in contact with this voter
	// for longer than the election timeout; LastContact is then when it was.
	Down        bool
	LastContact time.Time
}

// replicaDown returns a ReplicaDown alert for each voter that is down. It
// is critical when the voters still in contact are no more than a majority,
// so that the loss of one more stops the cluster (one of three down), and a
// warning while the cluster can lose another one (one of five down).
func replicaDown(rs []ReplicaInput, now time.Time) []api.Alert {
	up := 0
	for _, r := range rs {
		if !r.Down {
			up++
		}
	}
	majority := len(rs)/2 + 1
	severity, consequence := api.SeverityWarning, fmt.Sprintf("it can lose %d more", up-majority)
	if up <= majority {
		severity, consequence = api.SeverityCritical, "the loss of one more stops it"
	}
	var out []api.Alert
	for _, r := range rs {
		if !r.Down {
			continue
		}
		since := orNow(r.LastContact, now)
		addr := r.HTTP
		if addr == "" {
			addr = "address unknown"
		}
		out = append(out, api.Alert{
			Name: api.AlertReplicaDown, Severity: severity, Subject: r.ID, Value: now.Sub(since).Seconds(),
			Summary: fmt.Sprintf("replica %s (%s) is out of contact with the leader: %d of %d voters in contact, a majority is %d; %s",
				r.ID, addr, up, len(rs), majority, consequence),
			Since: since,
		})
	}
	return out
}
