package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// Every run of a workload instance has a monitor: a small process started
// from the agent's own binary (MonitorEnv set, see RunMonitor), in the
// instance's directory, in a process group of its own, that forks and execs
// the workload and stays its parent. It exists so that a workload can outlive
// its agent across a restart, as podman's conmon or containerd's shims do:
//
//   - It starts the workload leading a process group of its own, inside the
//     instance's cgroup when there is one (cloned into it on v2, through the
//     cgroup shim on v1), with Pdeathsig SIGKILL: the workload's main process
//     never outlives its monitor. It is a child subreaper, so the workload's
//     orphaned processes become its children.
//   - It creates the output pipe and holds its read end for the workload's
//     whole life, so a workload never gets EPIPE or SIGPIPE because an agent
//     went away. The agent reads the pipe itself (the monitor passes it the
//     read end, SCM_RIGHTS) while it is attached; while no agent is, the
//     monitor copies the output into output.spool (capped like output.log),
//     which the next agent appends to output.log.
//   - It waits for the workload's main process, kills what is left of its
//     process group, its cgroup and (without cgroups) the processes carrying
//     its instance tag, and records the exit status in exit-<gen>.json, so
//     that it is known even when no agent was there to see it.
//   - It talks to its agent over a unix SOCK_SEQPACKET socket: the socket
//     pair it was started with, or, after a restart, a connection to
//     monitor-<gen>.sock in the instance directory, which it listens on.
//
// It follows its agent through that connection:
//
//   - When the connection ends without a restart announced (the agent was
//     killed, even by SIGKILL, or crashed), it kills the workload's group,
//     cgroup and tagged processes at once: a dead agent is a dead node.
//   - When the agent announced a restart first ({"op":"restart","grace_ms"}),
//     it keeps the workload running and waits up to the grace for a new agent
//     to connect and adopt it ({"op":"adopt"}); when none does, it kills the
//     workload, which must not run on as a stray, since the leader has moved
//     it by then.
//
// A monitor exits once its workload has ended and its agent has taken the
// exit status ({"op":"bye"}), or once the grace has passed without one. It
// ignores the usual termination signals.
const MonitorEnv = "MO_AGENT_MONITOR"

// IsMonitor reports whether this process was started as an instance's
// monitor; the agent's main calls RunMonitor first thing when it is.
func IsMonitor() bool { return os.Getenv(MonitorEnv) == "1" }

// monitorVersion is the version of the monitor's protocol and of the
// records it shares with the agent. A new agent adopts only the instances
// of monitors that speak a version it knows.
const monitorVersion = 1

// monitorArgv0 names monitors in ps.
const monitorArgv0 = "mo-agent-monitor"

// The monitor's inherited files beyond stdin, stdout and stderr (all
// /dev/null): its end of the socket pair to the agent, and its spec.
const (
	monitorCtlFd  = 3
	monitorSpecFd = 4
)

// Timing of the monitor's conversation with its agent.
const (
	monitorWriteTimeout = 2 * time.Second
	monitorMaxMsg       = 64 << 10
)

// Files of the monitor in the instance directory.
const spoolName = "output.spool"

// exitPath is where the monitor of generation gen records its workload's
// end.
func exitPath(dir string, gen uint64) string {
	return dir + "/exit-" + strconv.FormatUint(gen, 10) + ".json"
}

// socketName is the monitor's socket in the instance directory.
func socketName(gen uint64) string { return "monitor-" + strconv.FormatUint(gen, 10) + ".sock" }

// monitorSpec is what the agent tells a new monitor (a JSON file on fd 4).
type monitorSpec struct {
	Version int      `json:"version"`
	ID      string   `json:"id"`
	Gen     uint64   `json:"generation"`
	Path    string   `json:"path"`
	Argv    []string `json:"argv"`
	Env     []string `json:"env"`
	// Tag is the instance tag (instanceEnv=...) in Env.
	Tag string `json:"tag"`
	// Socket is the name to listen on, in the instance directory.
	Socket string `json:"socket"`
	// LogMax caps output.spool.
	LogMax int64  `json:"log_max"`
	BootID string `json:"boot_id"`
	// Cgroup names the instance's cgroup, created by the agent; nil without.
	Cgroup *monitorCgroup `json:"cgroup,omitempty"`
}

// monitorCgroup names an instance's cgroup: the agent's parent group (as
// cgroup.Options) and the instance's group below it.
type monitorCgroup struct {
	Version    int    `json:"version"`
	Mountpoint string `json:"mountpoint"`
	Parent     string `json:"parent"`
	Name       string `json:"name"`
}

// Operations of monitor messages.
const (
	// agent → monitor
	opSignal  = "signal"  // Sig to the workload's group, unless it has been reaped
	opRestart = "restart" // the agent leaves for a restart: keep the workload GraceMS
	opAdopt   = "adopt"   // a new agent takes the instance over (first message of a connection)
	opBye     = "bye"     // the agent has the exit status: the monitor may go
	// monitor → agent
	opStarted = "started" // PID, Start, Session, with the output pipe's read end
	opFailed  = "failed"  // the workload could not start: Errno, or Error
	opHello   = "hello"   // answer to adopt: PID, Start, Session, Exit if it has ended, with the pipe
	opExit    = "exit"    // the workload has ended: Exit
	opOK      = "ok"      // answer to restart
)

// monMsg is one message between an agent and a monitor (one datagram).
type monMsg struct {
	Op      string      `json:"op"`
	Version int         `json:"version,omitempty"`
	ID      string      `json:"id,omitempty"`
	Gen     uint64      `json:"generation,omitempty"`
	Sig     int         `json:"sig,omitempty"`
	GraceMS int64       `json:"grace_ms,omitempty"`
	PID     int         `json:"pid,omitempty"`
	Start   uint64      `json:"start_time,omitempty"`
	Session int         `json:"session,omitempty"`
	Errno   int         `json:"errno,omitempty"`
	Error   string      `json:"error,omitempty"`
	Exit    *exitRecord `json:"exit,omitempty"`
}

// Causes of a workload's end, as its monitor records them.
const (
	causeExited       = "exited"        // by itself, or killed by its agent or anyone else
	causeAgentDied    = "agent_died"    // killed by its monitor: the agent died without a restart
	causeGraceExpired = "grace_expired" // killed by its monitor: no agent adopted it within the grace
)

// exitRecord is how a workload ended, kept in exit-<gen>.json and sent to
// the agent.
type exitRecord struct {
	ID         string    `json:"id"`
	Generation uint64    `json:"generation"`
	PID        int       `json:"pid"`
	StartTime  uint64    `json:"start_time"`
	BootID     string    `json:"boot_id"`
	Code       *int      `json:"exit_code"`
	Error      string    `json:"error,omitempty"` // why the exit status is not known
	OOM        bool      `json:"oom,omitempty"`
	GroupGone  bool      `json:"group_gone"`
	Cause      string    `json:"cause"`
	At         time.Time `json:"at"`
}

// monitor is the state of the monitor process.
type monitor struct {
	spec  monitorSpec
	pid   int // the workload's main process, leader of its group
	start uint64
	sess  int
	r     *os.File // the output pipe's read end
	cg    *cgroup.Group
	ln    *net.UnixListener

	events chan monEvent

	conn     *net.UnixConn // the agent's connection; nil while there is none
	connID   int
	pending  bool // conn was accepted and has not adopted yet
	graceMS  int64
	detached bool // the agent left for a restart; waiting for a new one
	graceC   <-chan time.Time
	expired  bool // the grace has passed without a new agent
	died     bool // the agent died without announcing a restart
	exit     *exitRecord
	done     bool

	sigMu  sync.Mutex
	reaped bool

	spool     *cappedFile
	spoolDone chan struct{}
}

type monEventKind int

const (
	evMsg monEventKind = iota
	evEOF
	evConn
	evExited
)

type monEvent struct {
	kind monEventKind
	conn int
	msg  monMsg
	c    *net.UnixConn
	err  error
}

// RunMonitor is the monitor process (see MonitorEnv); it returns the exit
// code.
func RunMonitor() int {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGPIPE)
	_ = becomeSubreaper()
	syscall.CloseOnExec(monitorCtlFd)
	syscall.CloseOnExec(monitorSpecFd)
	ctl, err := unixConnOf(os.NewFile(monitorCtlFd, "agent"))
	if err != nil {
		return 2
	}
	specFile := os.NewFile(monitorSpecFd, "spec")
	data, err := io.ReadAll(specFile)
	_ = specFile.Close()
	m := &monitor{events: make(chan monEvent, 16)}
	if err == nil {
		err = json.Unmarshal(data, &m.spec)
	}
	if err == nil && m.spec.Version != monitorVersion {
		err = fmt.Errorf("monitor protocol version %d, want %d", m.spec.Version, monitorVersion)
	}
	if err != nil {
		_ = sendMsg(ctl, monMsg{Op: opFailed, Error: "monitor: " + err.Error()}, nil)
		return 2
	}
	return m.run(ctl)
}

// unixConnOf turns an inherited socket into a *net.UnixConn (and closes f).
func unixConnOf(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("not a unix socket")
	}
	return uc, nil
}

func (m *monitor) run(ctl *net.UnixConn) int {
	if err := m.startWorkload(); err != nil {
		msg := monMsg{Op: opFailed, Error: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			msg.Errno = int(errno)
		}
		_ = sendMsg(ctl, msg, nil)
		if m.ln != nil {
			_ = m.ln.Close()
		}
		return 1
	}
	m.conn, m.connID = ctl, 1
	go m.read(ctl, 1)
	go m.accept()
	go func() { m.events <- monEvent{kind: evExited, err: waitExited(m.pid)} }()
	if err := m.send(monMsg{Op: opStarted, Version: monitorVersion, ID: m.spec.ID, Gen: m.spec.Gen, PID: m.pid, Start: m.start, Session: m.sess}, m.r); err != nil {
		m.lost() // the agent is gone already
	}
	for !m.done {
		select {
		case ev := <-m.events:
			m.handle(ev)
		case <-m.graceC:
			m.graceOver()
		}
	}
	if m.conn != nil {
		_ = m.conn.Close()
	}
	_ = m.ln.Close() // removes the socket
	m.stopSpool()
	reapChildren()
	return 0
}

// startWorkload listens on the socket, creates the output pipe and starts
// the workload.
func (m *monitor) startWorkload() error {
	sock := m.spec.Socket
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("monitor: listen on %s: %v", sock, err)
	}
	m.ln = ln
	null, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("monitor: %v", err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("monitor: create output pipe: %v", err)
	}
	wfd := w.Fd() // blocking, for the workload
	attr := &syscall.ProcAttr{
		Env:   m.spec.Env,
		Files: []uintptr{null.Fd(), wfd, wfd},
		// Own process group, so that a stop reaches every process of the
		// workload; SIGKILL when the monitor dies. (Pdeathsig fires when the
		// forking thread exits; Go threads only exit when a goroutine locked
		// to one returns, never here.)
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	var pid int
	if c := m.spec.Cgroup; c != nil {
		mgr, err := cgroup.Open(cgroup.Options{Version: c.Version, Mountpoint: c.Mountpoint, Name: c.Parent})
		if err != nil {
			_ = w.Close()
			_ = r.Close()
			return fmt.Errorf("cannot open the instance's cgroup: %v", err)
		}
		g, err := mgr.Load(c.Name)
		if err != nil {
			_ = w.Close()
			_ = r.Close()
			return fmt.Errorf("cannot open the instance's cgroup: %v", err)
		}
		m.cg = g
		pid, err = g.ForkExec(m.spec.Path, m.spec.Argv, attr)
		if err != nil {
			_ = w.Close()
			_ = r.Close()
			return err
		}
	} else {
		pid, err = syscall.ForkExec(m.spec.Path, m.spec.Argv, attr)
		if err != nil {
			_ = w.Close()
			_ = r.Close()
			return err
		}
	}
	_ = w.Close()
	m.pid, m.r = pid, r
	if st, err := readProcStat(pid); err == nil {
		m.start, m.sess = st.startTime, st.session
	}
	return nil
}

// read passes the messages of connection id on as events, then its end.
func (m *monitor) read(c *net.UnixConn, id int) {
	buf := make([]byte, monitorMaxMsg)
	for {
		n, _, _, _, err := c.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 {
			m.events <- monEvent{kind: evEOF, conn: id}
			return
		}
		var msg monMsg
		if json.Unmarshal(buf[:n], &msg) == nil {
			m.events <- monEvent{kind: evMsg, conn: id, msg: msg}
		}
	}
}

// accept passes new connections on the socket on as events.
func (m *monitor) accept() {
	for {
		c, err := m.ln.AcceptUnix()
		if err != nil {
			return
		}
		m.events <- monEvent{kind: evConn, c: c}
	}
}

func (m *monitor) handle(ev monEvent) {
	switch ev.kind {
	case evConn:
		m.offered(ev.c)
	case evExited:
		m.ended(ev.err)
	case evEOF:
		if m.conn != nil && ev.conn == m.connID {
			m.lost()
		}
	case evMsg:
		if m.conn == nil || ev.conn != m.connID {
			return
		}
		msg := ev.msg
		if m.pending {
			if msg.Op == opAdopt {
				m.adopt()
			}
			return
		}
		switch msg.Op {
		case opSignal:
			m.signal(syscall.Signal(msg.Sig))
		case opRestart:
			if msg.GraceMS > 0 {
				m.graceMS = msg.GraceMS
				m.startSpool()
			}
			_ = m.send(monMsg{Op: opOK}, nil)
		case opBye:
			if m.exit != nil {
				m.done = true
			}
		}
	}
}

// lost handles the end of the attached agent's connection.
func (m *monitor) lost() {
	_ = m.conn.Close()
	m.conn = nil
	if m.pending { // a would-be adopter went away: still waiting
		m.pending = false
		return
	}
	if m.graceMS > 0 {
		m.detached = true
		m.graceC = time.After(time.Duration(m.graceMS) * time.Millisecond)
		m.graceMS = 0
		return
	}
	// The agent died without a restart: a dead agent is a dead node.
	m.died = true
	if m.exit != nil {
		m.done = true
		return
	}
	m.killAll()
}

// offered takes a connection to the socket: while detached, one at a time,
// from the same user (or root); others are closed.
func (m *monitor) offered(c *net.UnixConn) {
	if m.conn != nil || !m.detached || m.expired || !samePeerUser(c) {
		_ = c.Close()
		return
	}
	m.conn = c
	m.connID++
	m.pending = true
	go m.read(c, m.connID)
}

// adopt hands the instance over to the new agent on m.conn.
func (m *monitor) adopt() {
	m.stopSpool()
	hello := monMsg{Op: opHello, Version: monitorVersion, ID: m.spec.ID, Gen: m.spec.Gen, PID: m.pid, Start: m.start, Session: m.sess, Exit: m.exit}
	if err := m.send(hello, m.r); err != nil {
		_ = m.conn.Close()
		m.conn = nil
		m.pending = false
		m.startSpool()
		return
	}
	m.pending = false
	m.detached = false
	m.graceC = nil
}

// graceOver ends the wait for a new agent.
func (m *monitor) graceOver() {
	m.graceC = nil
	if !m.detached {
		return
	}
	m.expired = true
	if m.conn != nil { // an adopter that never said adopt
		_ = m.conn.Close()
		m.conn = nil
		m.pending = false
	}
	if m.exit != nil {
		m.done = true
		return
	}
	m.note("[agent: no agent adopted the workload within its restart grace: killed]")
	m.killAll()
}

// ended handles the end of the workload's main process (err: waitid's).
func (m *monitor) ended(werr error) {
	m.sigMu.Lock()
	if werr == nil {
		// The main process is a zombie, so its pid, and with it the group
		// id, cannot be reused while the rest of the group is killed.
		_ = syscall.Kill(-m.pid, syscall.SIGKILL)
	}
	ws, rerr := reap(m.pid)
	m.reaped = true
	m.sigMu.Unlock()
	rec := &exitRecord{ID: m.spec.ID, Generation: m.spec.Gen, PID: m.pid, StartTime: m.start, BootID: m.spec.BootID, Cause: causeExited}
	switch {
	case m.died:
		rec.Cause = causeAgentDied
	case m.expired:
		rec.Cause = causeGraceExpired
	}
	if werr != nil || rerr != nil {
		rec.Error = fmt.Sprintf("exit status lost: %v", errors.Join(werr, rerr))
	} else {
		c := exitCode(ws)
		rec.Code = &c
	}
	rec.GroupGone = reapGroup(m.pid, groupGoneTimeout)
	if m.cg != nil {
		_, _ = m.cg.Kill(cgroupKillTimeout)
		rec.OOM = m.cg.OOMKilled()
	} else if m.spec.Tag != "" {
		killTagged(m.spec.Tag)
	}
	reapChildren()
	rec.At = time.Now().UTC()
	if !m.died {
		// Kept for the agent, or for the next one to adopt. An agent that
		// died without a restart adopts nothing: nothing more is written
		// in its data dir once it is gone.
		data, _ := json.Marshal(rec)
		_ = atomicfile.Write(exitPath(".", m.spec.Gen), data)
	}
	m.exit = rec
	switch {
	case m.died || m.expired:
		m.done = true
	case m.conn != nil && !m.pending:
		if err := m.send(monMsg{Op: opExit, Exit: rec}, nil); err != nil {
			m.lost()
		}
	}
}

// signal sends sig to the workload's group unless its leader has been
// reaped (then the pgid may belong to someone else).
func (m *monitor) signal(sig syscall.Signal) {
	m.sigMu.Lock()
	defer m.sigMu.Unlock()
	if !m.reaped && sig != 0 {
		_ = syscall.Kill(-m.pid, sig)
	}
}

// killAll kills the workload's group, its cgroup and, without one, every
// process carrying its tag. Its end then comes as an evExited event.
func (m *monitor) killAll() {
	m.signal(syscall.SIGKILL)
	if m.cg != nil {
		_, _ = m.cg.Kill(cgroupKillTimeout)
	} else if m.spec.Tag != "" {
		tag := []byte(m.spec.Tag)
		killEverywhere(func(env []byte) bool { return hasEnvEntry(env, tag) })
	}
}

// send sends msg (and f's descriptor) to the attached agent.
func (m *monitor) send(msg monMsg, f *os.File) error {
	if m.conn == nil {
		return errors.New("no agent")
	}
	return sendMsg(m.conn, msg, f)
}

// startSpool copies the output into output.spool while no agent reads it.
func (m *monitor) startSpool() {
	if m.spoolDone != nil || m.r == nil {
		return
	}
	if m.spool == nil {
		sp, err := createCappedFile(spoolName, max(m.spec.LogMax, MinLogMaxBytes))
		if err != nil {
			return // the output stays in the pipe, which keeps the workload waiting
		}
		m.spool = sp
	}
	_ = m.r.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	m.spoolDone = done
	sp, r := m.spool, m.r
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				_, _ = sp.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
}

// stopSpool stops the copy into output.spool, which keeps what it holds.
func (m *monitor) stopSpool() {
	if m.spoolDone != nil {
		_ = m.r.SetReadDeadline(time.Now())
		<-m.spoolDone
		m.spoolDone = nil
		_ = m.r.SetReadDeadline(time.Time{})
	}
	if m.spool != nil {
		_ = m.spool.Close()
		m.spool = nil
	}
}

// note writes an agent line into the spool, if one is open.
func (m *monitor) note(line string) {
	if m.spool != nil {
		_, _ = m.spool.Write([]byte(line + "\n"))
	}
}

// sendMsg sends one message, with f's descriptor when f is set.
func sendMsg(c *net.UnixConn, msg monMsg, f *os.File) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	var oob []byte
	if f != nil {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var werr error
		cerr := rc.Control(func(fd uintptr) {
			_ = c.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
			_, _, werr = c.WriteMsgUnix(b, syscall.UnixRights(int(fd)), nil)
		})
		return errors.Join(cerr, werr)
	}
	_ = c.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// recvMsg reads one message and the descriptor sent with it, if any (made
// close-on-exec and non-blocking), waiting no longer than timeout (0: no
// limit).
func recvMsg(c *net.UnixConn, timeout time.Duration) (monMsg, *os.File, error) {
	buf := make([]byte, monitorMaxMsg)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	var f *os.File
	if oobn > 0 {
		if cms, perr := syscall.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, cm := range cms {
				fds, err := syscall.ParseUnixRights(&cm)
				if err != nil {
					continue
				}
				for _, fd := range fds {
					if f != nil {
						_ = syscall.Close(fd)
						continue
					}
					syscall.CloseOnExec(fd)
					_ = syscall.SetNonblock(fd, true)
					f = os.NewFile(uintptr(fd), "output-pipe")
				}
			}
		}
	}
	closeF := func() {
		if f != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		closeF()
		return monMsg{}, nil, err
	}
	if n == 0 {
		closeF()
		return monMsg{}, nil, io.EOF
	}
	var msg monMsg
	if err := json.Unmarshal(buf[:n], &msg); err != nil {
		closeF()
		return monMsg{}, nil, fmt.Errorf("bad message from the monitor: %v", err)
	}
	return msg, f, nil
}

// samePeerUser reports whether the process at the other end of c runs as
// this process's user, or as root.
func samePeerUser(c *net.UnixConn) bool {
	cred, err := peerCred(c)
	return err == nil && (int(cred.Uid) == os.Geteuid() || cred.Uid == 0)
}

// peerCred returns the credentials of the process at the other end of c
// (for a connection to a listening socket, the process that listened).
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// reapChildren reaps every ended child of this process.
func reapChildren() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
