package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// v2 is a parent group in the unified hierarchy.
type v2 struct {
	mount    string
	group    string // "/mo-agent/<name>"
	parent   *cgroup2.Manager
	ctrls    []string // of cpu, memory, pids: enabled for the parent's children
	swap     bool     // memory.swap.max exists
	oomGroup bool     // memory.oom.group exists
}

func openV2(mount, name string) (*v2, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(mount, &st); err != nil {
		return nil, fmt.Errorf("cgroup v2 at %s: %w", mount, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("%s is not a cgroup v2 file system", mount)
	}
	avail, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	have := strings.Fields(string(avail))
	res := &cgroup2.Resources{}
	if slices.Contains(have, "cpu") {
		res.CPU = &cgroup2.CPU{}
	}
	if slices.Contains(have, "memory") {
		res.Memory = &cgroup2.Memory{}
	}
	if slices.Contains(have, "pids") {
		res.Pids = &cgroup2.Pids{}
	}
	group := "/" + Root + "/" + name
	m, err := cgroup2.NewManager(mount, group, res)
	if err != nil {
		return nil, fmt.Errorf("create the agent's cgroup (v2): %w", err)
	}
	v := &v2{mount: mount, group: group, parent: m}
	// What the parent got is what its children can get.
	got, err := m.Controllers()
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	for _, c := range []string{"cpu", "memory", "pids"} {
		if slices.Contains(got, c) {
			v.ctrls = append(v.ctrls, c)
		}
	}
	dir := v.dirs()[0]
	if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
		v.swap = true
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.oom.group")); err == nil {
		v.oomGroup = true
	}
	return v, nil
}

func (v *v2) dirs() []string { return []string{filepath.Join(v.mount, v.group)} }

func (v *v2) controllers() []string { return v.ctrls }

func (v *v2) create(name string, l Limits) (backend, error) {
	res := &cgroup2.Resources{}
	if l.MemoryMB > 0 && slices.Contains(v.ctrls, "memory") {
		b := int64(l.MemoryMB) << 20
		res.Memory = &cgroup2.Memory{Max: &b}
		if v.swap {
			zero := int64(0) // swap.max is swap alone in v2
			res.Memory.Swap = &zero
		}
		if v.oomGroup {
			all := true // an OOM kill takes the whole instance
			res.Memory.OOMGroup = &all
		}
	}
	if l.CPUMillicores > 0 && slices.Contains(v.ctrls, "cpu") {
		quota := max(int64(l.CPUMillicores)*cpuPeriod/1000, minQuota)
		period := uint64(cpuPeriod)
		weight := cgroup2.ConvertCPUSharesToCgroupV2Value(max(uint64(l.CPUMillicores)*1024/1000, 2))
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period), Weight: &weight}
	}
	if l.Pids > 0 && slices.Contains(v.ctrls, "pids") {
		res.Pids = &cgroup2.Pids{Max: int64(l.Pids)}
	}
	m, err := v.parent.NewChild(name, res)
	if err != nil {
		return nil, err
	}
	return &v2group{m: m, path: filepath.Join(v.dirs()[0], name)}, nil
}

func (v *v2) load(name string) (backend, error) {
	path := filepath.Join(v.dirs()[0], name)
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	m, err := cgroup2.Load(v.group+"/"+name, cgroup2.WithMountpoint(v.mount))
	if err != nil {
		return nil, err
	}
	return &v2group{m: m, path: path}, nil
}

func (v *v2) remove() error {
	if err := v.parent.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// v2group is one group in the unified hierarchy.
type v2group struct {
	m    *cgroup2.Manager
	path string
}

func (g *v2group) pids() ([]int, error) {
	if _, err := os.Stat(g.path); err != nil {
		return nil, err
	}
	procs, err := g.m.Procs(true)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = int(p)
	}
	return out, nil
}

func (g *v2group) kill() (bool, error) {
	if _, err := os.Stat(filepath.Join(g.path, "cgroup.kill")); err != nil {
		return false, nil // before Linux 5.14
	}
	return true, g.m.Kill()
}

// freeze asks for a freeze and waits for cgroup.events to say frozen, but
// no later than until: the library's Freeze waits forever for a process
// that cannot freeze.
func (g *v2group) freeze(until time.Time) {
	if os.WriteFile(filepath.Join(g.path, "cgroup.freeze"), []byte("1"), 0) != nil {
		return
	}
	for time.Now().Before(until) {
		b, err := os.ReadFile(filepath.Join(g.path, "cgroup.events"))
		if err != nil || bytes.Contains(b, []byte("frozen 1")) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (g *v2group) thaw() error { return g.m.Thaw() }

func (g *v2group) oomKills() uint64 {
	st, err := g.m.StatFiltered(cgroup2.StatMemoryEvents)
	if err != nil || st.MemoryEvents == nil {
		return 0
	}
	return st.MemoryEvents.OomKill + st.MemoryEvents.OomGroupKill
}

func (g *v2group) remove() error {
	err := g.m.Delete()
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (g *v2group) procsFiles() []string { return []string{filepath.Join(g.path, "cgroup.procs")} }

func (g *v2group) dir() string { return g.path }
