package jobfile

import (
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/micro-orchestrator/mo/api"
)

// decoder turns a job file into an api.JobSpec, collecting every problem.
type decoder struct {
	filename string
	src      []byte
	vars     map[string]string
	ctx      *hcl.EvalContext
	problems []Problem
	// ranges holds where each field is: an attribute's range, a block's
	// type name; "" is the job block and "name" its label.
	ranges map[string]hcl.Range
	// failed holds the fields whose value could not be decoded.
	failed map[string]bool
}

func newDecoder(filename string, src []byte, vars map[string]string) *decoder {
	return &decoder{filename: filename, src: src, vars: vars, ctx: evalContext(vars), ranges: map[string]hcl.Range{}, failed: map[string]bool{}}
}

// job decodes the job block.
func (d *decoder) job(blk *hcl.Block) api.JobSpec {
	j := api.JobSpec{Name: blk.Labels[0]}
	d.ranges[""] = blk.TypeRange
	d.ranges["name"] = blk.LabelRanges[0]
	b, blocks := d.content("", blk.Body, jobSchema)
	if n, ok := b.integer("count"); ok {
		j.Count = &n
	}
	b.str("command", &j.Command)
	b.strings("args", &j.Args)
	b.stringMap("env", &j.Env)
	b.boolean("exclusive", &j.Exclusive)
	b.str("type", &j.Type)
	b.strings("ports", &j.Ports)
	if blk := blocks["check"]; blk != nil {
		j.Check = d.check(blk)
	}
	if blk := blocks["restart"]; blk != nil {
		j.Restart = d.restart(blk)
	}
	if blk := blocks["resources"]; blk != nil {
		j.Resources = d.resources(blk)
	}
	if blk := blocks["update"]; blk != nil {
		j.Update = d.update(blk)
	}
	return j
}

func (d *decoder) check(blk *hcl.Block) *api.Check {
	var c api.Check
	b, _ := d.content("check.", blk.Body, checkSchema)
	b.str("type", &c.Type)
	b.str("port", &c.Port)
	b.str("path", &c.Path)
	b.strings("command", &c.Command)
	b.duration("interval", &c.Interval)
	b.duration("timeout", &c.Timeout)
	if n, ok := b.integer("failures"); ok {
		c.Failures = n
	}
	b.duration("grace", &c.Grace)
	return &c
}

func (d *decoder) restart(blk *hcl.Block) *api.RestartPolicy {
	var r api.RestartPolicy
	b, _ := d.content("restart.", blk.Body, restartSchema)
	if n, ok := b.integer("attempts"); ok {
		r.Attempts = n
	}
	b.duration("delay", &r.Delay)
	b.duration("max_delay", &r.MaxDelay)
	return &r
}

func (d *decoder) resources(blk *hcl.Block) *api.Resources {
	var r api.Resources
	b, _ := d.content("resources.", blk.Body, resourcesSchema)
	if n, ok := b.integer("cpu_millicores"); ok {
		r.CPUMillicores = n
	}
	if n, ok := b.integer("memory_mb"); ok {
		r.MemoryMB = n
	}
	if n, ok := b.integer("pids"); ok {
		r.Pids = n
	}
	return &r
}

func (d *decoder) update(blk *hcl.Block) *api.UpdateStrategy {
	var u api.UpdateStrategy
	b, _ := d.content("update.", blk.Body, updateSchema)
	if n, ok := b.integer("max_parallel"); ok {
		u.MaxParallel = &n
	}
	b.duration("min_healthy_time", &u.MinHealthyTime)
	b.duration("healthy_deadline", &u.HealthyDeadline)
	b.boolean("auto_revert", &u.AutoRevert)
	b.str("order", &u.Order)
	return &u
}

// content reads a block's body with its schema; path prefixes its field
// names ("check."). It returns the attributes and the first block of each
// type.
func (d *decoder) content(path string, body hcl.Body, schema *hcl.BodySchema) (attrs, map[string]*hcl.Block) {
	c, diags := body.Content(schema)
	d.structural(path, schema, diags)
	blocks := map[string]*hcl.Block{}
	if c == nil {
		return attrs{d: d, path: path}, blocks
	}
	for name, a := range c.Attributes {
		d.ranges[path+name] = a.Range
	}
	for _, blk := range c.Blocks {
		field := path + blk.Type
		if blocks[blk.Type] != nil {
			d.add(field, blk.TypeRange, "at most one "+blk.Type+" block")
			continue
		}
		blocks[blk.Type] = blk
		d.ranges[field] = blk.TypeRange
	}
	return attrs{d: d, path: path, attrs: c.Attributes}, blocks
}

// attrs are the attributes of one block, decoded into Go values. Each
// method leaves dst alone when the attribute is absent, null or wrong.
type attrs struct {
	d     *decoder
	path  string
	attrs hcl.Attributes
}

// value evaluates an attribute and converts it to ty; want describes ty
// in a problem.
func (b attrs) value(name string, ty cty.Type, want string) (cty.Value, *hcl.Attribute, bool) {
	a := b.attrs[name]
	if a == nil {
		return cty.NilVal, nil, false
	}
	field := b.path + name
	if !b.d.checkVars(field, a.Expr) {
		b.d.failed[field] = true
		return cty.NilVal, a, false
	}
	v, diags := a.Expr.Value(b.d.ctx)
	if diags.HasErrors() {
		b.d.diags(field, diags)
		b.d.failed[field] = true
		return cty.NilVal, a, false
	}
	if v.IsNull() {
		return cty.NilVal, a, false
	}
	cv, err := convert.Convert(v, ty)
	switch {
	case err != nil || !cv.IsWhollyKnown():
		b.d.fail(field, a.Range, "want "+want+", not "+describe(v))
		return cty.NilVal, a, false
	case hasNull(cv):
		b.d.fail(field, a.Range, "want "+want+", not one holding null")
		return cty.NilVal, a, false
	}
	return cv, a, true
}

func (b attrs) str(name string, dst *string) {
	if v, _, ok := b.value(name, cty.String, "a string"); ok {
		*dst = v.AsString()
	}
}

func (b attrs) boolean(name string, dst *bool) {
	if v, _, ok := b.value(name, cty.Bool, "true or false"); ok {
		*dst = v.True()
	}
}

func (b attrs) strings(name string, dst *[]string) {
	v, _, ok := b.value(name, cty.List(cty.String), "a list of strings")
	if !ok {
		return
	}
	s := []string{}
	for _, e := range v.AsValueSlice() {
		s = append(s, e.AsString())
	}
	*dst = s
}

func (b attrs) stringMap(name string, dst *map[string]string) {
	v, _, ok := b.value(name, cty.Map(cty.String), "a map of strings")
	if !ok {
		return
	}
	m := map[string]string{}
	for k, e := range v.AsValueMap() {
		m[k] = e.AsString()
	}
	*dst = m
}

// integer returns a whole number attribute and whether it is set.
func (b attrs) integer(name string) (int, bool) {
	v, a, ok := b.value(name, cty.Number, "a whole number")
	if !ok {
		return 0, false
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact || int64(int(n)) != n {
		b.d.fail(b.path+name, a.Range, "want a whole number, not "+describe(v))
		return 0, false
	}
	return int(n), true
}

// duration reads a duration string with api.Duration's rules: Go's syntax,
// positive.
func (b attrs) duration(name string, dst *api.Duration) {
	v, a, ok := b.value(name, cty.String, `a duration such as "5s"`)
	if !ok {
		return
	}
	quoted, _ := json.Marshal(v.AsString())
	var dur api.Duration
	if err := dur.UnmarshalJSON(quoted); err != nil {
		b.d.fail(b.path+name, a.Range, err.Error())
		return
	}
	*dst = dur
}

// hasNull reports whether a converted list or map holds a null element.
func hasNull(v cty.Value) bool {
	if !v.CanIterateElements() {
		return false
	}
	for it := v.ElementIterator(); it.Next(); {
		if _, e := it.Element(); e.IsNull() {
			return true
		}
	}
	return false
}

// describe names a value in a problem: primitives as written, others by
// their kind.
func describe(v cty.Value) string {
	switch ty := v.Type(); {
	case v.IsNull():
		return "null"
	case !v.IsKnown():
		return "an unknown value"
	case ty == cty.String:
		return fmt.Sprintf("%q", v.AsString())
	case ty == cty.Number:
		return v.AsBigFloat().Text('g', -1)
	case ty == cty.Bool:
		return fmt.Sprint(v.True())
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		return "a list"
	case ty.IsMapType() || ty.IsObjectType():
		return "an object"
	}
	return v.Type().FriendlyName()
}

// fail records a problem with a field's value.
func (d *decoder) fail(field string, r hcl.Range, msg string) {
	d.add(field, r, msg)
	d.failed[field] = true
}
