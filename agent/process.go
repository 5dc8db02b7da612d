package agent

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tokenEnv is the environment variable that may hold the cluster token.
const tokenEnv = "SCHEDULER_TOKEN"

// procStat is what the agent needs from /proc/<pid>/stat.
type procStat struct {
	state     byte
	ppid      int
	pgrp      int
	session   int
	startTime uint64 // clock ticks after boot; with the boot id it names a process uniquely
}

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func parseProcStat(data []byte) (procStat, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat line")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || len(f[0]) == 0 {
		return procStat{}, errors.New("short /proc stat line")
	}
	var st procStat
	var err1, err2, err3, err4 error
	st.state = f[0][0]
	st.ppid, err1 = strconv.Atoi(f[1])
	st.pgrp, err2 = strconv.Atoi(f[2])
	st.session, err3 = strconv.Atoi(f[3])
	st.startTime, err4 = strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat line: %w", err)
	}
	return st, nil
}

// readBootID returns the kernel's boot id; process start times are only
// comparable within one boot.
func readBootID() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// becomeSubreaper makes orphaned descendants of this process (a workload's
// background children whose parent died) its children rather than init's,
// so that the agent can reap them and know when a process group is gone.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// waitExited blocks until child pid has ended, without reaping it: the pid
// (and so the process group id) stays reserved until reap is called.
func waitExited(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// reap collects the exit status of child pid, blocking until it has ended.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return ws, err
		}
	}
}

// exitCode is the exit status, or 128+signal for a process killed by a signal.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// groupGone reports whether process group pgid has no member left (zombies
// count as members until reaped).
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// reapGroup reaps the members of group pgid that are children of the agent
// (orphans come to it as a subreaper) until the group is empty or timeout
// passes; it reports whether the group is gone.
func reapGroup(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || wpid <= 0 {
				break
			}
		}
		if groupGone(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// siPidOffset is the offset of si_pid in siginfo_t: after three int32 fields,
// aligned to the pointer size.
const siPidOffset = (12 + unsafe.Sizeof(uintptr(0)) - 1) / unsafe.Sizeof(uintptr(0)) * unsafe.Sizeof(uintptr(0))

// endedChild returns the pid of one ended but not yet reaped child of the
// agent, or 0 when there is none. It does not reap it.
func endedChild() int {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return 0
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), siPidOffset)))
}

// workloadBaseEnv is environ without the cluster token: SCHEDULER_TOKEN and
// any variable whose value is the token are dropped.
func workloadBaseEnv(environ []string, token string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k == tokenEnv || (token != "" && v == token) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// mergeEnv returns base with the variables of extra added or replaced.
func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := extra[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		out = append(out, k+"="+extra[k])
	}
	return out
}

// resolveCommand finds the executable for name as exec.Command would (a name
// without a slash is looked up in the agent's PATH) and makes it absolute,
// since the workload runs in its own directory.
func resolveCommand(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(path) {
		return filepath.Abs(path)
	}
	return path, nil
}

// isCommandFault tells whether an exec error is due to the command (missing,
// not executable, bad format, arguments too long) rather than to the machine
// (out of processes or memory).
func isCommandFault(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.E2BIG,
		syscall.EISDIR, syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.ETXTBSY, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
