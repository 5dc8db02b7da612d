// Package cgroup confines the agent's workload instances in Linux control
// groups, v1 or v2 behind one type, through github.com/containerd/cgroups/v3.
//
// The agent opens one parent group, mo-agent/<name>, when it starts (Open):
// in v1 under the agent's own group in each hierarchy (freezer, cpu, memory,
// pids), so that its workloads stay inside whatever confines the agent; in v2
// at the root of the unified hierarchy, since a group that holds processes
// (the agent's own) cannot hand controllers down to children.
//
// Every instance gets a child group with its limits (Manager.Create): memory,
// with swap held to the same amount so that the OOM killer acts rather than
// swap; a CPU quota and a proportional weight; a pids limit. Its process is
// inside the group before it runs any code of the workload (Group.ForkExec):
// cloned straight into it on v2 (CLONE_INTO_CGROUP), otherwise through the
// shim, the agent's own binary started with ShimEnv set, which writes its pid
// into the group and then execve's the command with the same pid, argv and
// environment. Nothing the workload does afterwards (setsid, double forks, a
// cleared environment) takes a process out of the group.
//
// A group is killed as a whole (Group.Kill): cgroup.kill where the kernel has
// it, otherwise freeze, SIGKILL every member, thaw, until it is empty, within
// a bound; then it is removed (Group.Delete). Manager.KillAll does that to
// every group under the parent: for the guard process when the agent dies,
// and for the leftovers of a previous run when it starts again.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
)

// Root is the directory, in every hierarchy, that holds the agents' parent
// groups.
const Root = "mo-agent"

// DefaultMountpoint is where the unified (v2) hierarchy is mounted.
const DefaultMountpoint = "/sys/fs/cgroup"

// CPU bandwidth: quota per period, in microseconds. The kernel refuses a
// quota under a millisecond.
const (
	cpuPeriod = 100000
	minQuota  = 1000
)

// Kill timing: how long one round waits for a freeze, and for the members
// to be gone after SIGKILL, before it tries again.
const (
	freezeWait = 100 * time.Millisecond
	roundWait  = 250 * time.Millisecond
)

// Options say which cgroups the agent uses and where its parent group is.
type Options struct {
	// Name is the parent group's name below Root (required, no slash).
	Name string
	// Version forces cgroup v1 or v2; 0 detects it: v2 when the machine is
	// in unified mode, v1 otherwise (legacy or hybrid).
	Version int
	// Mountpoint is the unified hierarchy used by v2 (default
	// DefaultMountpoint).
	Mountpoint string
	// Warn, when set, is told about degraded operation, such as a kernel that
	// cannot clone into a cgroup (the shim is used instead).
	Warn func(msg string, args ...any)
}

// Limits are what an instance may use; zero means no limit.
type Limits struct {
	CPUMillicores int
	MemoryMB      int
	Pids          int
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Manager owns the agent's parent group and creates the instances' groups
// below it. It is safe for concurrent use.
type Manager struct {
	opts    Options
	impl    hierarchy
	noClone atomic.Bool // v2: the kernel refused CLONE_INTO_CGROUP; use the shim
	warned  sync.Once
}

// hierarchy is one cgroup version's side of the Manager.
type hierarchy interface {
	// dirs are the parent group's directories, the one that tracks
	// membership first.
	dirs() []string
	// controllers are the limit controllers available to instances.
	controllers() []string
	create(name string, l Limits) (backend, error)
	load(name string) (backend, error)
	remove() error
}

// backend is one version's side of a Group.
type backend interface {
	// pids lists the group's processes, subgroups included; an error
	// matching os.ErrNotExist once the group is gone.
	pids() ([]int, error)
	// kill writes cgroup.kill and reports true, or reports false where there
	// is no such file (then the caller freezes, kills and thaws).
	kill() (bool, error)
	// freeze freezes the group, waiting no later than until for the kernel to
	// finish (a process in uninterruptible sleep may never freeze).
	freeze(until time.Time)
	thaw() error
	oomKills() uint64
	remove() error
	// procsFiles are the cgroup.procs files that the shim writes its pid to,
	// the membership one first.
	procsFiles() []string
	// dir is the group's directory for CLONE_INTO_CGROUP ("" on v1).
	dir() string
}

// Open detects the cgroup version, creates (or reuses) the agent's parent
// group and checks that it is writable. An error says, in one sentence, why
// cgroups cannot be used here.
func Open(opts Options) (*Manager, error) {
	if err := validName(opts.Name); err != nil {
		return nil, fmt.Errorf("parent group: %w", err)
	}
	if opts.Mountpoint == "" {
		opts.Mountpoint = DefaultMountpoint
	}
	if opts.Version == 0 {
		switch cgroups.Mode() {
		case cgroups.Unified:
			opts.Version = 2
		case cgroups.Legacy, cgroups.Hybrid:
			opts.Version = 1
		default:
			return nil, fmt.Errorf("no cgroup file system is mounted at %s", DefaultMountpoint)
		}
	}
	var (
		impl hierarchy
		err  error
	)
	// Another agent may remove an empty Root between our mkdir of it and of
	// our group below it: try again.
	for range 3 {
		switch opts.Version {
		case 1:
			impl, err = openV1(opts.Name)
		case 2:
			impl, err = openV2(opts.Mountpoint, opts.Name)
		default:
			return nil, fmt.Errorf("cgroup version %d: want 1 or 2", opts.Version)
		}
		if !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &Manager{opts: opts, impl: impl}, nil
}

// validName accepts a group name: not empty, no slash or NUL, not . or ..
// (they would name another directory).
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("bad group name %q", name)
	}
	return nil
}

// Options returns the options the manager was opened with, the version and
// mountpoint filled in: Open with them reaches the same parent group.
func (m *Manager) Options() Options { return m.opts }

// Version is 1 or 2.
func (m *Manager) Version() int { return m.opts.Version }

// Controllers lists the limit controllers that instances get (of cpu,
// memory and pids).
func (m *Manager) Controllers() []string { return m.impl.controllers() }

// Missing lists the limit controllers (of cpu, memory and pids) that are
// not available, whose limits are therefore not enforced.
func (m *Manager) Missing() []string {
	var out []string
	for _, c := range []string{"cpu", "memory", "pids"} {
		if !slices.Contains(m.impl.controllers(), c) {
			out = append(out, c)
		}
	}
	return out
}

// Dirs are the parent group's directories.
func (m *Manager) Dirs() []string { return m.impl.dirs() }

// String describes the manager for a log line.
func (m *Manager) String() string {
	return fmt.Sprintf("cgroup v%d, parent %s", m.opts.Version, strings.Join(m.impl.dirs(), " "))
}

// Create makes the group name below the parent with limits l. A group of
// that name left from before is killed and removed first.
func (m *Manager) Create(name string, l Limits) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(m.impl.dirs()[0], name)); err == nil {
		old, err := m.Load(name)
		if err == nil {
			_, _ = old.Kill(5 * time.Second)
			if err := old.Delete(); err != nil {
				return nil, fmt.Errorf("remove the old cgroup %s: %w", name, err)
			}
		}
	}
	b, err := m.impl.create(name, l)
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", name, err)
	}
	return &Group{name: name, limits: l, m: m, b: b}, nil
}

// Load returns the existing group name below the parent (its limits are not
// read back); an error matching os.ErrNotExist if there is none.
func (m *Manager) Load(name string) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	b, err := m.impl.load(name)
	if err != nil {
		return nil, err
	}
	return &Group{name: name, m: m, b: b}, nil
}

// Groups lists the names of the groups below the parent.
func (m *Manager) Groups() ([]string, error) {
	var names []string
	var errs []error
	for _, d := range m.impl.dirs() {
		entries, err := os.ReadDir(d)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names, errors.Join(errs...)
}

// KillAll kills every group below the parent and removes it, each within
// timeout, and returns how many groups it removed and how many processes it
// killed in them.
func (m *Manager) KillAll(timeout time.Duration) (groups, procs int, err error) {
	return m.KillAllExcept(timeout, nil)
}

// KillAllExcept is KillAll, leaving alone the groups whose names are in keep.
func (m *Manager) KillAllExcept(timeout time.Duration, keep map[string]bool) (groups, procs int, err error) {
	names, err := m.Groups()
	errs := []error{err}
	for _, name := range names {
		if keep[name] {
			continue
		}
		g, err := m.Load(name)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		n, err := g.Kill(timeout)
		procs += n
		errs = append(errs, err)
		if err := g.Delete(); err != nil {
			errs = append(errs, err)
		} else {
			groups++
		}
	}
	return groups, procs, errors.Join(errs...)
}

// Remove removes the parent group, which must be empty (see KillAll), and
// Root if no other agent uses it.
func (m *Manager) Remove() error {
	err := m.impl.remove()
	for _, d := range m.impl.dirs() {
		_ = os.Remove(filepath.Dir(d)) // fails while another agent's group is there
	}
	return err
}

// warn reports degraded operation once.
func (m *Manager) warn(msg string, args ...any) {
	if m.opts.Warn != nil {
		m.warned.Do(func() { m.opts.Warn(msg, args...) })
	}
}

// Group is one instance's cgroup. It is safe for concurrent use; once
// deleted, Kill and Delete do nothing, so a late call cannot reach a new
// group of the same name.
type Group struct {
	name   string
	limits Limits
	m      *Manager

	mu      sync.Mutex
	deleted bool
	b       backend
}

// Name is the group's name below the parent.
func (g *Group) Name() string { return g.name }

// Limits are the limits the group was created with.
func (g *Group) Limits() Limits { return g.limits }

// Pids lists the group's processes (none once it is deleted).
func (g *Group) Pids() ([]int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deleted {
		return nil, nil
	}
	pids, err := g.b.pids()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return pids, err
}

// Kill sends SIGKILL to every process of the group, a whole-group kill
// (cgroup.kill; else freeze, kill each member, thaw), again until the group
// is empty or timeout passes. It returns how many processes it killed.
func (g *Group) Kill(timeout time.Duration) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deleted {
		return 0, nil
	}
	deadline := time.Now().Add(timeout)
	killed := map[int]bool{}
	for {
		pids, err := g.b.pids()
		if errors.Is(err, os.ErrNotExist) {
			return len(killed), nil
		}
		if err != nil {
			return len(killed), fmt.Errorf("list the processes of cgroup %s: %w", g.name, err)
		}
		if len(pids) == 0 {
			return len(killed), nil
		}
		if !time.Now().Before(deadline) {
			return len(killed), fmt.Errorf("cgroup %s: %d processes still there %s after SIGKILL", g.name, len(pids), timeout)
		}
		done, err := g.b.kill()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return len(killed), fmt.Errorf("kill cgroup %s: %w", g.name, err)
		}
		if done {
			for _, pid := range pids {
				killed[pid] = true
			}
		} else {
			g.b.freeze(earliest(deadline, time.Now().Add(freezeWait)))
			pids, _ = g.b.pids() // complete now that nothing forks
			for _, pid := range pids {
				if pid > 1 && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed[pid] = true
				}
			}
			if err := g.b.thaw(); err != nil && !errors.Is(err, os.ErrNotExist) {
				return len(killed), fmt.Errorf("thaw cgroup %s: %w", g.name, err)
			}
		}
		waitEmpty(g.b, earliest(deadline, time.Now().Add(roundWait)))
	}
}

// waitEmpty polls until b has no process left or until passes.
func waitEmpty(b backend, until time.Time) {
	delay := 100 * time.Microsecond
	for {
		pids, err := b.pids()
		if err != nil || len(pids) == 0 || !time.Now().Before(until) {
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// OOMKilled reports whether the kernel's OOM killer has killed a process of
// the group (at its memory limit). Read it before Delete.
func (g *Group) OOMKilled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.deleted && g.b.oomKills() > 0
}

// Delete removes the group, which must be empty (see Kill).
func (g *Group) Delete() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deleted {
		return nil
	}
	if err := g.b.remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", g.name, err)
	}
	g.deleted = true
	return nil
}
