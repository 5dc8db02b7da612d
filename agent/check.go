package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Health checks (Spec.Check) run by the agent against each run of an
// instance that has one: probes every Interval, each bounded by Timeout,
// the first at min(Interval, Grace) after the run started. A success makes
// the run healthy at once; failures count only once Grace has passed, and
// Failures of them in a row make it unhealthy: its process group is killed
// with SIGKILL at once (a hung or SIGSTOPped process never handles SIGTERM)
// and the restart policy takes over, as for any other end of a run.

// checkRun is the checker of one run.
type checkRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the checker and waits for it, probe included.
func (c *checkRun) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

// startChecks starts the checker of a run that has a check; the caller, the
// run's supervise goroutine, stops it once the run's main process has ended.
func (s *supervisor) startChecks(in *instance) *checkRun {
	if in.life == nil || in.life.req.Check == nil {
		return nil
	}
	c := in.life.req.Check
	s.mu.RLock()
	port, hasPort := in.life.ports[c.Port]
	s.mu.RUnlock()
	var probe func(context.Context) error
	switch c.Type {
	case api.CheckHTTP:
		probe = httpProbe(port, hasPort, c)
	case api.CheckTCP:
		probe = tcpProbe(port, hasPort, c)
	case api.CheckExec:
		probe = func(ctx context.Context) error { return s.execProbe(ctx, in, c.Command, c.Timeout.D()) }
	default:
		probe = func(context.Context) error { return fmt.Errorf("unknown check type %q", c.Type) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	cr := &checkRun{cancel: cancel, done: make(chan struct{})}
	s.wg.Add(1) // the caller is counted: Shutdown cannot be past its wait
	go func() {
		defer s.wg.Done()
		defer close(cr.done)
		s.runChecks(ctx, in, c, probe)
	}()
	return cr
}

// runChecks probes the run until ctx is done or the run is found unhealthy.
func (s *supervisor) runChecks(ctx context.Context, in *instance, c *api.Check, probe func(context.Context) error) {
	start := time.Now()
	interval, grace := c.Interval.D(), c.Grace.D()
	t := time.NewTimer(min(interval, grace))
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		err := probe(ctx)
		if ctx.Err() != nil || errors.Is(err, errShuttingDown) {
			return
		}
		t.Reset(max(time.Until(began.Add(interval)), 0))
		if err == nil {
			s.lifecycle.checksOK.Add(1)
			fails = 0
			s.setHealth(in, api.HealthHealthy, "")
			continue
		}
		s.lifecycle.checksFail.Add(1)
		if began.Sub(start) < grace {
			continue
		}
		fails++
		s.log.Debug("health check failed", "id", in.id, "pid", in.pid, "failures", fails, "of", c.Failures, "error", err)
		if fails >= c.Failures {
			s.setHealth(in, api.HealthUnhealthy, "unhealthy: "+err.Error())
			return
		}
	}
}

// setHealth records the check's verdict on a running run; an unhealthy one
// is killed at once, with why as the cause of its end.
func (s *supervisor) setHealth(in *instance, health, why string) {
	s.mu.Lock()
	if in.state != api.InstanceRunning || in.stopping || in.health == health {
		s.mu.Unlock()
		return
	}
	in.health = health
	in.unhealthy = why
	s.notifyLocked()
	s.mu.Unlock()
	if health != api.HealthUnhealthy {
		s.log.Info("workload healthy", "id", in.id, "generation", in.gen, "pid", in.pid)
		return
	}
	s.log.Warn("workload unhealthy: killing its process group", "id", in.id, "generation", in.gen, "pid", in.pid, "reason", why)
	in.signal(syscall.SIGKILL)
}

// httpProbe is a check that GETs http://127.0.0.1:<port><path>: 2xx and
// 3xx are healthy (redirects are not followed).
func httpProbe(port int, hasPort bool, c *api.Check) func(context.Context) error {
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + c.Path
	timeout := c.Timeout.D()
	return func(ctx context.Context) error {
		if !hasPort {
			return fmt.Errorf("GET %s: the workload has no port labelled %q", c.Path, c.Port)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %v", c.Path, err)
		}
		req.Header.Set("User-Agent", "mo-agent-check")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %s", c.Path, probeError(err))
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: status %d", c.Path, resp.StatusCode)
		}
		return nil
	}
}

// tcpProbe is a check that connects to 127.0.0.1:<port>.
func tcpProbe(port int, hasPort bool, c *api.Check) func(context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	timeout := c.Timeout.D()
	return func(ctx context.Context) error {
		if !hasPort {
			return fmt.Errorf("tcp: the workload has no port labelled %q", c.Port)
		}
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp connect to port %d: %s", port, probeError(err))
		}
		_ = conn.Close()
		return nil
	}
}

// probeError makes a network error short: "timeout", or the system's words
// ("connection refused").
func probeError(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// execProbe runs an exec check: argv in the instance's directory with the
// run's environment, in a process group of its own, killed (the whole
// group) at the timeout; exit 0 is healthy.
func (s *supervisor) execProbe(ctx context.Context, in *instance, argv []string, timeout time.Duration) error {
	path, err := resolveCommand(argv[0])
	if err != nil {
		return fmt.Errorf("exec check: %v", err)
	}
	attr := &syscall.ProcAttr{
		Dir:   in.dir,
		Env:   append(slices.Clip(in.life.env), in.tag),
		Files: []uintptr{s.nullFd, s.nullFd, s.nullFd},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	s.forkMu.RLock()
	if s.closed.Load() {
		s.forkMu.RUnlock()
		return errShuttingDown
	}
	pid, err := syscall.ForkExec(path, argv, attr)
	if err == nil {
		s.lifecycle.addProbe(pid) // before the stray reaper can look
	}
	s.forkMu.RUnlock()
	if err != nil {
		return fmt.Errorf("exec check: run %q: %v", argv[0], err)
	}
	defer s.lifecycle.removeProbe(pid)

	exited := make(chan error, 1)
	go func() { exited <- waitExited(pid) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	timedOut := false
	select {
	case err = <-exited:
	case <-t.C:
		timedOut = true
		killProbeGroup(pid)
		err = <-exited
	case <-ctx.Done():
		killProbeGroup(pid)
		err = <-exited
	}
	if err == nil {
		killProbeGroup(pid) // whatever it left behind in its group
	}
	ws, rerr := reap(pid)
	switch {
	case timedOut:
		return fmt.Errorf("exec check: timeout after %s", timeout)
	case err != nil || rerr != nil:
		return fmt.Errorf("exec check: exit status lost: %v", errors.Join(err, rerr))
	case ws.Signaled():
		return fmt.Errorf("exec check: killed by signal %d", ws.Signal())
	case ws.ExitStatus() != 0:
		return fmt.Errorf("exec check: exit code %d", ws.ExitStatus())
	}
	return nil
}

// killProbeGroup kills an exec check's process group; its leader is not
// reaped yet, so the group id is still its own.
func killProbeGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
