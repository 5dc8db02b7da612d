package health

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultInterval          = 3 * time.Second
	DefaultTimeout           = 2 * time.Second
	DefaultFailureThreshold  = 2
	DefaultRecoveryThreshold = 2
	DefaultConfirmDelay      = 500 * time.Millisecond
	DefaultSlowResponse      = time.Second
	DefaultConcurrency       = 128
	DefaultSuspectAfter      = 1500 * time.Millisecond
	DefaultAliveWindow       = 2500 * time.Millisecond
	// watchEvery is how often the loop looks for slow checks to overlap and
	// for nodes whose heartbeats stopped.
	watchEvery = 100 * time.Millisecond
)

// Config tunes a Monitor. Zero fields take the defaults above.
type Config struct {
	// Interval is the time between two rounds over all nodes.
	Interval time.Duration
	// Timeout bounds each check (the monitor enforces it on the context too).
	Timeout time.Duration
	// FailureThreshold is the number of failed checks in a row that make a node offline.
	FailureThreshold int
	// RecoveryThreshold is the number of good checks in a row an offline node needs to be online again.
	RecoveryThreshold int
	// ConfirmDelay is how soon a failed check of a node that is not offline is
	// repeated, instead of waiting for the next round. Negative disables it.
	ConfirmDelay time.Duration
	// SlowResponse is the answer time above which a node is degraded. Negative disables it.
	SlowResponse time.Duration
	// Concurrency bounds the checks in flight at once.
	Concurrency int
	// SuspectAfter is how long a node that sends heartbeats (NoteHeartbeat)
	// may fall silent before it is checked at once, instead of at the next
	// round. Negative disables it.
	SuspectAfter time.Duration
	// AliveWindow is how recent a heartbeat, direct or relayed by another
	// replica, keeps a node that fails its checks degraded instead of
	// offline: it is alive, only this leader cannot reach it. Negative
	// disables it.
	AliveWindow time.Duration
	// AllowEvict is the mass-failure guard, asked before a write that sets nodes
	// offline, with the number of nodes offline once it commits and the number
	// of nodes. Evict is set on the offline changes only when it returns true;
	// a held eviction is asked again at each round while the node stays
	// offline. Nil always evicts. It must not call back into the Monitor.
	AllowEvict func(offlineAfter, total int) bool
	// OnReport, if set, is called with every successful answer, from the
	// checking goroutine: it may run concurrently for different nodes and must
	// be quick and must not call CheckNow.
	OnReport func(nodeID string, st api.AgentStatus)
	// OnCheck, if set, is called after every check that ended under an active
	// Run (cancelled ones are not reported) with the node, how long the check
	// took and its error (nil for a good answer), from the checking
	// goroutine: it may run concurrently for different nodes, must be quick
	// and must not call back into the Monitor. It feeds metrics.
	OnCheck func(nodeID string, d time.Duration, err error)
	// OnChange, if set, is called with the changes of each committed status
	// write, from the writer goroutine, in commit order. It must be quick and
	// must not call CheckNow.
	OnChange func(changes []fsm.NodeStatusChange)
	// Clock is the time source; nil means RealClock.
	Clock Clock
	// Logger receives the monitor's logs; nil means hclog.Default() named "health".
	Logger hclog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.RecoveryThreshold <= 0 {
		c.RecoveryThreshold = DefaultRecoveryThreshold
	}
	if c.ConfirmDelay == 0 {
		c.ConfirmDelay = DefaultConfirmDelay
	}
	if c.SlowResponse == 0 {
		c.SlowResponse = DefaultSlowResponse
	}
	if c.SuspectAfter == 0 {
		c.SuspectAfter = DefaultSuspectAfter
	}
	if c.AliveWindow == 0 {
		c.AliveWindow = DefaultAliveWindow
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Clock == nil {
		c.Clock = RealClock()
	}
	if c.Logger == nil {
		c.Logger = hclog.Default().Named("health")
	}
	return c
}
