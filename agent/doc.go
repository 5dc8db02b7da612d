// Package agent is the micro-orchestrator node agent. It owns everything that
// happens on one machine on behalf of the scheduler leader:
//
//   - the agent HTTP API (server.go, status.go), all behind the cluster token;
//   - the process supervisor (supervisor.go, spawn.go, instance.go,
//     process.go): each workload instance runs as its own process group,
//     dies with the agent (Pdeathsig), and is reaped by the agent, which is
//     a child subreaper;
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
//	<data>/workloads/<id>/proc-<gen>.json   pgid, start time, boot id of a live group
//	<data>/workloads.previous/              the previous run's workloads dir, kept for post-mortems
//
// # Behaviour
//
//   - Instances are kept in memory only. On startup the agent kills the
//     groups recorded by the previous run (only where the recorded start time
//     still matches, so a reused pid is never hit), then starts empty.
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
//     left of its process group is killed with SIGKILL.
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
//   - Pdeathsig reaches a workload's main process only. Its background
//     children are killed by the guard (guard.go), a small sh process that
//     SIGKILLs every workload group still running once the agent is gone,
//     even after a SIGKILL of the agent; and, failing that, by the leftover
//     cleanup of the next start on the same data dir.
package agent
