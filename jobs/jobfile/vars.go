package jobfile

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// VarPrefix starts the environment variables that VarsFromEnv reads.
const VarPrefix = "MO_VAR_"

// VarsFromEnv returns the variables set as MO_VAR_<name>=value in environ (os.Environ()).
func VarsFromEnv(environ []string) map[string]string {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		name, isVar := strings.CutPrefix(k, VarPrefix)
		if ok && isVar && name != "" {
			vars[name] = v
		}
	}
	return vars
}

// evalContext makes vars the string values of var.NAME.
func evalContext(vars map[string]string) *hcl.EvalContext {
	vals := map[string]cty.Value{}
	for k, v := range vars {
		vals[k] = cty.StringVal(v)
	}
	return &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vals)}}
}

// checkVars reports every reference of expr that is not to a variable in
// vars, and whether there was none.
func (d *decoder) checkVars(field string, expr hcl.Expression) bool {
	ok := true
	for _, t := range expr.Variables() {
		if msg := d.badReference(t); msg != "" {
			d.add(field, t.SourceRange(), msg)
			ok = false
		}
	}
	return ok
}

// badReference says what is wrong with a reference, or returns "".
func (d *decoder) badReference(t hcl.Traversal) string {
	if root := t.RootName(); root != "var" {
		return "unknown name " + root + ": only var.NAME may be referenced"
	}
	if len(t) < 2 {
		return "var needs a variable name: var.NAME"
	}
	var name string
	switch step := t[1].(type) {
	case hcl.TraverseAttr:
		name = step.Name
	case hcl.TraverseIndex:
		if step.Key.Type() != cty.String || !step.Key.IsKnown() || step.Key.IsNull() {
			return "var needs a variable name: var.NAME"
		}
		name = step.Key.AsString()
	default:
		return "var needs a variable name: var.NAME"
	}
	if _, ok := d.vars[name]; !ok {
		return "unknown variable var." + name
	}
	return ""
}
