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
	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// procRecord names a workload's process group in a way that survives pid
// reuse: the leader's pid (= pgid), its start time and session, and the boot.
// It is written to <data>/workloads/<id>/proc-<gen>.json when the workload
// starts and removed once its group is gone.
type procRecord struct {
	ID         string `json:"id"`
	Generation uint64 `json:"generation"`
	PGID       int    `json:"pgid"`
	StartTime  uint64 `json:"start_time"`
	Session    int    `json:"session"`
	BootID     string `json:"boot_id"`
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

// killLeftovers kills the process groups recorded under workDir by a
// previous run of the agent and removes their records. A group is killed only
// if it is provably the recorded one:
//   - the leader is alive with the recorded start time, or
//   - the leader is gone but members with the recorded pgid and session,
//     started no earlier than the leader, are left (while any member lives,
//     the kernel does not hand the pgid out again).
//
// It returns the number of groups it killed.
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
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var rec procRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return false, fmt.Errorf("corrupt record: %w", err)
	}
	if rec.PGID <= 1 {
		return false, fmt.Errorf("bad pgid %d", rec.PGID)
	}
	if rec.BootID != bootID {
		return false, nil // rebooted since: nothing of that run survives
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
// run of the agent on this data dir left under its parent cgroup.
func killLeftoverGroups(m *cgroup.Manager, log hclog.Logger) {
	if m == nil {
		return
	}
	groups, procs, err := m.KillAll(cgroupKillTimeout)
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
