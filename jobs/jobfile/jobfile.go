// Package jobfile reads job files: HCL (hashicorp/hcl/v2) or hcl's JSON
// syntax for the same schema, into the api.JobSpec that POST /jobs takes.
package jobfile

import (
	"bytes"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"

	"github.com/micro-orchestrator/mo/api"
)

// ParseFile reads and parses the job file at path; vars are the values of
// var.NAME in its expressions.
func ParseFile(path string, vars map[string]string) (api.JobSpec, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return api.JobSpec{}, err
	}
	return Parse(path, src, vars)
}

// Parse parses a job file's source; filename names it in errors and tells
// JSON (.json) from HCL. The spec is not normalized: fields left out stay
// empty. Its error is an *Error listing every problem found.
func Parse(filename string, src []byte, vars map[string]string) (api.JobSpec, error) {
	d := newDecoder(filename, src, vars)
	j := d.file()
	if err := d.err(); err != nil {
		return api.JobSpec{}, err
	}
	return j, nil
}

// isJSON tells a JSON job file: named .json, or starting with '{'.
func isJSON(filename string, src []byte) bool {
	if strings.HasSuffix(strings.ToLower(filename), ".json") {
		return true
	}
	src = bytes.TrimLeft(src, " \t\r\n")
	return len(src) > 0 && src[0] == '{'
}

// file decodes the whole file: one job block, validated.
func (d *decoder) file() api.JobSpec {
	var f *hcl.File
	var diags hcl.Diagnostics
	if isJSON(d.filename, d.src) {
		f, diags = hcljson.Parse(d.src, d.filename)
	} else {
		f, diags = hclsyntax.ParseConfig(d.src, d.filename, hcl.InitialPos)
	}
	if diags.HasErrors() {
		d.diags("", diags)
		return api.JobSpec{}
	}
	content, diags := f.Body.Content(fileSchema)
	if diags.HasErrors() {
		d.structural("", fileSchema, diags)
		return api.JobSpec{}
	}
	jobs := content.Blocks
	if len(jobs) == 0 {
		start := hcl.Range{Filename: d.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		d.add("job", start, `no job block: want one job "NAME" { ... }`)
		return api.JobSpec{}
	}
	for _, b := range jobs[1:] {
		d.add("job", b.TypeRange, "a second job block ("+b.Labels[0]+"): a file holds one job")
	}
	if len(jobs) > 1 {
		return api.JobSpec{}
	}
	j := d.job(jobs[0])
	d.validate(&j)
	return j
}
