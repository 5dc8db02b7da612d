package agent

import (
	"os"
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
	tag       string        // instanceEnv=<agent run>:<id>:<gen>, in its processes' environment (escaped.go)

	// The run's monitor (monitor.go), set before the instance is published:
	// the link to it, the read end of the output pipe, closed once the copy
	// into out has drained it, and, for an instance adopted after it ended
	// while no agent ran, its end.
	mon         *monitorLink
	pr          *os.File
	drained     chan struct{}
	pidStart    uint64 // the main process's start time (clock ticks after boot)
	session     int
	adoptedExit *exitRecord
	// detach is closed when the agent leaves for a restart and keeps this
	// run going; detached once its monitor has been told.
	detach   chan struct{}
	detached chan struct{}

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

// signal sends sig to the instance's process group through its monitor,
// which does so unless it has reaped the group's leader (then the pgid may
// belong to someone else). When the monitor cannot be told, a SIGKILL goes
// to the group directly if its leader is still the recorded process.
func (in *instance) signal(sig syscall.Signal) {
	if in.mon.send(monMsg{Op: opSignal, Sig: int(sig)}) == nil || sig != syscall.SIGKILL {
		return
	}
	killRecordedGroup(in.pid, in.pidStart)
}

// killRecordedGroup sends SIGKILL to process group pgid if its leader is
// alive and started at start (so that a reused pid is never hit).
func killRecordedGroup(pgid int, start uint64) {
	if pgid <= 1 {
		return
	}
	if st, err := readProcStat(pgid); err == nil && st.startTime == start && st.pgrp == pgid {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}
