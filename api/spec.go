package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Workload types.
const (
	// TypeService runs until stopped: an exit is a failure.
	TypeService = "service"
	// TypeBatch runs to completion: exit 0 is completed, never restarted.
	TypeBatch = "batch"
)

// StateCompleted is a batch workload that exited 0.
const StateCompleted = "completed"

// Health of a workload instance, as its agent's check sees it.
const (
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
	// HealthUnknown is a workload without a check, or one not yet checked.
	HealthUnknown = "unknown"
)

// Check types.
const (
	CheckHTTP = "http"
	CheckTCP  = "tcp"
	CheckExec = "exec"
)

// Defaults of a check's optional fields.
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = time.Second
	DefaultCheckFailures = 3
	DefaultCheckGrace    = 10 * time.Second
)

// Defaults of a restart block's optional fields. Without a restart block a
// workload is not restarted in place (its exit goes to the leader's
// recovery), unless it has a check: then DefaultCheckedRestarts apply.
const (
	DefaultRestartDelay    = time.Second
	DefaultRestartMaxDelay = time.Minute
	DefaultCheckedRestarts = 3
	// RestartResetAfter is how long an instance must run before its restart
	// count and delay start again from zero.
	RestartResetAfter = 5 * time.Minute
)

// Bounds of what a spec may ask for.
const (
	// MinCheckInterval and MinCheckTimeout keep a check from probing in a
	// tight loop; MinRestartDelay does the same for restarts.
	MinCheckInterval = 100 * time.Millisecond
	MinCheckTimeout  = 10 * time.Millisecond
	MinRestartDelay  = 10 * time.Millisecond
	MaxPorts         = 16
	MaxCheckFailures = 100
	MaxRestarts      = 1000
	MaxDuration      = 24 * time.Hour
	MaxCPUMillicores = 1 << 20 // a 1,000-core machine
	MaxMemoryMB      = 1 << 24 // 16 TiB
	MaxPids          = 1 << 22
)

// Duration is a time.Duration written in JSON as Go's duration string
// ("500ms", "5s", "1m"). Read from JSON it must be positive: a field left
// out takes its default, and "0s" or "-1s" is an error.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler: a duration string only (null
// is the field left out).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\" or \"500ms\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit such as \"5s\" or \"500ms\"", s)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q: must be positive (leave the field out for its default)", s)
	}
	*d = Duration(v)
	return nil
}

// Check is a health check that the agent runs against an instance.
type Check struct {
	Type string `json:"type"`
	// Port is the port label probed by http and tcp checks (one of ports).
	Port string `json:"port,omitempty"`
	// Path is the http check's path (default "/"); 2xx and 3xx are healthy.
	Path string `json:"path,omitempty"`
	// Command is the exec check's argv, run in the instance's directory with
	// its environment; exit 0 is healthy.
	Command  []string `json:"command,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// Failures in a row make the instance unhealthy.
	Failures int `json:"failures,omitempty"`
	// Grace after a start during which failures do not count.
	Grace Duration `json:"grace,omitempty"`
}

// RestartPolicy restarts an instance in place, on its node, without the
// leader: after delay, doubling up to max_delay. When attempts run out the
// instance fails and the leader's recovery takes over.
type RestartPolicy struct {
	Attempts int      `json:"attempts"`
	Delay    Duration `json:"delay,omitempty"`
	MaxDelay Duration `json:"max_delay,omitempty"`
}

// Resources are what an instance may use; placement fits them into a
// node's free capacity and the agent enforces them with cgroups. Zero
// means no limit.
type Resources struct {
	CPUMillicores int `json:"cpu_millicores,omitempty"`
	MemoryMB      int `json:"memory_mb,omitempty"`
	Pids          int `json:"pids,omitempty"`
}

// IsPlainService reports whether a normalized spec asks for nothing beyond
// a bare process: a service without ports, check, restart or resources.
func (s *Spec) IsPlainService() bool {
	return s.Type == TypeService && len(s.Ports) == 0 && s.Check == nil && s.Restart == nil && s.Resources.IsZero()
}

// IsZero reports whether no resource is asked for.
func (r *Resources) IsZero() bool { return r == nil || *r == Resources{} }

// Spec is the lifecycle part of a workload, beyond its process: shared by a
// submission, the desired state and the agent's start request.
type Spec struct {
	Type      string         `json:"type,omitempty"`
	Ports     []string       `json:"ports,omitempty"`
	Check     *Check         `json:"check,omitempty"`
	Restart   *RestartPolicy `json:"restart,omitempty"`
	Resources *Resources     `json:"resources,omitempty"`
}

var portLabel = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// Normalize fills the spec's defaults in place: type service, a check's
// interval, timeout, failures, grace and path, a restart block's delays,
// and the restart block a check implies.
func (s *Spec) Normalize() {
	if s.Type == "" {
		s.Type = TypeService
	}
	if c := s.Check; c != nil {
		if c.Interval == 0 {
			c.Interval = Duration(DefaultCheckInterval)
		}
		if c.Timeout == 0 {
			c.Timeout = Duration(min(DefaultCheckTimeout, c.Interval.D()))
		}
		if c.Failures == 0 {
			c.Failures = DefaultCheckFailures
		}
		if c.Grace == 0 {
			c.Grace = Duration(DefaultCheckGrace)
		}
		if c.Type == CheckHTTP && c.Path == "" {
			c.Path = "/"
		}
		if s.Restart == nil {
			s.Restart = &RestartPolicy{Attempts: DefaultCheckedRestarts}
		}
	}
	if r := s.Restart; r != nil {
		if r.Delay == 0 {
			r.Delay = Duration(DefaultRestartDelay)
			if r.MaxDelay > 0 && r.MaxDelay < r.Delay {
				r.Delay = r.MaxDelay // a max_delay alone below the default delay caps it
			}
		}
		if r.MaxDelay == 0 {
			r.MaxDelay = Duration(max(DefaultRestartMaxDelay, r.Delay.D()))
		}
	}
	if s.Resources.IsZero() {
		s.Resources = nil
	}
}

// Validate checks a spec (before Normalize: zero durations given explicitly
// cannot be told from absent ones, so they take the defaults). Every
// problem is one clear sentence.
func (s *Spec) Validate() error {
	var errs []error
	switch s.Type {
	case "", TypeService, TypeBatch:
	default:
		errs = append(errs, fmt.Errorf("type %q: want service or batch", s.Type))
	}
	seen := map[string]bool{}
	if len(s.Ports) > MaxPorts {
		errs = append(errs, fmt.Errorf("ports: at most %d labels", MaxPorts))
	}
	for _, p := range s.Ports {
		if !portLabel.MatchString(p) {
			errs = append(errs, fmt.Errorf("port label %q: use 1 to 32 of a-z, 0-9 and _", p))
		} else if seen[p] {
			errs = append(errs, fmt.Errorf("port label %q is listed twice", p))
		}
		seen[p] = true
	}
	if c := s.Check; c != nil {
		switch c.Type {
		case CheckHTTP, CheckTCP:
			if c.Port == "" {
				errs = append(errs, fmt.Errorf("check: a %s check needs port, one of the workload's port labels", c.Type))
			} else if !seen[c.Port] {
				errs = append(errs, fmt.Errorf("check: port %q is not one of ports %v", c.Port, s.Ports))
			}
			if c.Type == CheckHTTP && c.Path != "" {
				errs = append(errs, checkPath(c.Path))
			}
			if c.Type == CheckTCP && c.Path != "" {
				errs = append(errs, errors.New("check: path is for http checks, not tcp"))
			}
			if len(c.Command) > 0 {
				errs = append(errs, fmt.Errorf("check: command is for exec checks, not %s", c.Type))
			}
		case CheckExec:
			if len(c.Command) == 0 || strings.TrimSpace(c.Command[0]) == "" {
				errs = append(errs, errors.New("check: an exec check needs a command"))
			} else if err := ValidateProcess(c.Command[0], c.Command[1:], nil); err != nil {
				errs = append(errs, fmt.Errorf("check: %w", err))
			}
			if c.Port != "" || c.Path != "" {
				errs = append(errs, errors.New("check: port and path are for http and tcp checks, not exec"))
			}
		case "":
			errs = append(errs, errors.New("check: type is required (http, tcp or exec)"))
		default:
			errs = append(errs, fmt.Errorf("check: unknown type %q (want http, tcp or exec)", c.Type))
		}
		errs = append(errs, positive("check.interval", c.Interval), positive("check.timeout", c.Timeout), positive("check.grace", c.Grace),
			atLeast("check.interval", c.Interval, MinCheckInterval), atLeast("check.timeout", c.Timeout, MinCheckTimeout))
		if c.Failures < 0 || c.Failures > MaxCheckFailures {
			errs = append(errs, fmt.Errorf("check.failures %d: want 1 to %d", c.Failures, MaxCheckFailures))
		}
	}
	if r := s.Restart; r != nil {
		if r.Attempts < 0 || r.Attempts > MaxRestarts {
			errs = append(errs, fmt.Errorf("restart.attempts %d: want 0 to %d", r.Attempts, MaxRestarts))
		}
		errs = append(errs, positive("restart.delay", r.Delay), positive("restart.max_delay", r.MaxDelay),
			atLeast("restart.delay", r.Delay, MinRestartDelay), atLeast("restart.max_delay", r.MaxDelay, MinRestartDelay))
		if r.Delay > 0 && r.MaxDelay > 0 && r.MaxDelay < r.Delay {
			errs = append(errs, fmt.Errorf("restart.max_delay %s is shorter than restart.delay %s", r.MaxDelay.D(), r.Delay.D()))
		}
	}
	if r := s.Resources; r != nil {
		errs = append(errs, bounded("resources.cpu_millicores", r.CPUMillicores, MaxCPUMillicores),
			bounded("resources.memory_mb", r.MemoryMB, MaxMemoryMB), bounded("resources.pids", r.Pids, MaxPids))
	}
	return errors.Join(errs...)
}

// atLeast refuses a duration given below min (zero takes the default).
func atLeast(what string, d Duration, min time.Duration) error {
	if d > 0 && d.D() < min {
		return fmt.Errorf("%s %s: at least %s", what, d.D(), min)
	}
	return nil
}

// checkPath refuses an http check path that is not a plain absolute URL
// path: a probe could never send it.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("check: path %q must start with /", p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || IsControl(r) {
			return fmt.Errorf("check: path %q holds a space or control character (percent-encode it)", p)
		}
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return fmt.Errorf("check: path %q is not a valid URL path: %v", p, err)
	}
	return nil
}

// positive refuses a negative or absurdly long duration (zero takes the
// default).
func positive(what string, d Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s %s: must be positive", what, d.D())
	case d.D() > MaxDuration:
		return fmt.Errorf("%s %s: at most %s", what, d.D(), MaxDuration)
	}
	return nil
}

// bounded refuses a negative or absurd resource amount.
func bounded(what string, v, limit int) error {
	if v < 0 || v > limit {
		return fmt.Errorf("%s %d: want 0 to %d", what, v, limit)
	}
	return nil
}

// PortEnv is the environment variable that carries a port label's port.
func PortEnv(label string) string { return "MO_PORT_" + strings.ToUpper(label) }
