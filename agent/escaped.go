package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// instanceEnv is the environment variable that tags every process of a
// workload instance with the agent run, workload id and generation, so that
// processes that leave the instance's process group (setsid, daemons) are
// still found and killed when the instance ends or the agent dies.
const instanceEnv = "MO_INSTANCE"

// newRunID returns a random id for this agent run.
func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// instanceTag is the NAME=VALUE environment entry of an instance.
func (s *supervisor) instanceTag(in *instance) string {
	return instanceEnv + "=" + s.runID + ":" + in.id + ":" + strconv.FormatUint(in.gen, 10)
}

// procScans counts the scans of /proc for tagged processes (killTagged),
// which cgroups make unnecessary.
var procScans atomic.Int64

// killTagged sends SIGKILL to every process whose environment holds exactly
// tag, a few rounds until none is left (a process may fork meanwhile), and
// returns how many it signalled. The agent, a child subreaper, reaps them.
func killTagged(tag string) int {
	procScans.Add(1)
	want := []byte(tag)
	total := 0
	for round := 0; round < 5; round++ {
		n := 0
		for _, pid := range candidates() {
			if pid <= 1 || pid == os.Getpid() {
				continue
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil || !hasEnvEntry(env, want) {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		total += n
		if n == 0 {
			return total
		}
		time.Sleep(10 * time.Millisecond)
	}
	return total
}

// hasEnvEntry reports whether a NUL-separated environment block holds entry.
func hasEnvEntry(env, entry []byte) bool {
	for len(env) > 0 {
		i := bytes.IndexByte(env, 0)
		if i < 0 {
			return bytes.Equal(env, entry)
		}
		if bytes.Equal(env[:i], entry) {
			return true
		}
		env = env[i+1:]
	}
	return false
}

// candidates returns the pids that may be escaped workload processes: once
// their group is dead, they are children of the agent (a child subreaper),
// listed in /proc/self/task/*/children. Where the kernel lacks that file,
// every process is a candidate.
func candidates() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err == nil {
		var out []int
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
			if err != nil {
				ok = false
				break
			}
			for _, f := range bytes.Fields(b) {
				if pid, err := strconv.Atoi(string(f)); err == nil {
					out = append(out, pid)
				}
			}
		}
		if ok {
			return out
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
