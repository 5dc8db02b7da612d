package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// Defaults applied by Run to Config fields left at their zero value.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultStopGrace      = 10 * time.Second
	DefaultLogMaxBytes    = 10 << 20
	DefaultSampleInterval = time.Second
	// DefaultRestartGrace is the default of agent --restart-grace (a zero
	// Config.RestartGrace means none: a shutdown stops every workload).
	DefaultRestartGrace = 10 * time.Second
	// DefaultDrainDeadline is the default of Config.DrainDeadline.
	DefaultDrainDeadline = time.Hour
	// MaxRestartGrace bounds Config.RestartGrace.
	MaxRestartGrace = time.Hour
)

// MinLogMaxBytes is the smallest accepted per-workload output cap.
const MinLogMaxBytes = 4 << 10

// Config is everything the agent needs; cmd/agent fills it from its flags.
type Config struct {
	// ID is the node id the agent registers under (required).
	ID string
	// Listen is the TCP address the HTTP API binds (default DefaultListen).
	Listen string
	// Advertise is the host:port the schedulers use to reach the agent. When
	// empty it is Listen (or the bound address when Listen has port 0), which
	// is refused if Listen binds a wildcard address.
	Advertise string
	// Join lists scheduler replica HTTP addresses (host:port or http(s) URL),
	// tried in turn until one accepts the registration. Empty: no registration.
	Join []string
	// DataDir holds the agent's state and the workloads' output (required).
	DataDir string
	// Token is the cluster token. Empty is refused unless Insecure is set.
	Token string
	// Insecure allows an empty Token: then anyone who reaches the agent can
	// run commands on this machine.
	Insecure bool
	// StopGrace is the wait between SIGTERM and SIGKILL when stopping a
	// workload's process group (default DefaultStopGrace).
	StopGrace time.Duration
	// ShutdownTimeout caps the whole shutdown once Run's context is done
	// (default StopGrace + 5s).
	ShutdownTimeout time.Duration
	// LogMaxBytes caps each workload's output.log (default DefaultLogMaxBytes).
	LogMaxBytes int64
	// CPUFile is a failure-drill hook: when set, the reported cpu_usage is
	// read from this file (a number, in percent) at each sample instead of
	// being measured from /proc/stat. If the file is missing or does not hold
	// a number, the measured value is reported.
	CPUFile string
	// SampleInterval is how often CPU and memory are sampled (default
	// DefaultSampleInterval).
	SampleInterval time.Duration
	// HeartbeatInterval is how often the agent sends its heartbeat to every
	// replica (default DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// PortRange is where the ports of workloads (their spec's ports) are
	// picked from (default DefaultPortRange).
	PortRange PortRange
	// TLS, when set, serves the agent API on mutual TLS to server
	// certificates only and makes every call to the schedulers over TLS;
	// nil speaks plaintext (and says so).
	TLS *tlsutil.Store
	// CPUMillicores and MemoryMB are the capacity the node offers to
	// placement; zero detects it (the CPUs this process may run on ×1000,
	// MemTotal of /proc/meminfo).
	CPUMillicores int
	MemoryMB      int
	// NoCgroups runs workloads without cgroups (no resource limits), as on
	// a machine that has none.
	NoCgroups bool
	// RestartGrace, when positive, makes a shutdown (the end of Run's
	// context) leave the workloads running for the next agent started on the
	// same data dir, which adopts them if it comes within RestartGrace; each
	// workload's monitor kills it otherwise. The agent tells the schedulers
	// first (POST /nodes/{id}/restarting), so that the leader waits that
	// long before it moves them. Zero stops every workload at shutdown.
	RestartGrace time.Duration
	// DrainOnShutdown makes a shutdown first ask the schedulers to drain
	// the node, with DrainDeadline (default DefaultDrainDeadline), and wait
	// until the drain is over (the node shows draining false) before it
	// stops what is left. Interrupt during the drain leaves at once instead,
	// keeping the workloads as RestartGrace says.
	DrainOnShutdown bool
	DrainDeadline   time.Duration
	// Interrupt, when set, is closed by a second request to stop (a second
	// SIGTERM or SIGINT): during a drain the agent leaves at once, keeping
	// its workloads for the next agent (with RestartGrace) or stopping them
	// (without); while it stops every workload, it exits at once and its
	// workloads die with it, as with SIGKILL.
	Interrupt <-chan struct{}
}

// DefaultHeartbeatInterval is the default of Config.HeartbeatInterval.
const DefaultHeartbeatInterval = time.Second

// withDefaults returns c with zero-valued optional fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.StopGrace == 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = c.StopGrace + 5*time.Second
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.PortRange == (PortRange{}) {
		c.PortRange = DefaultPortRange
	}
	if c.DrainDeadline == 0 {
		c.DrainDeadline = DefaultDrainDeadline
	}
	return c
}

// String describes c for logs and never shows the token.
func (c Config) String() string {
	tok := "none"
	if c.Token != "" {
		tok = "set"
	}
	return fmt.Sprintf("id=%s listen=%s advertise=%s join=%v data=%s token=%s insecure=%t stop-grace=%s log-max-bytes=%d cpu-file=%q port-range=%s restart-grace=%s drain-on-shutdown=%t drain-deadline=%s",
		c.ID, c.Listen, c.Advertise, c.Join, c.DataDir, tok, c.Insecure, c.StopGrace, c.LogMaxBytes, c.CPUFile, c.PortRange, c.RestartGrace, c.DrainOnShutdown, c.DrainDeadline)
}

// Validate reports every problem with c (after defaults are applied) as one
// error; a nil answer means Run can start with it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case c.ID == "":
		add("--id is required")
	case len(c.ID) > 128:
		add("--id %q is longer than 128 characters", c.ID)
	case strings.ContainsFunc(c.ID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '/' }):
		add("--id %q must not contain spaces, slashes or control characters", c.ID)
	}

	listenHost, _, err := splitHostPort(c.Listen, true)
	if err != nil {
		add("--listen %q: %v", c.Listen, err)
	}
	if c.Advertise != "" {
		host, _, err := splitHostPort(c.Advertise, false)
		switch {
		case err != nil:
			add("--advertise %q: %v", c.Advertise, err)
		case isWildcard(host):
			add("--advertise %q must name an address the schedulers can reach, not a wildcard", c.Advertise)
		}
	} else if err == nil && isWildcard(listenHost) {
		add("--listen %q binds every interface: give --advertise HOST:PORT, the address the schedulers can reach", c.Listen)
	}

	for _, j := range c.Join {
		if _, err := joinURL(j); err != nil {
			add("--join %q: %v", j, err)
		}
	}
	if c.DataDir == "" {
		add("--data is required")
	}
	switch {
	case c.Token == "" && !c.Insecure:
		add("no cluster token: pass --token or set SCHEDULER_TOKEN (or --insecure to run without one, which lets anyone who reaches the agent run commands)")
	case strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		add("the cluster token must not contain spaces or control characters")
	}
	if c.StopGrace < 0 {
		add("--stop-grace must be positive, not %s", c.StopGrace)
	}
	if c.ShutdownTimeout < 0 {
		add("shutdown timeout must be positive, not %s", c.ShutdownTimeout)
	}
	if c.LogMaxBytes < MinLogMaxBytes {
		add("--log-max-bytes must be at least %d, not %d", MinLogMaxBytes, c.LogMaxBytes)
	}
	if c.SampleInterval < 10*time.Millisecond {
		add("sample interval must be at least 10ms, not %s", c.SampleInterval)
	}
	if c.CPUMillicores < 0 || c.CPUMillicores > api.MaxCPUMillicores {
		add("--cpu-millicores must be 0 (detect) to %d, not %d", api.MaxCPUMillicores, c.CPUMillicores)
	}
	if c.MemoryMB < 0 || c.MemoryMB > api.MaxMemoryMB {
		add("--memory-mb must be 0 (detect) to %d, not %d", api.MaxMemoryMB, c.MemoryMB)
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval > DefaultHeartbeatInterval {
		add("heartbeat interval must be in (0, %s] (the leader's windows assume at least one a second), not %s", DefaultHeartbeatInterval, c.HeartbeatInterval)
	}
	if err := c.PortRange.Validate(); err != nil {
		add("--port-range: %v", err)
	}
	if c.RestartGrace < 0 || c.RestartGrace > MaxRestartGrace {
		add("--restart-grace must be 0 (stop the workloads at shutdown) to %s, not %s", MaxRestartGrace, c.RestartGrace)
	}
	if c.DrainDeadline <= 0 || c.DrainDeadline > api.MaxDuration {
		add("--drain-deadline must be positive and at most %s, not %s", api.MaxDuration, c.DrainDeadline)
	}
	return errors.Join(errs...)
}

// splitHostPort parses host:port; the port must be a number (0 only if allowZero).
func splitHostPort(addr string, allowZero bool) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || (port == 0 && !allowZero) {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// isWildcard reports whether host binds every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// joinURL turns a --join entry (host:port or URL) into the registration URL.
func joinURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if !strings.Contains(addr, "://") {
		if _, _, err := splitHostPort(addr, false); err != nil {
			return "", err
		}
		return "http://" + addr + "/nodes", nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want host:port or an http(s)://host:port URL")
	}
	return strings.TrimRight(u.String(), "/") + "/nodes", nil
}
