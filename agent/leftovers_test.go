package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// startGroup starts sh -c script as the leader of its own process group.
func startGroup(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		killGroup(t, pgid)
		_ = cmd.Wait()
		reapGroup(pgid, 5*time.Second)
	})
	return cmd
}

func TestLeftoversOfPreviousRunAreKilled(t *testing.T) {
	if err := becomeSubreaper(); err != nil { // so the test can reap orphaned sleeps
		t.Fatal(err)
	}
	dir := t.TempDir()
	work := filepath.Join(dir, "workloads")
	boot := readBootID()
	record := func(id string, rec procRecord) {
		t.Helper()
		d := filepath.Join(work, id)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(rec)
		if err := os.WriteFile(recordPath(d, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(pid int) procStat {
		t.Helper()
		st, err := readProcStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// 1. A whole group still running, leader included.
	alive := startGroup(t, "sleep 600 & sleep 600")
	pgAlive := alive.Process.Pid
	waitFor(t, 5*time.Second, "group 1 to form", func() bool { return len(groupMembers(pgAlive)) >= 3 })
	if err := os.MkdirAll(filepath.Join(work, "alive"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeProcRecord(recordPath(filepath.Join(work, "alive"), 1), "alive", 1, pgAlive, boot); err != nil {
		t.Fatal(err)
	}

	// 2. A pid that was reused: same pid, another start time. Not ours.
	reused := startGroup(t, "exec sleep 600")
	pgReused := reused.Process.Pid
	st := stat(pgReused)
	record("reused", procRecord{ID: "reused", Generation: 1, PGID: pgReused, StartTime: st.startTime + 1, Session: st.session, BootID: boot})

	// 3. The leader died with the old agent, its background child lives on.
	orphan := exec.Command("sh", "-c", "sleep 600 & read x")
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := orphan.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	pgOrphan := orphan.Process.Pid
	t.Cleanup(func() { killGroup(t, pgOrphan); reapGroup(pgOrphan, 5*time.Second) })
	waitFor(t, 5*time.Second, "group 3 to form", func() bool { return len(groupMembers(pgOrphan)) >= 2 })
	st = stat(pgOrphan)
	record("orphan", procRecord{ID: "orphan", Generation: 1, PGID: pgOrphan, StartTime: st.startTime, Session: st.session, BootID: boot})
	stdin.Close()
	_ = orphan.Wait()
	if len(groupMembers(pgOrphan)) != 1 {
		t.Fatalf("group 3 should hold just the orphaned sleep: %v", groupMembers(pgOrphan))
	}

	// 4. A record from another boot is ignored even if the pid matches.
	record("otherboot", procRecord{ID: "otherboot", Generation: 1, PGID: pgReused, StartTime: st.startTime, Session: st.session, BootID: "another-boot"})

	ta := newTestAgent(t, withDataDir(dir))

	_ = alive.Wait() // the killed leader is the test's child
	for _, pg := range []int{pgAlive, pgOrphan} {
		if !reapGroup(pg, 5*time.Second) {
			t.Errorf("leftover group %d still alive: %v", pg, groupMembers(pg))
		}
	}
	if !running(pgReused) {
		t.Error("a process whose pid matched but start time did not was killed")
	}
	if recs, _ := filepath.Glob(filepath.Join(dir, "workloads*", "*", "proc-*.json")); len(recs) != 0 {
		t.Errorf("records left: %v", recs)
	}
	if _, err := os.Stat(filepath.Join(dir, "workloads.previous", "alive")); err != nil {
		t.Errorf("previous workloads dir not kept: %v", err)
	}
	if len(ta.status().Workloads) != 0 {
		t.Error("a fresh agent reports instances")
	}
}

func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	newTestAgent(t, withDataDir(dir))
	cfg := Config{ID: "n2", DataDir: dir, Token: testToken}.withDefaults()
	if _, err := newAgent(cfg, hclog.NewNullLogger(), agentOptions{}); err == nil {
		t.Fatal("a second agent got the same data dir")
	}
}
