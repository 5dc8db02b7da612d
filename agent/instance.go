package agent

import (
	"sync"
	"syscall"
	"time"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
)

// instance is one run (one generation) of a workload.
type instance struct {
	id        string
	gen       uint64
	startedAt time.Time
	dir       string
	exclusive bool          // runs only under the node's lease
	out       *cappedFile   // nil if it could not be created
	cg        *cgroup.Group // its cgroup; nil without cgroups (isolation.go)
	done      chan struct{} // closed once the instance has ended and its group is gone

	// guarded by supervisor.mu
	pid       int
	state     string
	exitCode  *int
	exitedAt  time.Time
	errMsg    string
	stopping  bool
	leaseStop bool // a stop for the end of the lease was started

	// the lifecycle (restart.go, check.go); life, run and begun are set before the
	// instance is published, the rest is guarded by supervisor.mu
	life      *life
	run       int           // 0 for the first run of the generation, n for its n-th restart
	begun     time.Duration // boottime when the run was started
	health    string        // the check's verdict on this run; "" is unknown
	unhealthy string        // why the check killed this run, if it did
	reason    string        // why the run ended, when there is more to say than its exit code

	sigMu  sync.Mutex // orders signals against reaping, so a reused pid is never signalled
	reaped bool       // guarded by sigMu
}

// view is the wire form of the instance; call it under supervisor.mu.
func (in *instance) view() api.AgentWorkload {
	w := api.AgentWorkload{
		ID:         in.id,
		PID:        in.pid,
		State:      in.state,
		StartedAt:  in.startedAt,
		Generation: in.gen,
		Error:      in.errMsg,
		Exclusive:  in.exclusive,
		Reason:     in.reason,
	}
	if in.exitCode != nil {
		c := *in.exitCode
		w.ExitCode = &c
	}
	if !in.exitedAt.IsZero() {
		t := in.exitedAt
		w.ExitedAt = &t
	}
	in.lifeView(&w)
	return w
}

// signal sends sig to the instance's process group unless its leader has
// been reaped (then the pgid may belong to someone else).
func (in *instance) signal(sig syscall.Signal) {
	in.sigMu.Lock()
	defer in.sigMu.Unlock()
	if !in.reaped {
		_ = syscall.Kill(-in.pid, sig)
	}
}
