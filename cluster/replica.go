package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/micro-orchestrator/mo/alerts"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// applyTimeout bounds how long a write waits to be committed.
const applyTimeout = 10 * time.Second

// Replica is one scheduler replica: raft node, FSM, HTTP API and the
// leader-only loops while it leads.
type Replica struct {
	cfg       Config
	log       hclog.Logger
	fsm       *fsm.FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	leaderCh  chan bool
	client    *http.Client     // calls to other replicas
	agents    *api.AgentClient // calls to node agents
	// forwardTransport carries requests forwarded to the leader.
	forwardTransport http.RoundTripper
	certs            *certBook // peers' certificate expiry, as their connections show it
	// tlsMu guards what a certificate reload touches while Run sets it up.
	tlsMu      sync.Mutex
	raftStream *tlsStream // nil without TLS
	httpSrv    *http.Server
	listener   net.Listener
	seq        atomic.Uint64  // last workload sequence number handed out (leader)
	submits    *submitBatcher // merges concurrent submissions into one raft entry
	restore    *fsm.State
	beats      *beatBook    // heartbeats heard while following
	confirm    *confirmer   // leadership confirmed before a heartbeat is acknowledged
	leaseSeen  atomic.Int64 // the longest agent lease reported to this replica as leader (milliseconds)

	mu                sync.Mutex
	leader            *leaderState // non-nil while this replica leads
	lastReachTransfer time.Time    // the last hand-over to a replica that reaches more nodes (reach.go)

	// Monitoring: metrics, the event log and the alerts live as long as the
	// process; the alert set is re-derived at each leadership.
	metrics        *replicaMetrics
	metricsHandler http.Handler
	events         *alerts.Log
	alerts         *alerts.Manager
	webhook        *alerts.Webhook // nil without --alert-webhook
	peerContact    *replicaContact // the leader's contact with each follower
	// closing is cancelled when shutdown starts: long polls of GET /events
	// end then instead of holding the HTTP server's drain.
	closing  context.Context
	closeNow context.CancelFunc

	wg sync.WaitGroup
}

// New validates cfg and prepares a replica; Run starts it.
func New(cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg:      cfg,
		log:      cfg.Logger,
		fsm:      fsm.New(),
		leaderCh: make(chan bool, 16),
		beats:    newBeatBook(),
		client:   api.NewHTTPClient(cfg.Token, 10*time.Second, cfg.clientTLS(tlsutil.RoleServer)),
		agents:   api.NewAgentClient(cfg.Token, 90*time.Second, cfg.clientTLS(tlsutil.RoleAgent)),
	}
	r.forwardTransport = api.NewTransport("", cfg.clientTLS(tlsutil.RoleServer))
	r.submits = &submitBatcher{apply: r.Apply}
	r.certs = newCertBook()
	r.confirm = &confirmer{verify: func() error { return r.raft.VerifyLeader().Error() }}
	if err := r.initMonitoring(); err != nil {
		return nil, err
	}
	r.closing, r.closeNow = context.WithCancel(context.Background())
	if cfg.RestoreFile != "" {
		b, err := os.ReadFile(cfg.RestoreFile)
		if err != nil {
			return nil, fmt.Errorf("--restore: %w", err)
		}
		st, err := fsm.ParseState(b)
		if err != nil {
			return nil, fmt.Errorf("--restore %s: %w", cfg.RestoreFile, err)
		}
		r.restore = st
	}
	return r, nil
}

// Run starts raft and the HTTP API, joins or bootstraps as configured, and
// blocks until ctx is cancelled; then it shuts down cleanly (transferring
// leadership first when it leads).
func (r *Replica) Run(ctx context.Context) error {
	if r.cfg.Insecure && r.cfg.Token == "" {
		r.log.Warn("RUNNING WITHOUT A CLUSTER TOKEN (--insecure): anyone who reaches this port can run commands on your nodes")
	}
	if err := os.MkdirAll(r.cfg.DataDir, 0o700); err != nil {
		return err
	}
	_ = os.Chmod(r.cfg.DataDir, 0o700)
	ln, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", r.cfg.HTTPAddr, err)
	}
	ln = r.secureHTTP(ln)
	r.listener = ln
	existing, err := r.openRaft()
	if err != nil {
		ln.Close()
		r.closeStores()
		return err
	}
	if r.restore != nil && existing {
		ln.Close()
		r.raft.Shutdown().Error()
		r.closeStores()
		return fmt.Errorf("--restore: the data dir %s already holds cluster state; refusing to overwrite it (use an empty data dir)", r.cfg.DataDir)
	}
	r.httpSrv = &http.Server{Handler: r.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("HTTP server stopped", "error", err)
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r.cfg.PprofAddr != "" {
		if err := r.servePprof(runCtx, r.cfg.PprofAddr); err != nil {
			r.log.Error("profiler not started", "error", err)
		}
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.watchLeadership(runCtx) }()

	r.log.Info("replica starting", "id", r.cfg.ID, "http", r.cfg.AdvertiseHTTP, "raft", r.cfg.AdvertiseRaft, "existing_state", existing)
	errCh := make(chan error, 1)
	switch {
	case existing:
		if r.cfg.Bootstrap || len(r.cfg.Join) > 0 {
			r.log.Info("data dir holds raft state: --bootstrap/--join ignored, rejoining from it")
		}
	case r.cfg.Bootstrap || r.restore != nil:
		if err := r.bootstrap(); err != nil {
			errCh <- err
		}
	case len(r.cfg.Join) > 0:
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := r.joinLoop(runCtx); err != nil {
				errCh <- err
			}
		}()
	default:
		errCh <- errors.New("empty data dir and neither --bootstrap nor --join: nothing to start from")
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.announceLoop(runCtx) }()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.relayLoop(runCtx) }()
	if r.webhook != nil {
		r.log.Info("alerts are sent to a webhook", "webhook", r.webhook.Target())
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.webhook.Run(runCtx) }()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errCh:
	}
	r.shutdown(cancel)
	return runErr
}

// shutdown saves the state file, hands leadership over, and stops everything.
func (r *Replica) shutdown(cancel context.CancelFunc) {
	r.closeNow()
	if r.raft.State() == raft.Leader {
		if err := r.saveStateFile(); err != nil {
			r.log.Error("saving state file on shutdown", "error", err)
		}
		if len(r.servers()) > 1 {
			r.log.Info("transferring leadership before shutdown")
			if err := r.raft.LeadershipTransfer().Error(); err != nil {
				r.log.Warn("leadership transfer failed", "error", err)
			}
		}
	}
	r.stopLeading()
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	_ = r.httpSrv.Shutdown(sctx)
	scancel()
	cancel()
	if err := r.raft.Shutdown().Error(); err != nil {
		r.log.Warn("raft shutdown", "error", err)
	}
	r.wg.Wait()
	r.closeStores()
	r.log.Info("replica stopped")
}

func (r *Replica) closeStores() {
	if r.transport != nil {
		r.transport.Close()
	}
	if r.store != nil {
		r.store.Close()
	}
}

// servers returns the current raft configuration's servers.
func (r *Replica) servers() []raft.Server {
	f := r.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// Apply commits a command through raft and returns Apply's own error.
func (r *Replica) Apply(c fsm.Command) error {
	b, err := fsm.Encode(c)
	if err != nil {
		return err
	}
	f := r.raft.Apply(b, applyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			return ErrOutcomeUnknown
		}
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return err
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// FSM returns the replica's state machine (read access for tests and loops).
func (r *Replica) FSM() *fsm.FSM { return r.fsm }

// IsLeader reports whether this replica currently leads.
func (r *Replica) IsLeader() bool { return r.raft.State() == raft.Leader }

// leaderHTTP returns the HTTP address of the current leader, if known.
func (r *Replica) leaderHTTP() (id, addr string) {
	_, lid := r.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	r.fsm.Read(func(s *fsm.State) { addr = s.Replicas[string(lid)] })
	return string(lid), addr
}
