package jobfile

import (
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/micro-orchestrator/mo/api"
)

// validate adds the problems of api.JobSpec.Validate, each at the range of
// its field, of the field's block, or of the job. A field whose value could
// not be decoded is not reported again.
func (d *decoder) validate(j *api.JobSpec) {
	for _, e := range j.Validate() {
		if !d.failed[e.Field] {
			d.add(e.Field, d.rangeOf(e.Field), trimField(e.Field, e.Message))
		}
	}
}

// rangeOf returns where a field is: its attribute, or the nearest block
// holding it, or the job block.
func (d *decoder) rangeOf(field string) hcl.Range {
	for f := field; ; {
		if r, ok := d.ranges[f]; ok {
			return r
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			return d.ranges[""]
		}
		f = f[:i]
	}
}

// trimField drops the field name from the start of a message that repeats
// it ("check.interval 50ms: at least 100ms", "ports: at most 16 labels"),
// since the problem names it already.
func trimField(field, msg string) string {
	if rest, ok := strings.CutPrefix(msg, field+": "); ok {
		return rest
	}
	if rest, ok := strings.CutPrefix(msg, field+" "); ok && rest != "" && strings.ContainsRune(`0123456789-"`, rune(rest[0])) {
		return rest
	}
	return msg
}
