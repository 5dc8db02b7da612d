package jobfile

import "github.com/hashicorp/hcl/v2"

// The schema of a job file: one job "NAME" block holding a job's fields
// and at most one of each nested block.
var (
	fileSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "job", LabelNames: []string{"name"}}},
	}
	jobSchema = &hcl.BodySchema{
		Attributes: attributes("count", "command", "args", "env", "exclusive", "type", "ports"),
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "check"}, {Type: "restart"}, {Type: "resources"}, {Type: "update"},
		},
	}
	checkSchema = &hcl.BodySchema{
		Attributes: attributes("type", "port", "path", "command", "interval", "timeout", "failures", "grace"),
	}
	restartSchema = &hcl.BodySchema{
		Attributes: attributes("attempts", "delay", "max_delay"),
	}
	resourcesSchema = &hcl.BodySchema{
		Attributes: attributes("cpu_millicores", "memory_mb", "pids"),
	}
	updateSchema = &hcl.BodySchema{
		Attributes: attributes("max_parallel", "min_healthy_time", "healthy_deadline", "auto_revert", "order"),
	}
)

// attributes lists optional attributes: what is required is left to
// api.JobSpec.Validate.
func attributes(names ...string) []hcl.AttributeSchema {
	s := make([]hcl.AttributeSchema, len(names))
	for i, n := range names {
		s[i] = hcl.AttributeSchema{Name: n}
	}
	return s
}
