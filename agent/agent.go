package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// HTTP server timeouts. Writes may wait for a workload to stop, so the write
// timeout grows with the stop grace period.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 120 * time.Second
	httpDrainTimeout  = 5 * time.Second
)

// agent is one running node agent; Run owns it, tests build it directly.
type agent struct {
	cfg     Config
	log     hclog.Logger
	sup     *supervisor
	status  *statusCache
	sampler *sampler
	lease   *lease
	fence   *fence
	handler http.Handler
	cgroups *cgroup.Manager // nil: no cgroups
	unlock  func()
}

// agentOptions are knobs that Run sets one way and tests another.
type agentOptions struct {
	reapStrays        bool          // reap any ended child; only safe in a process that starts nothing else
	keepEnded         int           // ended instances kept (0: maxEnded)
	restartResetAfter time.Duration // run time after which restart counts start again (0: api.RestartResetAfter)
	// cgroupsOff, when set, runs without cgroups for this reason, as on a
	// machine without them; cgroups, when set, chooses the hierarchy.
	cgroupsOff string
	cgroups    *cgroup.Options
}

// newAgent prepares the data dir (lock, fencing state, leftovers of a
// previous run) and builds the supervisor and the HTTP handler. cfg must have
// its defaults applied and be valid.
func newAgent(cfg Config, log hclog.Logger, opts agentOptions) (a *agent, err error) {
	loose, err := prepareDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if loose {
		log.Warn("the data dir is open to other users; consider chmod 700", "data", cfg.DataDir)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	fence, err := loadFence(filepath.Join(cfg.DataDir, "agent_state.json"))
	if err != nil {
		return nil, err
	}
	workDir := filepath.Join(cfg.DataDir, "workloads")
	bootID := readBootID()
	if n := killLeftovers(workDir, bootID, log); n > 0 {
		log.Warn("killed workloads left running by the previous run of this agent", "count", n)
	}
	if err := rotateWorkDir(workDir); err != nil {
		return nil, fmt.Errorf("workloads dir: %w", err)
	}
	cg := openCgroups(cfg, opts.cgroupsOff, opts.cgroups, log)
	killLeftoverGroups(cg, log)
	defer func() {
		if err != nil {
			closeCgroups(cg, log)
		}
	}()
	status := newStatusCache(cfg.ID)
	ls := &lease{}
	sup, err := newSupervisor(supervisorConfig{
		lease:      ls,
		workDir:    workDir,
		stopGrace:  cfg.StopGrace,
		logMax:     cfg.LogMaxBytes,
		token:      cfg.Token,
		fence:      fence,
		bootID:     bootID,
		reapStrays: opts.reapStrays,
		keepEnded:  opts.keepEnded,
		onChange:   status.setWorkloads,

		ports:             newPortAllocator(cfg.PortRange),
		restartResetAfter: opts.restartResetAfter,
		cgroups:           cg,
	}, log)
	if err != nil {
		return nil, err
	}
	ls.onRenew = sup.guard.setLease
	return &agent{
		cfg:     cfg,
		log:     log,
		lease:   ls,
		fence:   fence,
		sup:     sup,
		status:  status,
		sampler: newSampler(cfg.CPUFile, log),
		handler: newHandler(sup, status, cfg.Token, tlsutil.NewCollector(cfg.TLS), log),
		cgroups: cg,
		unlock:  unlock,
	}, nil
}

// rotateWorkDir keeps the previous run's workloads dir as workloads.previous
// (replacing an older one) and starts an empty workloads dir.
func rotateWorkDir(workDir string) error {
	prev := workDir + ".previous"
	if _, err := os.Stat(workDir); err == nil {
		if err := os.RemoveAll(prev); err != nil {
			return err
		}
		if err := os.Rename(workDir, prev); err != nil {
			return err
		}
	}
	return ensureDir(workDir)
}

// close stops every workload (bounded by ctx) and releases the data dir.
func (a *agent) close(ctx context.Context) error {
	err := a.sup.Shutdown(ctx)
	closeCgroups(a.cgroups, a.log)
	a.unlock()
	return err
}

// Run runs the agent until ctx is done: it serves the agent API on
// cfg.Listen, registers with the schedulers of cfg.Join, samples CPU and
// memory, and supervises workloads. Then it stops every workload (SIGTERM,
// SIGKILL after cfg.StopGrace, all within cfg.ShutdownTimeout) and returns
// nil, or the error that stopped it early.
func Run(ctx context.Context, cfg Config, logger hclog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	log := logger.Named("agent")
	if cfg.Token == "" {
		log.Warn("!!! INSECURE: running WITHOUT a cluster token (--insecure). Anyone who can reach " + cfg.Listen +
			" can run any command on this machine as this user. Never do this outside a sealed test box. !!!")
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	var schedTLS api.TLSClient
	if cfg.TLS != nil {
		log.Info("mutual TLS on: the agent API accepts server certificates only", "cert", cfg.TLS.Files().Cert,
			"expires", cfg.TLS.NotAfter().UTC().Format(time.RFC3339))
		ln = tlsutil.NewListener(ln, cfg.TLS.ServerConfig(tlsutil.RoleServer), log.Named("tls"))
		schedTLS = cfg.TLS.Client(tlsutil.RoleServer)
	} else {
		log.Warn("!!! PLAINTEXT: TLS is off (no --tls-ca/--tls-cert/--tls-key). The token and every command sent to " + cfg.Listen +
			" cross the network in clear text. See the README, 'Transport security'. !!!")
	}
	a, err := newAgent(cfg, log, agentOptions{reapStrays: true})
	if err != nil {
		_ = ln.Close()
		return err
	}
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = cfg.Listen
		if _, port, _ := splitHostPort(cfg.Listen, true); port == 0 {
			advertise = ln.Addr().String()
		}
	}

	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      2*cfg.StopGrace + groupGoneTimeout + 30*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("agent started", "id", cfg.ID, "listen", ln.Addr().String(), "advertise", advertise,
		"data", cfg.DataDir, "join", cfg.Join, "stop_grace", cfg.StopGrace, "log_max_bytes", cfg.LogMaxBytes, "cpu_file", cfg.CPUFile,
		"port_range", cfg.PortRange.String())

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.sampler.run(bg, cfg.SampleInterval, a.status.setUsage) })
	wg.Go(func() { a.sup.enforceLease(bg, a.lease) })
	hbClient := api.NewHTTPClient(cfg.Token, cfg.HeartbeatInterval, schedTLS)
	wg.Go(func() { watchReload(bg, cfg.TLS, log, hbClient) })
	if len(cfg.Join) > 0 {
		client := api.NewHTTPClient(cfg.Token, registerTimeout, schedTLS)
		wg.Go(func() {
			reg := api.RegisterRequest{ID: cfg.ID, Address: advertise, Capacity: nodeCapacity(cfg, log)}
			if register(bg, client, cfg.Join, reg, log) != nil {
				return
			}
			client.CloseIdleConnections()
			hb := newHeartbeater(cfg.ID, cfg.Join, hbClient, cfg.HeartbeatInterval, a.lease, a.fence.current, log.Named("heartbeat"))
			hb.run(bg)
		})
	} else {
		log.Warn("no --join given: not registering with any scheduler")
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
		log.Error("http server failed; shutting down", "error", err)
	}
	stopBG()

	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var swg sync.WaitGroup
	swg.Go(func() {
		hctx, hcancel := context.WithTimeout(sctx, httpDrainTimeout)
		defer hcancel()
		if err := srv.Shutdown(hctx); err != nil {
			_ = srv.Close()
		}
	})
	if err := a.close(sctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
		if runErr == nil {
			runErr = err
		}
	}
	swg.Wait()
	wg.Wait()
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	log.Info("agent stopped")
	return runErr
}
