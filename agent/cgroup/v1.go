package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Subsystems are the hierarchies the agent uses, the one that tracks
// membership (and freezes for a kill) first.
var v1Subsystems = []cgroup1.Name{cgroup1.Freezer, cgroup1.Cpu, cgroup1.Memory, cgroup1.Pids}

// v1 is a parent group in the v1 hierarchies.
type v1 struct {
	path   cgroup1.Path // the parent's path in each hierarchy
	hier   cgroup1.Hierarchy
	parent cgroup1.Cgroup
	subs   []cgroup1.Name    // active, in v1Subsystems order
	dirOf  map[string]string // subsystem -> the parent's directory
	memsw  bool              // memory+swap can be limited
}

// pather is what a cgroup1 subsystem with a directory offers.
type pather interface {
	Name() cgroup1.Name
	Path(path string) string
}

func openV1(name string) (*v1, error) {
	hier := func() ([]cgroup1.Subsystem, error) {
		all, err := cgroup1.Default()
		if err != nil {
			return nil, err
		}
		var out []cgroup1.Subsystem
		for _, want := range v1Subsystems {
			for _, s := range all {
				if s.Name() == want {
					out = append(out, s)
				}
			}
		}
		return out, nil
	}
	path := cgroup1.NestedPath(filepath.Join(Root, name))
	cg, err := cgroup1.New(path, &specs.LinuxResources{}, cgroup1.WithHierarchy(hier))
	if err != nil {
		return nil, fmt.Errorf("create the agent's cgroup (v1): %w", err)
	}
	v := &v1{path: path, hier: hier, parent: cg, dirOf: map[string]string{}}
	for _, s := range cg.Subsystems() {
		p, ok := s.(pather)
		if !ok {
			continue
		}
		rel, err := path(s.Name())
		if err != nil {
			return nil, err
		}
		v.dirOf[string(s.Name())] = p.Path(rel)
	}
	for _, s := range v1Subsystems {
		if _, ok := v.dirOf[string(s)]; ok {
			v.subs = append(v.subs, s)
		}
	}
	if _, ok := v.dirOf[string(cgroup1.Freezer)]; !ok {
		_ = cg.Delete()
		return nil, errors.New("cgroup v1 without a freezer hierarchy: a group could not be killed as a whole")
	}
	if dir, ok := v.dirOf[string(cgroup1.Memory)]; ok {
		_, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
		v.memsw = err == nil
	}
	return v, nil
}

func (v *v1) dirs() []string {
	out := make([]string, 0, len(v.subs))
	for _, s := range v.subs {
		out = append(out, v.dirOf[string(s)])
	}
	return out
}

func (v *v1) controllers() []string {
	var out []string
	for _, s := range v.subs {
		if s != cgroup1.Freezer {
			out = append(out, string(s))
		}
	}
	return out
}

// childPath is the path of child group name in each hierarchy.
func (v *v1) childPath(name string) cgroup1.Path {
	return func(s cgroup1.Name) (string, error) {
		p, err := v.path(s)
		if err != nil {
			return "", err
		}
		return filepath.Join(p, name), nil
	}
}

func (v *v1) create(name string, l Limits) (backend, error) {
	res := &specs.LinuxResources{}
	if l.MemoryMB > 0 {
		b := int64(l.MemoryMB) << 20
		res.Memory = &specs.LinuxMemory{Limit: &b}
		if v.memsw {
			res.Memory.Swap = &b // memory+swap equal to memory: no swap
		}
	}
	if l.CPUMillicores > 0 {
		shares := max(uint64(l.CPUMillicores)*1024/1000, 2)
		quota := max(int64(l.CPUMillicores)*cpuPeriod/1000, minQuota)
		period := uint64(cpuPeriod)
		res.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
	}
	if l.Pids > 0 {
		n := int64(l.Pids)
		res.Pids = &specs.LinuxPids{Limit: &n}
	}
	cg, err := v.parent.New(name, res)
	if err != nil {
		for _, d := range v.dirs() {
			_ = os.Remove(filepath.Join(d, name))
		}
		return nil, err
	}
	return v.group(cg, name), nil
}

func (v *v1) load(name string) (backend, error) {
	cg, err := cgroup1.Load(v.childPath(name), cgroup1.WithHierarchy(v.hier))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, fmt.Errorf("cgroup %s: %w", name, os.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return v.group(cg, name), nil
}

func (v *v1) group(cg cgroup1.Cgroup, name string) *v1group {
	g := &v1group{cg: cg}
	for _, s := range v.subs {
		d := filepath.Join(v.dirOf[string(s)], name)
		g.dirs = append(g.dirs, d)
		switch s {
		case cgroup1.Freezer:
			g.freezer = d
		case cgroup1.Memory:
			g.memory = true
		}
	}
	return g
}

func (v *v1) remove() error {
	if err := v.parent.Delete(); err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return err
	}
	return nil
}

// v1group is one group in the v1 hierarchies.
type v1group struct {
	cg      cgroup1.Cgroup
	dirs    []string // in v1Subsystems order, freezer first
	freezer string
	memory  bool
}

func (g *v1group) pids() ([]int, error) {
	if _, err := os.Stat(g.freezer); err != nil {
		return nil, err
	}
	procs, err := g.cg.Processes(cgroup1.Freezer, true)
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(procs))
	for _, p := range procs {
		out = append(out, p.Pid)
	}
	return out, nil
}

func (g *v1group) kill() (bool, error) { return false, nil }

// freeze asks for FROZEN and waits for it, but no later than until: the
// library's Freeze waits forever for a process that cannot freeze.
func (g *v1group) freeze(until time.Time) {
	state := filepath.Join(g.freezer, "freezer.state")
	if os.WriteFile(state, []byte("FROZEN"), 0) != nil {
		return
	}
	for time.Now().Before(until) {
		b, err := os.ReadFile(state)
		if err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (g *v1group) thaw() error {
	err := g.cg.Thaw()
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return os.ErrNotExist
	}
	return err
}

func (g *v1group) oomKills() uint64 {
	if !g.memory {
		return 0
	}
	st, err := g.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil || st.MemoryOomControl == nil {
		return 0
	}
	return st.MemoryOomControl.OomKill
}

func (g *v1group) remove() error {
	err := g.cg.Delete()
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil
	}
	return err
}

func (g *v1group) procsFiles() []string {
	out := make([]string, len(g.dirs))
	for i, d := range g.dirs {
		out[i] = filepath.Join(d, "cgroup.procs")
	}
	return out
}

func (g *v1group) dir() string { return "" }
