package cluster

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// Config is everything a replica needs to run.
type Config struct {
	ID            string
	HTTPAddr      string // bind address of the API
	AdvertiseHTTP string // address peers, agents and the CLI use; defaults to HTTPAddr
	RaftAddr      string // bind address of the raft transport
	AdvertiseRaft string // defaults to RaftAddr
	DataDir       string
	Bootstrap     bool
	Join          []string
	JoinTimeout   time.Duration
	Token         string
	Insecure      bool
	RestoreFile   string
	SaveInterval  time.Duration
	// AlertWebhook, if set, receives a JSON POST (api.AlertNotification) on
	// every alert fire and resolve.
	AlertWebhook string
	// TLS, when set, puts the HTTP API, raft and every call this replica
	// makes on mutual TLS with roles; nil speaks plaintext (and says so).
	TLS *tlsutil.Store

	// Lease is how long an agent may run its exclusive workloads after it
	// sent a heartbeat that the leader acknowledged.
	Lease time.Duration

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	Health   HealthConfig
	Recovery RecoveryConfig

	// GCAfter is how long stopped and completed workloads are kept;
	// NodeGCAfter how long an offline node with nothing on it is.
	GCAfter     time.Duration
	NodeGCAfter time.Duration

	// PprofAddr, when set, serves Go's profiler there (loopback only).
	PprofAddr string

	Logger hclog.Logger
}

// HealthConfig holds the health monitor's flags.
type HealthConfig struct {
	Interval          time.Duration
	Timeout           time.Duration
	FailureThreshold  int
	RecoveryThreshold int
	ConfirmDelay      time.Duration
}

// RecoveryConfig holds the recovery engine's flags.
type RecoveryConfig struct {
	Interval    time.Duration
	MaxAttempts int
	CPULimit    float64
}

// DefaultLease is the default agent lease (--agent-lease).
const DefaultLease = 7 * time.Second

// DefaultConfig returns a configuration with the documented defaults.
func DefaultConfig() Config {
	return Config{
		JoinTimeout:        2 * time.Minute,
		SaveInterval:       30 * time.Second,
		GCAfter:            DefaultGCAfter,
		NodeGCAfter:        DefaultNodeGCAfter,
		Lease:              DefaultLease,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		Health: HealthConfig{
			Interval:          3 * time.Second,
			Timeout:           2 * time.Second,
			FailureThreshold:  2,
			RecoveryThreshold: 2,
			ConfirmDelay:      500 * time.Millisecond,
		},
		Recovery: RecoveryConfig{Interval: time.Second, MaxAttempts: 3, CPULimit: 80},
	}
}

// Validate checks the configuration and fills in derived defaults.
func (c *Config) Validate() error {
	if c.ID == "" {
		return errors.New("--id is required")
	}
	if c.DataDir == "" {
		return errors.New("--data is required")
	}
	if c.Token == "" && !c.Insecure {
		return errors.New("no cluster token: pass --token or set SCHEDULER_TOKEN (or --insecure to run without one)")
	}
	var err error
	if c.AdvertiseHTTP, err = advertised("--http", c.HTTPAddr, c.AdvertiseHTTP); err != nil {
		return err
	}
	if c.AdvertiseRaft, err = advertised("--raft", c.RaftAddr, c.AdvertiseRaft); err != nil {
		return err
	}
	if c.Bootstrap && len(c.Join) > 0 {
		return errors.New("--bootstrap and --join are exclusive: bootstrap one replica, join the others to it")
	}
	if c.Health.FailureThreshold < 1 || c.Health.RecoveryThreshold < 1 {
		return errors.New("--failure-threshold and --recovery-threshold must be at least 1")
	}
	if c.Health.Interval <= 0 || c.Health.Timeout <= 0 || c.Recovery.Interval <= 0 || c.SaveInterval <= 0 {
		return errors.New("intervals and timeouts must be positive")
	}
	if c.Lease < 3*time.Second {
		return errors.New("--agent-lease must be at least 3s (agents stop exclusive workloads 0.5s before it lapses, and heartbeat every second)")
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("--pprof-addr %s: want a loopback host:port such as 127.0.0.1:6060 (the profiler has no token)", c.PprofAddr)
		}
	}
	if c.GCAfter < MinGCAfter || c.NodeGCAfter < MinGCAfter {
		return fmt.Errorf("--gc-after and --node-gc-after must be at least %s", MinGCAfter)
	}
	if c.Recovery.MaxAttempts < 1 {
		return errors.New("--max-attempts must be at least 1")
	}
	if c.Recovery.CPULimit <= 0 || c.Recovery.CPULimit > 100 {
		return errors.New("--cpu-limit must be in (0, 100]")
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// advertised returns the address to tell others for a bind address, refusing
// a wildcard bind without an explicit advertise address.
func advertised(flag, bind, adv string) (string, error) {
	if bind == "" {
		return "", fmt.Errorf("%s is required", flag)
	}
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v", flag, bind, err)
	}
	if adv != "" {
		if _, _, err := net.SplitHostPort(adv); err != nil {
			return "", fmt.Errorf("--advertise-%s %q: %v", flag[2:], adv, err)
		}
		return adv, nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("%s %s binds every interface: also pass --advertise-%s with the address peers should use", flag, bind, flag[2:])
	}
	return bind, nil
}
