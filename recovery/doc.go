// Package recovery owns the leader-only placement and recovery engine: it
// places new workloads and moves the workloads of dead nodes to healthy ones,
// choosing nodes by CPU, recording every intent and outcome through raft
// before and after it calls an agent, and reconciles what agents report with
// the desired state (stray instances stopped, exited ones restarted).
package recovery
