package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// procRecord names a workload's process group in a way that survives pid
// reuse: the leader's pid (= pgid), its start time and session, and the boot.
// It is written to <data>/workloads/<id>/proc-<gen>.json when the workload
// starts and removed once its group is gone.
//
// Agents that run each instance under a monitor (monitor.go) write the rest
// too: the monitor (pid and start time, socket), the instance (tag, cgroup,
// start request, ports, restart counts, started_at) and, when the agent
// leaves for a restart, until when the next agent may adopt it and where its
// output.log was. The records of older agents lack them and are only ever
// killed.
type procRecord struct {
	ID         string `json:"id"`
	Generation uint64 `json:"generation"`
	PGID       int    `json:"pgid"`
	StartTime  uint64 `json:"start_time"`
	Session    int    `json:"session"`
	BootID     string `json:"boot_id"`

	Version      int               `json:"version,omitempty"`
	MonitorPID   int               `json:"monitor_pid,omitempty"`
	MonitorStart uint64            `json:"monitor_start_time,omitempty"`
	Socket       string            `json:"socket,omitempty"`
	Tag          string            `json:"tag,omitempty"`
	Cgroup       string            `json:"cgroup,omitempty"`
	StartedAt    time.Time         `json:"started_at,omitzero"`
	Run          int               `json:"run,omitempty"`
	Begun        time.Duration     `json:"begun_boottime,omitempty"`
	LastBegun    time.Duration     `json:"last_begun_boottime,omitempty"`
	Restarts     int               `json:"restarts,omitempty"`
	Attempts     int               `json:"attempts,omitempty"`
	Ports        map[string]int    `json:"ports,omitempty"`
	Request      *api.StartRequest `json:"request,omitempty"`

	// Set when the agent left for a restart (boottime, CLOCK_BOOTTIME
	// nanoseconds, which every process of one boot shares): the next agent
	// adopts the instance only before AdoptBy. State is running, or
	// restarting for an instance waiting for its restart in place (no
	// process; RestartAt says when it is due).
	AdoptBy   time.Duration `json:"adopt_by_boottime,omitempty"`
	State     string        `json:"state,omitempty"`
	RestartAt time.Duration `json:"restart_at_boottime,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	ExitCode  *int          `json:"exit_code,omitempty"`
	Log       *logState     `json:"log,omitempty"`
	// For an instance that had ended (State ended): how, as GET /status
	// showed it, so that the next agent shows it as well.
	EndState string    `json:"end_state,omitempty"`
	Error    string    `json:"error,omitempty"`
	ExitedAt time.Time `json:"exited_at,omitzero"`
}

// recordPath is where the record of generation gen of a workload lives.
func recordPath(workloadDir string, gen uint64) string {
	return filepath.Join(workloadDir, "proc-"+strconv.FormatUint(gen, 10)+".json")
}

// writeProcRecord records the group just started by pid.
func writeProcRecord(path, id string, gen uint64, pid int, bootID string) error {
	st, err := readProcStat(pid)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(procRecord{ID: id, Generation: gen, PGID: pid, StartTime: st.startTime, Session: st.session, BootID: bootID})
	return atomicfile.Write(path, data)
}

// writeRecord writes rec to path atomically.
func writeRecord(path string, rec procRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data)
}

// readRecord reads the record at path.
func readRecord(path string) (procRecord, error) {
	var rec procRecord
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("corrupt record: %w", err)
	}
	return rec, nil
}

// killLeftovers kills the process groups recorded under workDir by a
// previous run of the agent and removes their records. A group is killed only
// if it is provably the recorded one:
//   - the leader is alive with the recorded start time, or
//   - the leader is gone but members with the recorded pgid and session,
//     started no earlier than the leader, are left (while any member lives,
//     the kernel does not hand the pgid out again).
//
// A recorded monitor is killed only if it is alive with its recorded start
// time. It returns the number of groups it killed.
func killLeftovers(workDir, bootID string, log hclog.Logger) int {
	paths, _ := filepath.Glob(filepath.Join(workDir, "*", "proc-*.json"))
	killed := 0
	for _, path := range paths {
		if k, err := killLeftover(path, bootID, log); err != nil {
			log.Warn("cannot check a workload left by the previous run", "record", path, "error", err)
		} else if k {
			killed++
		}
		_ = os.Remove(path)
	}
	return killed
}

// killLeftover handles one record; see killLeftovers.
func killLeftover(path, bootID string, log hclog.Logger) (bool, error) {
	rec, err := readRecord(path)
	if err != nil {
		return false, err
	}
	return killLeftoverRecord(rec, bootID, log)
}

// killLeftoverRecord kills what is left of one recorded instance; see
// killLeftovers.
func killLeftoverRecord(rec procRecord, bootID string, log hclog.Logger) (bool, error) {
	if rec.BootID != bootID {
		return false, nil // rebooted since: nothing of that run survives
	}
	if rec.MonitorPID > 1 {
		if st, err := readProcStat(rec.MonitorPID); err == nil && st.startTime == rec.MonitorStart && st.state != 'Z' {
			log.Warn("killing the monitor of a workload left by the previous run", "id", rec.ID, "generation", rec.Generation, "monitor_pid", rec.MonitorPID)
			_ = syscall.Kill(rec.MonitorPID, syscall.SIGKILL) // its workload's main process dies with it (Pdeathsig)
		}
	}
	if rec.State == stateRecordRestarting || rec.State == stateRecordEnded {
		return false, nil // no process was running
	}
	if rec.PGID <= 1 {
		return false, fmt.Errorf("bad pgid %d", rec.PGID)
	}
	st, err := readProcStat(rec.PGID)
	switch {
	case err == nil && st.startTime == rec.StartTime && st.pgrp == rec.PGID:
		// the leader itself is still there
	case err == nil:
		return false, nil // pid reused by another process: the old group is gone
	case errors.Is(err, os.ErrNotExist):
		if !liveGroupMember(rec) {
			return false, nil
		}
	default:
		return false, err
	}
	log.Warn("killing a workload left by the previous run", "id", rec.ID, "generation", rec.Generation, "pgid", rec.PGID)
	if err := syscall.Kill(-rec.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("kill group %d: %w", rec.PGID, err)
	}
	waitGroupDead(rec.PGID, 2*time.Second)
	return true, nil
}

// killLeftoverGroups kills and removes the instance cgroups that a previous
// run of the agent on this data dir left under its parent cgroup, except
// those of the instances it has adopted (keep, by cgroup name).
func killLeftoverGroups(m *cgroup.Manager, keep map[string]bool, log hclog.Logger) {
	if m == nil {
		return
	}
	groups, procs, err := m.KillAllExcept(cgroupKillTimeout, keep)
	if groups > 0 {
		log.Warn("killed the workload cgroups left by the previous run of this agent", "groups", groups, "processes", procs)
	}
	if err != nil {
		log.Error("cannot remove every workload cgroup left by the previous run", "error", err)
	}
}

// liveGroupMember scans /proc for a live process of the recorded group.
func liveGroupMember(rec procRecord) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		if st.pgrp == rec.PGID && st.session == rec.Session && st.startTime >= rec.StartTime && st.state != 'Z' {
			return true
		}
	}
	return false
}

// waitGroupDead polls until group pgid is gone or only zombies (which the
// previous agent's reaper, now init or a subreaper, collects) are left.
func waitGroupDead(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !groupGone(pgid) && time.Now().Before(deadline) {
		if st, err := readProcStat(pgid); err != nil || st.state == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
