// Package agent is the micro-orchestrator node agent. It owns everything that
// happens on one machine on behalf of the scheduler leader:
//
//   - the agent HTTP API (server.go, status.go), all behind the cluster token;
//   - the process supervisor (supervisor.go, spawn.go, instance.go,
//     process.go): each workload instance runs as its own process group,
//     dies with the agent (Pdeathsig), and is reaped by the agent, which is
//     a child subreaper;
//   - per-workload size-capped output files (logs.go);
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
//   - A generation runs at most once: a start with the generation of an
//     instance that has already ended is answered with that instance and
//     nothing is started (422 again for a failed one). The leader restarts a
//     workload by sending a higher generation.
//   - When an instance's main process ends, for whatever reason, whatever is
//     left of its process group is killed with SIGKILL.
//   - exit_code is the exit status, or 128+signal when the process was
//     killed by a signal (so 143 after SIGTERM, 137 after SIGKILL).
//   - Stopped, exited and failed instances stay in GET /status (with
//     exited_at) until more than maxEnded of them exist; then the oldest are
//     dropped, together with their workload directory.
//   - output.log is capped at Config.LogMaxBytes: when a write would exceed
//     the cap, the oldest half is dropped (cut at a line boundary) behind a
//     marker line, and writing goes on. A new generation truncates the file.
//   - Workloads run with the agent's environment minus SCHEDULER_TOKEN and
//     any variable whose value is the token, plus the submitted env. Their
//     working directory is <data>/workloads/<id>, stdin is /dev/null, and a
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
