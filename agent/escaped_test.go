package agent

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A process that left the workload's process group (setsid) is still killed
// when the workload is stopped: it carries the instance's tag.
func TestStopKillsProcessesThatLeftTheGroup(t *testing.T) {
	ta := newTestAgent(t)
	resp := ta.mustStart(sh("esc", `setsid sleep 600 & echo $! > escaped.pid; sleep 600`, 1, 1))
	t.Cleanup(func() { killGroup(t, resp.PID) })
	pidFile := filepath.Join(ta.cfg.DataDir, "workloads", "esc", "escaped.pid")
	var escaped int
	waitFor(t, 5*time.Second, "the escaped pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		escaped, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && running(escaped)
	})
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL); reapIfChild(escaped) })
	waitFor(t, 5*time.Second, "the escaped process in a group of its own", func() bool {
		st, err := readProcStat(escaped)
		return err == nil && st.pgrp != resp.PID
	})

	if code, _, msg := ta.stop("esc", 1, 1); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	waitFor(t, 5*time.Second, "the escaped process killed", func() bool {
		reapIfChild(escaped)
		return !running(escaped)
	})
}

func TestHasEnvEntry(t *testing.T) {
	env := []byte("A=1\x00MO_INSTANCE=r:w:1\x00B=2")
	for entry, want := range map[string]bool{"MO_INSTANCE=r:w:1": true, "A=1": true, "B=2": true, "MO_INSTANCE=r:w:10": false, "MO_INSTANCE=r:w": false} {
		if got := hasEnvEntry(env, []byte(entry)); got != want {
			t.Errorf("hasEnvEntry(%q) = %v, want %v", entry, got, want)
		}
	}
}
