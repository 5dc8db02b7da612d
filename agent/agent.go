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
	"sync/atomic"
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

	finished atomic.Bool // close or detach has begun
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
	cg := openCgroups(cfg, opts.cgroupsOff, opts.cgroups, log)
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
	// What the previous run left: adopted if it was left for a restart and
	// is still ours, killed otherwise (adopt.go, leftovers.go).
	dirs, groups := sup.adoptPrevious()
	killLeftoverGroups(cg, groups, log)
	if err := rotateWorkDir(workDir, dirs); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		_ = sup.Shutdown(ctx)
		cancel()
		return nil, fmt.Errorf("workloads dir: %w", err)
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
// (replacing an older one) and starts an empty workloads dir, but for the
// dirs of adopted instances (keep), which stay where they are.
func rotateWorkDir(workDir string, keep map[string]bool) error {
	prev := workDir + ".previous"
	if _, err := os.Stat(workDir); err == nil {
		if err := os.RemoveAll(prev); err != nil {
			return err
		}
		if len(keep) == 0 {
			if err := os.Rename(workDir, prev); err != nil {
				return err
			}
		} else {
			if err := ensureDir(prev); err != nil {
				return err
			}
			entries, err := os.ReadDir(workDir)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if !keep[e.Name()] {
					if err := os.Rename(filepath.Join(workDir, e.Name()), filepath.Join(prev, e.Name())); err != nil {
						return err
					}
				}
			}
		}
	}
	return ensureDir(workDir)
}

// close stops every workload (bounded by ctx) and releases the data dir.
func (a *agent) close(ctx context.Context) error {
	if !a.finished.CompareAndSwap(false, true) {
		return nil
	}
	err := a.sup.Shutdown(ctx)
	closeCgroups(a.cgroups, a.log)
	a.unlock()
	return err
}

// detach leaves for a restart: the workloads keep running, for up to grace,
// for the next agent on the data dir to adopt (adopt.go); the data dir is
// released.
func (a *agent) detach(ctx context.Context, grace time.Duration) error {
	if !a.finished.CompareAndSwap(false, true) {
		return nil
	}
	err := a.sup.Detach(ctx, grace)
	a.unlock()
	return err
}

// shutdownMode is what a shutdown does with the workloads.
type shutdownMode int

const (
	shutdownStop    shutdownMode = iota // stop them all
	shutdownRestart                     // leave them for the next agent
	shutdownNow                         // exit at once; they die with the agent
)

// drainFirst asks the schedulers to drain the node and waits until the
// drain is over, and returns what the shutdown then does: stop what is
// left, or, on Interrupt, leave at once.
func (a *agent) drainFirst(client *http.Client) shutdownMode {
	cfg, log := a.cfg, a.log
	log.Info("draining the node before shutdown (--drain-on-shutdown): its workloads move to other nodes", "deadline", cfg.DrainDeadline)
	via, err := requestDrain(client, cfg.Join, cfg.ID, cfg.DrainDeadline)
	if err != nil {
		log.Error("cannot ask the scheduler to drain this node; stopping its workloads instead", "error", oneLine(err))
		return shutdownStop
	}
	log.Info("drain requested; waiting until the scheduler has moved the workloads (a second SIGTERM or SIGINT exits at once)", "via", via)
	began := time.Now()
	giveUp := time.NewTimer(cfg.DrainDeadline + drainWaitSlack)
	defer giveUp.Stop()
	tick := time.NewTicker(drainPollEvery)
	defer tick.Stop()
	var lastWarn time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*drainPollEvery)
		draining, known, err := nodeDraining(ctx, client, cfg.Join, cfg.ID)
		cancel()
		switch {
		case err != nil:
			if time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				log.Warn("cannot read the drain's progress; still waiting", "error", oneLine(err))
			}
		case !known:
			log.Warn("the scheduler does not show whether this node is draining; not waiting for the drain")
			return shutdownStop
		case !draining:
			log.Info("drain finished; stopping what is left", "took", time.Since(began).Round(time.Millisecond))
			return shutdownStop
		}
		select {
		case <-cfg.Interrupt:
			if cfg.RestartGrace > 0 {
				log.Warn("second signal during the drain: exiting at once; the workloads keep running for the next agent", "restart_grace", cfg.RestartGrace)
				return shutdownRestart
			}
			log.Warn("second signal during the drain: exiting at once; without --restart-grace the workloads die with the agent")
			return shutdownNow
		case <-giveUp.C:
			log.Warn("the drain did not finish in time; stopping what is left", "waited", time.Since(began).Round(time.Second))
			return shutdownStop
		case <-tick.C:
		}
	}
}

// Run runs the agent until ctx is done: it serves the agent API on
// cfg.Listen, registers with the schedulers of cfg.Join, samples CPU and
// memory, and supervises workloads. Then, with cfg.RestartGrace, it tells
// the schedulers that the node is restarting and leaves the workloads
// running for the next agent on the data dir; without, it stops every
// workload (SIGTERM, SIGKILL after cfg.StopGrace, all within
// cfg.ShutdownTimeout); with cfg.DrainOnShutdown it has the node drained
// first. It returns nil, or the error that stopped it early.
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
	ctlClient := api.NewHTTPClient(cfg.Token, restartingTimeout, schedTLS)
	mode := shutdownStop
	if runErr == nil {
		if cfg.RestartGrace > 0 {
			mode = shutdownRestart
		}
		if cfg.DrainOnShutdown {
			mode = a.drainFirst(ctlClient)
		}
	}
	switch mode {
	case shutdownNow:
		log.Warn("exiting at once")
		stopBG()
		return nil
	case shutdownRestart:
		announceRestart(ctlClient, cfg.Join, cfg.ID, cfg.RestartGrace, log)
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
	var cerr error
	if mode == shutdownRestart {
		cerr = a.detach(sctx, cfg.RestartGrace)
	} else {
		closed := make(chan error, 1)
		go func() { closed <- a.close(sctx) }()
		select {
		case cerr = <-closed:
		case <-cfg.Interrupt:
			log.Warn("second signal: exiting at once; the workloads die with the agent")
			return nil
		}
	}
	if cerr != nil {
		log.Error("shutdown incomplete", "error", cerr)
		if runErr == nil {
			runErr = cerr
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
