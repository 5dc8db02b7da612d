package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
)

// Cgroups. When the machine allows them (root, a writable cgroup file
// system), every instance runs in a cgroup of its own, <parent>/<id>@<gen>,
// created just before its fork with its resources as limits; its process is
// inside before it runs any workload code (agent/cgroup). Its processes are
// then found through the cgroup, whatever they do to their process group
// or environment: stopping and ending an instance kill its cgroup, the guard
// kills every cgroup of the agent when the agent dies, and a new run of the
// agent kills those a previous run left. Without cgroups the agent says so
// once at start and relies, as before, on the process group, the MO_INSTANCE
// tag and a scan of /proc (escaped.go).

// reasonOOMKilled is the Reason of an instance whose process the kernel's
// OOM killer killed.
const reasonOOMKilled = "OOM killed"

// cgroupKillTimeout bounds the kill of one instance's cgroup.
const cgroupKillTimeout = groupGoneTimeout

// cgroupName names the agent's parent cgroup: its node id, and a hash of
// its data dir, which is unique on the machine (locked) and the same for the
// next run, which must find what this one leaves.
func cgroupName(cfg Config) string {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	sum := sha256.Sum256([]byte(dir))
	return cfg.ID + "-" + hex.EncodeToString(sum[:4])
}

// instanceGroupName names the cgroup of generation gen of workload id ('@'
// is in no id, nor in a cgroup's own files).
func instanceGroupName(id string, gen uint64) string {
	return id + "@" + strconv.FormatUint(gen, 10)
}

// tagGroupName is the cgroup name of the instance an instance tag
// (instanceEnv=<run>:<id>:<gen>) names, "" if tag is not one.
func tagGroupName(tag string) string {
	v, ok := strings.CutPrefix(tag, instanceEnv+"=")
	if !ok {
		return ""
	}
	_, rest, ok := strings.Cut(v, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 {
		return ""
	}
	gen, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return ""
	}
	return instanceGroupName(rest[:i], gen)
}

// openCgroups opens the agent's parent cgroup and says, once, whether
// instances get cgroups. off, when set, forces them off for that reason;
// opts, when set, chooses the hierarchy (tests). nil means no cgroups.
func openCgroups(cfg Config, off string, opts *cgroup.Options, log hclog.Logger) *cgroup.Manager {
	const without = "cgroups unavailable: workloads run without resource limits, and their processes are found by process group and environment tag"
	if off == "" && cfg.NoCgroups {
		off = "turned off by --no-cgroups"
	}
	if off != "" {
		log.Warn(without, "reason", off)
		return nil
	}
	o := cgroup.Options{}
	if opts != nil {
		o = *opts
	}
	o.Name = cgroupName(cfg)
	o.Warn = log.Warn
	m, err := cgroup.Open(o)
	if err != nil {
		log.Warn(without, "reason", err)
		return nil
	}
	args := []any{"version", m.Version(), "parent", strings.Join(m.Dirs(), " "), "controllers", strings.Join(m.Controllers(), ",")}
	if missing := m.Missing(); len(missing) > 0 {
		args = append(args, "not_enforced", strings.Join(missing, ","))
	}
	log.Info("cgroups on: each workload instance runs in a cgroup of its own, with its resources as limits", args...)
	return m
}

// closeCgroups kills what is left in the agent's cgroups and removes them.
func closeCgroups(m *cgroup.Manager, log hclog.Logger) {
	if m == nil {
		return
	}
	if groups, procs, err := m.KillAll(cgroupKillTimeout); err != nil {
		log.Error("cannot remove every workload cgroup", "error", err)
	} else if procs > 0 {
		log.Warn("killed processes left in workload cgroups at shutdown", "groups", groups, "processes", procs)
	}
	if err := m.Remove(); err != nil {
		log.Warn("cannot remove the agent's cgroup", "error", err)
	}
}

// limitsOf turns a spec's resources into cgroup limits.
func limitsOf(r *api.Resources) cgroup.Limits {
	if r == nil {
		return cgroup.Limits{}
	}
	return cgroup.Limits{CPUMillicores: r.CPUMillicores, MemoryMB: r.MemoryMB, Pids: r.Pids}
}

// createCgroup creates the cgroup of run in, with the limits of res, where
// its monitor starts the workload (in.cg); without cgroups it does nothing.
func (s *supervisor) createCgroup(in *instance, res *api.Resources) error {
	m := s.cfg.cgroups
	if m == nil {
		return nil
	}
	g, err := m.Create(instanceGroupName(in.id, in.gen), limitsOf(res))
	if err != nil {
		return fmt.Errorf("cannot create the instance's cgroup: %v", err)
	}
	in.cg = g
	return nil
}

// dropCgroup removes the cgroup of a run that did not start.
func (s *supervisor) dropCgroup(in *instance) {
	if in.cg == nil {
		return
	}
	if _, err := in.cg.Kill(cgroupKillTimeout); err == nil {
		_ = in.cg.Delete()
	}
}

// monitorCgroup names in's cgroup for its monitor (nil without).
func (s *supervisor) monitorCgroup(in *instance) *monitorCgroup {
	if in.cg == nil {
		return nil
	}
	o := s.cfg.cgroups.Options()
	return &monitorCgroup{Version: o.Version, Mountpoint: o.Mountpoint, Parent: o.Name, Name: in.cg.Name()}
}

// killCgroup kills every process in the instance's cgroup (after the
// stop grace); without cgroups it does nothing.
func (s *supervisor) killCgroup(in *instance) {
	if in.cg == nil {
		return
	}
	if _, err := in.cg.Kill(cgroupKillTimeout); err != nil {
		s.log.Error("cannot kill the workload's cgroup", "id", in.id, "generation", in.gen, "error", err)
	}
}

// killLeftBehind kills the processes of an ended instance that left its
// process group, and reports whether the OOM killer struck it. With cgroups
// they are the rest of its cgroup, which is then removed; without, those
// that carry its tag (a scan of the agent's children in /proc; the monitor
// has done the same with its own).
func (s *supervisor) killLeftBehind(in *instance) (oom bool) {
	if in.cg == nil {
		if n := killTagged(in.tag); n > 0 {
			s.log.Warn("killed processes that had left the workload's process group", "id", in.id, "generation", in.gen, "count", n)
		}
		return false
	}
	n, err := in.cg.Kill(cgroupKillTimeout)
	if n > 0 {
		s.log.Warn("killed processes that had left the workload's process group", "id", in.id, "generation", in.gen, "count", n)
	}
	oom = in.cg.OOMKilled()
	if err != nil {
		s.log.Error("processes of the workload's cgroup are still alive after SIGKILL", "id", in.id, "generation", in.gen, "error", err)
	} else if err := in.cg.Delete(); err != nil {
		s.log.Warn("cannot remove the workload's cgroup", "id", in.id, "generation", in.gen, "error", err)
	}
	return oom
}

// oomEnded records, for an instance that ended by itself, that the OOM
// killer struck it (Reason, and errMsg unless there is one already), and
// returns the error message. Call it under supervisor.mu.
func (in *instance) oomEnded(oom bool, errMsg string) string {
	if !oom || in.stopping {
		return errMsg
	}
	in.reason = reasonOOMKilled
	if errMsg != "" {
		return errMsg
	}
	if mb := in.cg.Limits().MemoryMB; mb > 0 {
		return fmt.Sprintf("%s: the workload reached its memory limit of %d MB", reasonOOMKilled, mb)
	}
	return reasonOOMKilled + ": the machine ran out of memory"
}
