package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// monitorStartTimeout bounds the wait for a new monitor to say whether its
// workload started (it may go through the cgroup shim, which has a bound of
// its own).
const monitorStartTimeout = 15 * time.Second

// monitorHelloTimeout bounds the wait for an adopted monitor's answer.
const monitorHelloTimeout = 2 * time.Second

// monitorGoneTimeout bounds the wait for a monitor to end once it has been
// told it may.
const monitorGoneTimeout = 2 * time.Second

// monitorLink is the agent's connection to the monitor of one run.
type monitorLink struct {
	conn  *net.UnixConn
	pid   int  // the monitor's
	child bool // started by this agent (reaped by it)

	wmu  sync.Mutex
	msgs chan monMsg   // the monitor's messages after the handshake; closed once it has gone
	quit chan struct{} // closed by close
	once sync.Once
}

func newLink(conn *net.UnixConn, pid int, child bool) *monitorLink {
	return &monitorLink{conn: conn, pid: pid, child: child, msgs: make(chan monMsg, 8), quit: make(chan struct{})}
}

// listen passes the monitor's messages on msgs until the connection ends.
func (l *monitorLink) listen() {
	defer close(l.msgs)
	for {
		msg, f, err := recvMsg(l.conn, 0)
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			return
		}
		select {
		case l.msgs <- msg:
		case <-l.quit:
			return
		}
	}
}

// send sends one message to the monitor.
func (l *monitorLink) send(msg monMsg) error {
	if l == nil {
		return errors.New("no monitor")
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_ = l.conn.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
	_, err = l.conn.Write(b)
	return err
}

// close ends the connection: for a monitor that was not told of a restart,
// that is the agent's death, and it kills its workload.
func (l *monitorLink) close() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		close(l.quit)
		_ = l.conn.Close()
	})
}

// awaitGone waits, up to timeout, for the monitor to close the connection,
// then closes it too and reaps the monitor if it is this agent's child.
func (l *monitorLink) awaitGone(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
wait:
	for {
		select {
		case _, ok := <-l.msgs:
			if !ok {
				break wait
			}
		case <-t.C:
			break wait
		}
	}
	l.close()
	reapOurs(l.pid, l.child, timeout)
}

// reapOurs reaps pid once it has ended, if it is a child of this process;
// a child that does not end within timeout is killed first. A process that is
// not our child is left alone.
func reapOurs(pid int, child bool, timeout time.Duration) {
	if pid <= 1 {
		return
	}
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil || wpid == pid:
			return // reaped, or not our child (ECHILD)
		}
		if time.Now().After(deadline) {
			if !child {
				return
			}
			// An unreaped child: the pid is still its own.
			_ = syscall.Kill(pid, syscall.SIGKILL)
			_, _ = reap(pid)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// monitorEnv is the monitor's own environment; the workload's travels in
// its spec.
func monitorEnv() []string {
	return append([]string{MonitorEnv + "=1", "PATH=/usr/bin:/bin", "LC_ALL=C", "GOMAXPROCS=1"}, runtimeEnv()...)
}

// runtimeEnv passes the agent's race detector options (GORACE, only read by
// a binary built with -race) on to the processes it starts from its own
// binary.
func runtimeEnv() []string {
	if v, ok := os.LookupEnv("GORACE"); ok {
		return []string{"GORACE=" + v}
	}
	return nil
}

// startMonitor starts the monitor of run in (the caller holds forkMu
// shared) and waits for it to start the workload. It returns the link,
// the monitor's started message and the read end of the output pipe. A
// workload that could not be exec'd gives the syscall.Errno; then the
// monitor has been reaped.
func (s *supervisor) startMonitor(in *instance, spec monitorSpec) (*monitorLink, monMsg, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, monMsg{}, nil, fmt.Errorf("cannot start the workload's monitor: %v", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "monitor")
	theirs := os.NewFile(uintptr(fds[1]), "agent")
	specFile, err := specBlock(spec)
	if err != nil {
		_ = ours.Close()
		_ = theirs.Close()
		return nil, monMsg{}, nil, fmt.Errorf("cannot start the workload's monitor: %v", err)
	}
	// /proc/self/exe is the agent's binary even if the file has been
	// replaced since (an upgrade in progress): the monitor speaks the
	// protocol of the agent that starts it.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{monitorArgv0, in.id}, &syscall.ProcAttr{
		Dir:   in.dir,
		Env:   monitorEnv(),
		Files: []uintptr{s.nullFd, s.nullFd, s.nullFd, theirs.Fd(), specFile.Fd()},
		// A process group of its own: a Ctrl-C or a signal to the agent's
		// group does not reach it.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	_ = theirs.Close()
	_ = specFile.Close()
	if err != nil {
		_ = ours.Close()
		return nil, monMsg{}, nil, fmt.Errorf("cannot start the workload's monitor: %v", err)
	}
	conn, err := unixConnOf(ours)
	if err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_, _ = reap(pid)
		return nil, monMsg{}, nil, fmt.Errorf("cannot talk to the workload's monitor: %v", err)
	}
	l := newLink(conn, pid, true)
	msg, pr, err := recvMsg(conn, monitorStartTimeout)
	switch {
	case err == nil && msg.Op == opStarted && pr != nil && msg.PID > 1:
		go l.listen()
		return l, msg, pr, nil
	case err == nil && msg.Op == opFailed:
		if pr != nil {
			_ = pr.Close()
		}
		l.close()
		reapOurs(pid, true, monitorGoneTimeout)
		if msg.Errno != 0 {
			return nil, msg, nil, syscall.Errno(msg.Errno)
		}
		return nil, msg, nil, errors.New(msg.Error)
	}
	if pr != nil {
		_ = pr.Close()
	}
	l.close()
	_ = syscall.Kill(pid, syscall.SIGKILL) // not reaped yet: still ours
	_, _ = reap(pid)
	if err == nil {
		err = fmt.Errorf("unexpected %q", msg.Op)
	}
	return nil, monMsg{}, nil, fmt.Errorf("the workload's monitor did not start it: %v", err)
}

// specBlock returns a file, read from its start, that holds spec as JSON.
func specBlock(spec monitorSpec) (*os.File, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var f *os.File
	if fd, err := unix.MemfdCreate("mo-agent-monitor-spec", unix.MFD_CLOEXEC); err == nil {
		f = os.NewFile(uintptr(fd), "mo-agent-monitor-spec")
	} else {
		if f, err = os.CreateTemp("", "mo-agent-monitor-spec-"); err != nil {
			return nil, err
		}
		_ = os.Remove(f.Name())
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// dialMonitor connects to the socket of a monitor left by the previous run
// of the agent and checks that the process listening on it is pid.
func dialMonitor(dir, name string, pid int) (*net.UnixConn, error) {
	path := filepath.Join(dir, name)
	if len(path) >= 100 { // sun_path holds 108 bytes: reach the directory through a descriptor
		d, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		path = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + name
	}
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	cred, err := peerCred(c)
	if err != nil || int(cred.Pid) != pid {
		_ = c.Close()
		if err == nil {
			err = fmt.Errorf("the socket belongs to process %d, not to the recorded monitor %d", cred.Pid, pid)
		}
		return nil, err
	}
	return c, nil
}
