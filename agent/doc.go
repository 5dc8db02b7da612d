// Package agent is the micro-orchestrator node agent. It owns everything that
// happens on one machine on behalf of the scheduler leader:
//
//   - the agent HTTP API (server.go, status.go), all behind the cluster token;
//   - the process supervisor (supervisor.go, spawn.go, instance.go,
//     process.go): each run of a workload instance runs as its own process
//     group under a monitor process of its own (monitor.go,
//     monitor_link.go), which execs it, reaps it and tells the agent;
//   - restarts of the agent that keep the workloads (adopt.go): on SIGTERM
//     the agent leaves them to their monitors, and the next agent on the
//     same data dir adopts them; the announcement of the restart and the
//     drain on shutdown (scheduler_calls.go);
//   - per-workload size-capped output files (logs.go);
//   - the lifecycle of a generation (restart.go, check.go, ports.go):
//     restarts in place by the workload's restart policy, health checks,
//     and ports picked per label;
//   - node-wide CPU and memory sampling in the background (sampler.go);
//   - registration with the scheduler replicas (register.go);
//   - fencing of stale leaders by raft term and placement generation
//     (fencing.go);
//   - killing process groups left over by a previous run of the same data
//     dir (leftovers.go) or by a killed agent (guard.go);
//   - a cgroup per instance with its resources as limits, where the machine
//     allows (isolation.go, and the package agent/cgroup).
//
// # Data dir
//
//	<data>/agent.lock                       flock: one agent per data dir
//	<data>/agent_state.json                 highest leader term obeyed (0600, atomic writes)
//	<data>/workloads/<id>/output.log        stdout+stderr of the instance (0600)
//	<data>/workloads/<id>/proc-<gen>.json   the live run: pgid, start time, boot id of its group; its
//	                                        monitor's pid and start time; tag, cgroup, start request,
//	                                        ports, restart counts, started_at; when the agent left for a
//	                                        restart, until when it may be adopted and where output.log stood
//	<data>/workloads/<id>/exit-<gen>.json   how the run ended, written by its monitor (exit code, OOM,
//	                                        whether its group is gone, cause), removed once reported
//	<data>/workloads/<id>/monitor-<gen>.sock  the run's monitor listens here for the next agent
//	<data>/workloads/<id>/output.spool      output written while no agent ran, appended to output.log
//	                                        by the agent that adopts the run
//	<data>/workloads.previous/              the previous run's workloads dir (but for adopted
//	                                        instances), kept for post-mortems
//
// # Behaviour
//
//   - Each run has a monitor: the agent's binary again (MonitorEnv), in a
//     process group of its own, that forks and execs the workload (in its
//     cgroup), is its parent and a child subreaper, holds the output pipe so
//     that the workload never gets EPIPE because an agent went away, kills
//     what is left of its group, cgroup and tagged processes when its main
//     process ends, and records the exit status. The agent talks to it over
//     a unix socket pair and reads the output pipe itself.
//   - A killed agent (SIGKILL, a crash) is a dead node: each monitor sees its
//     connection to the agent end without a restart announced and kills its
//     workload at once, and the guard kills every group, cgroup and tagged
//     process; re-adopted instances included.
//   - SIGTERM or SIGINT with Config.RestartGrace (agent --restart-grace,
//     10s by default) keeps the workloads: the agent tells the schedulers
//     (POST /nodes/{id}/restarting {"grace_ms"}), stops its exclusive
//     instances (their lease cannot be renewed while no agent runs) and
//     finishes the stops under way, then hands every other run to its
//     monitor, which spools the output meanwhile and waits up to the grace
//     for a new agent; it kills the workload when none comes. Instances
//     waiting for a restart in place are recorded as such (but exclusive
//     ones, whose restart is called off), and so are ended ones, which the
//     next agent shows in GET /status as they were.
//   - On startup the agent adopts what the previous run left for it: only
//     records left for a restart, within their grace, of this boot, of a
//     known version, whose monitor is the recorded process (pid and start
//     time) and answers on its socket as that process (SO_PEERCRED) with the
//     recorded workload (pid, start time, generation), in its recorded
//     cgroup. An adopted instance goes on as before: same id, generation,
//     pid, started_at, ports, restart count, output (what was spooled
//     appended, follow positions kept), health checks, stop, exit report
//     and restart policy. Everything else the previous run left is killed
//     where it is provably its own (groups only where the recorded start
//     time still matches, so a reused pid is never hit; monitors likewise;
//     the cgroups under the agent's parent), as it always was.
//   - With Config.RestartGrace zero, a shutdown stops every workload;
//     with Config.DrainOnShutdown it asks the schedulers to drain the node
//     first (POST /nodes/{id}/drain) and waits until GET /nodes shows it
//     draining false; a second signal meanwhile leaves at once, keeping the
//     workloads as RestartGrace says.
//   - A supervisor of the agent such as systemd must signal its main process
//     only (KillMode=process): the monitors ignore SIGTERM and SIGINT, but a
//     kill of the agent's whole cgroup takes the workloads along.
//   - A generation is started once by the leader: a start with the
//     generation of an instance that exists is answered with that instance
//     and nothing is started (422 again for a failed one). The leader
//     replaces a workload by sending a higher generation.
//   - Within a generation the agent restarts the instance in place when its
//     restart policy allows: a service that exits (any code), a batch that
//     exits non-zero, or a run killed by its health check, after the
//     policy's delay, doubling up to its max_delay, at most attempts times
//     (the count starts again after a run of api.RestartResetAfter). The
//     instance is restarting meanwhile, then runs again with a new pid in
//     the same directory, output and ports; a line in the output tells each
//     restart. When the attempts run out it is failed, with the reason. A
//     batch that exits 0 is never restarted. A stop, a newer generation or
//     the agent's shutdown calls a pending restart off.
//   - Health checks (http, tcp, exec) run from the agent every interval;
//     after grace, failures in a row make the run unhealthy and its process
//     group is killed with SIGKILL at once, without the stop grace.
//   - Ports: each label of the spec gets a port of Config.PortRange that no
//     other live instance holds and that could be bound when picked, passed
//     as MO_PORT_<LABEL>; kept across restarts in place, given back when
//     the generation ends.
//   - When an instance's main process ends, for whatever reason, whatever is
//     left of its process group is killed with SIGKILL (by its monitor).
//   - exit_code is the exit status, or 128+signal when the process was
//     killed by a signal (so 143 after SIGTERM, 137 after SIGKILL).
//   - Stopped, exited and failed instances stay in GET /status (with
//     exited_at) until more than maxEnded of them exist; then the oldest are
//     dropped, together with their workload directory.
//   - output.log is capped at Config.LogMaxBytes: when a write would exceed
//     the cap, the oldest half is dropped (cut at a line boundary) behind a
//     marker line, and writing goes on. A new generation truncates the
//     file; a restart in place appends to it.
//   - Workloads run with the agent's environment minus SCHEDULER_TOKEN and
//     any variable whose value is the token, plus the submitted env and
//     MO_PORT_<LABEL> for each port. Their working directory is <data>/workloads/<id>, stdin is /dev/null, and a
//     command without a slash is looked up in the agent's PATH.
//   - With cgroups (root and a writable cgroup v1 or v2 file system; the
//     agent logs which at start), each instance runs in the cgroup
//     mo-agent/<node id>-<hash of the data dir>/<id>@<generation>, with
//     memory (swap held to the same limit), CPU quota and weight, and pids
//     limits from its resources. Its process is inside before it runs any
//     workload code (cloned into it on v2, entered by a re-exec of the agent
//     binary on v1), so no descendant leaves it by changing its session or
//     environment (only one that may write cgroup files could). A stop sends SIGTERM to the process
//     group, then after the grace kills the whole cgroup; an instance's end
//     kills what is left of its cgroup and removes it; an OOM kill in it is
//     reported as reason "OOM killed" (and in error). The guard kills every
//     cgroup under the parent when the agent dies, and the next start kills
//     those a previous run left.
//   - Without cgroups the agent says so once at start and runs workloads
//     without limits. Every workload process carries
//     MO_INSTANCE=<agent run>:<id>:<generation> in its environment
//     (escaped.go). Processes that leave their process group (setsid,
//     setpgid) escape the group kill, but when the instance ends the agent
//     kills its children that carry the instance's tag, and the guard kills
//     every process tagged with the agent's run when the agent dies. A
//     process that clears its environment escapes both.
//   - A workload's main process has Pdeathsig SIGKILL towards its monitor,
//     so it never outlives it. When the agent dies without announcing a
//     restart, the monitors kill their workloads' groups, cgroups and tagged
//     processes, and so does the guard (guard.go), a small process that
//     SIGKILLs every workload group still running once the agent is gone,
//     even after a SIGKILL of the agent; failing both, the leftover cleanup
//     of the next start on the same data dir does.
package agent
