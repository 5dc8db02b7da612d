package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ShimEnv marks a process started as the cgroup shim: the agent's own
// binary, re-executed by Group.ForkExec, whose main calls RunShim first
// thing when IsShim reports true. Its arguments are
//
//	mo-cgroup-shim PROCS_FILE... -- PATH ARGV0 ARGS...
//
// fd 3 is a pipe back to the agent and fd 4 a file that holds the command's
// environment (NUL-terminated entries). The shim itself runs with an
// environment of its own (ShimEnv and GOMAXPROCS only), so that nothing of
// the workload's (LD_PRELOAD, say) takes effect before it is in its group.
// It writes its pid into every PROCS_FILE (cgroup.procs of the instance's
// group in each hierarchy), says "ok" on the pipe and execve's PATH with the
// argv and that environment. The process keeps its pid, process group and
// parent, and runs none of the workload's code outside its group. When the
// execve fails the shim reports its errno ("E<n>"), when a cgroup write
// fails the error ("C<text>"), and exits.
const ShimEnv = "MO_CGROUP_SHIM"

// shimArgv0 names the shim in ps until it execs.
const shimArgv0 = "mo-cgroup-shim"

// shimTimeout bounds the wait for the shim to exec the command.
const shimTimeout = 10 * time.Second

// The shim's extra files: its end of the pipe to the agent, and the
// command's environment.
const (
	shimStatusFd = 3
	shimEnvFd    = 4
)

// IsShim reports whether this process was started as the cgroup shim.
func IsShim() bool { return os.Getenv(ShimEnv) == "1" }

// RunShim is the cgroup shim (see ShimEnv). It returns only when it failed,
// with the exit code.
func RunShim() int {
	status := os.NewFile(shimStatusFd, "shim-status")
	syscall.CloseOnExec(shimStatusFd) // the command must not inherit it
	say := func(msg string) { _, _ = status.Write([]byte(msg + "\n")) }
	envFile := os.NewFile(shimEnvFd, "shim-env")
	block, err := io.ReadAll(envFile)
	_ = envFile.Close()
	if err != nil {
		say("Cread the environment: " + err.Error())
		return 126
	}
	var env []string
	for kv := range bytes.SplitSeq(block, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	args := os.Args[1:]
	sep := slices.Index(args, "--")
	if sep < 0 || len(args) < sep+3 {
		say("Cbad shim arguments")
		return 126
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, f := range args[:sep] {
		if err := writeProcs(f, pid); err != nil {
			say("C" + strings.ReplaceAll(err.Error(), "\n", " "))
			return 126
		}
	}
	say("ok")
	err = syscall.Exec(args[sep+1], args[sep+2:], env)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EINVAL
	}
	say("E" + strconv.Itoa(int(errno)))
	return 127
}

// writeProcs moves this process into a group: one write of its pid to the
// group's cgroup.procs (the shim stays as small as it can).
func writeProcs(file string, pid []byte) error {
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(pid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("join %s: %w", file, err)
	}
	return nil
}

// withoutShimEnv drops every ShimEnv entry.
func withoutShimEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, ShimEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// ForkExec starts path with argv and attr as syscall.ForkExec does, with
// the new process inside g before it runs any code of path: cloned into the
// group on v2, else through the shim. An exec failure is the same
// syscall.Errno that syscall.ForkExec returns; a failure of the cgroup
// machinery is an error that wraps none.
func (g *Group) ForkExec(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	if dir := g.b.dir(); dir != "" && !g.m.noClone.Load() {
		pid, err := forkInto(dir, path, argv, attr)
		if err == nil || !cloneRefused(err) {
			return pid, err
		}
		pid, serr := g.forkShim(path, argv, attr)
		if serr == nil {
			g.m.noClone.Store(true)
			g.m.warn("the kernel cannot clone a process into its cgroup; instances enter theirs through the shim", "error", err)
		}
		return pid, serr
	}
	return g.forkShim(path, argv, attr)
}

// forkInto forks with CLONE_INTO_CGROUP (clone3) into the group at dir.
func forkInto(dir, path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open cgroup %s: %v", dir, err)
	}
	defer unix.Close(fd)
	a := *attr
	sys := syscall.SysProcAttr{}
	if attr.Sys != nil {
		sys = *attr.Sys
	}
	sys.UseCgroupFD = true
	sys.CgroupFD = fd
	a.Sys = &sys
	return syscall.ForkExec(path, argv, &a)
}

// cloneRefused tells the errors of a kernel without clone3 or
// CLONE_INTO_CGROUP (which the shim then works around).
func cloneRefused(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.E2BIG) || errors.Is(err, syscall.EOPNOTSUPP)
}

// envBlock returns a file, read from its start, that holds env as
// NUL-terminated entries: a memfd, else an unlinked temporary file.
func envBlock(env []string) (*os.File, error) {
	var f *os.File
	if fd, err := unix.MemfdCreate("mo-cgroup-shim-env", unix.MFD_CLOEXEC); err == nil {
		f = os.NewFile(uintptr(fd), "mo-cgroup-shim-env")
	} else {
		if f, err = os.CreateTemp("", "mo-cgroup-shim-env-"); err != nil {
			return nil, err
		}
		_ = os.Remove(f.Name())
	}
	var b bytes.Buffer
	for _, kv := range env {
		b.WriteString(kv)
		b.WriteByte(0)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// forkShim starts the shim (see ShimEnv) and waits until it has exec'd the
// command.
func (g *Group) forkShim(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start the cgroup shim: %v", err)
	}
	defer r.Close()
	if len(attr.Files) != shimStatusFd {
		_ = w.Close()
		return 0, fmt.Errorf("start the cgroup shim: want 3 files (stdin, stdout, stderr), got %d", len(attr.Files))
	}
	envFile, err := envBlock(withoutShimEnv(attr.Env))
	if err != nil {
		_ = w.Close()
		return 0, fmt.Errorf("start the cgroup shim: %v", err)
	}
	defer envFile.Close()
	a := *attr
	a.Files = append(slices.Clip(attr.Files), w.Fd(), envFile.Fd())
	a.Env = []string{ShimEnv + "=1", "GOMAXPROCS=1"}
	args := append([]string{shimArgv0}, g.b.procsFiles()...)
	args = append(args, "--", path)
	args = append(args, argv...)
	// /proc/self/exe is, in the child, the agent's binary even if the file
	// has been replaced since.
	pid, err := syscall.ForkExec("/proc/self/exe", args, &a)
	_ = w.Close()
	if err != nil {
		return 0, fmt.Errorf("start the cgroup shim: %v", err)
	}
	_ = r.SetReadDeadline(time.Now().Add(shimTimeout))
	out, rerr := io.ReadAll(r)
	ok := false
	var fail error
	for line := range bytes.Lines(out) {
		line = bytes.TrimSpace(line)
		switch {
		case string(line) == "ok":
			ok = true
		case bytes.HasPrefix(line, []byte("E")):
			n, _ := strconv.Atoi(string(line[1:]))
			fail = syscall.Errno(n)
		case bytes.HasPrefix(line, []byte("C")):
			fail = fmt.Errorf("the cgroup shim could not enter the group: %s", line[1:])
		}
	}
	switch {
	case rerr != nil:
		fail = fmt.Errorf("the cgroup shim did not start the command within %s", shimTimeout)
	case fail == nil && !ok:
		fail = errors.New("the cgroup shim ended before it started the command")
	}
	if fail == nil {
		return pid, nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	return 0, fail
}
