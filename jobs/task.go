package jobs

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// task is what an instance runs: two instances with equal tasks are the same
// process, whatever job version they are labelled with.
type task struct {
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"`
	Exclusive bool              `json:"exclusive"`
	Spec      api.Spec          `json:"spec"`
}

func taskOfSpec(s api.JobSpec) task {
	return normTask(task{Command: s.Command, Args: s.Args, Env: s.Env, Exclusive: s.Exclusive, Spec: s.Spec})
}

func taskOfWorkload(w *api.Workload) task {
	return normTask(task{Command: w.Command, Args: w.Args, Env: w.Env, Exclusive: w.Exclusive, Spec: w.Spec})
}

func normTask(t task) task {
	if len(t.Args) == 0 {
		t.Args = nil
	}
	if len(t.Env) == 0 {
		t.Env = nil
	}
	t.Spec = fsm.CopySpec(t.Spec)
	t.Spec.Normalize()
	return t
}

func (t task) key() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// sameTask reports whether instance w runs what spec asks for: then a new
// version that only changes the count or the update strategy moves it in
// place, without a restart.
func sameTask(w *api.Workload, spec api.JobSpec) bool {
	return taskOfWorkload(w).key() == taskOfSpec(spec).key()
}

// versionOf returns the job version an instance is labelled with.
func versionOf(w *api.Workload) (uint64, bool) {
	if w.JobVersion == nil {
		return 0, false
	}
	return *w.JobVersion, true
}

// Diff lists the fields that differ between two job specs, the count and
// the name aside, as flat dotted paths with JSON values, sorted by field.
func Diff(old, new api.JobSpec) []api.FieldDiff {
	return diffFields(flatten(old), flatten(new))
}

// diffFields lists the differences between two flattened specs.
func diffFields(a, b map[string]string) []api.FieldDiff {
	out := []api.FieldDiff{}
	for _, k := range slices.Sorted(maps.Keys(a)) {
		nv, ok := b[k]
		switch {
		case !ok:
			out = append(out, api.FieldDiff{Op: "-", Field: k, Old: a[k]})
		case nv != a[k]:
			out = append(out, api.FieldDiff{Op: "~", Field: k, Old: a[k], New: nv})
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, api.FieldDiff{Op: "+", Field: k, New: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// flatten turns a spec into its fields: objects become dotted paths, lists
// and values stay JSON.
func flatten(s api.JobSpec) map[string]string {
	s = fsm.CopyJobSpec(s)
	s.Name, s.Count = "", nil
	b, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if obj, ok := v.(map[string]any); ok && len(obj) > 0 {
			for k, sub := range obj {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, sub)
			}
			return
		}
		if prefix == "" {
			return
		}
		j, _ := json.Marshal(v)
		out[prefix] = string(j)
	}
	walk("", m)
	delete(out, "name")
	return out
}
