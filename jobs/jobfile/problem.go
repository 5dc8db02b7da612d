package jobfile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Problem is one thing wrong in a job file, at a line and column (from 1)
// and about a field such as "update.max_parallel" (empty for a syntax
// error).
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String formats the problem as file:line,column: field: message.
func (p Problem) String() string {
	s := fmt.Sprintf("%s:%d,%d: ", p.File, p.Line, p.Column)
	if p.Field != "" {
		s += p.Field + ": "
	}
	return s + p.Message
}

// Error is what Parse returns for a bad job file: its problems, in the
// order of their positions.
type Error struct {
	Problems []Problem `json:"problems"`
}

// Error implements error: one problem a line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// err returns the problems found as an *Error, or nil.
func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	ps := slices.Clone(d.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{Problems: slices.Compact(ps)} // hcl may report a problem twice
}

// add records a problem about field at the start of r.
func (d *decoder) add(field string, r hcl.Range, msg string) {
	file := r.Filename
	if file == "" {
		file = d.filename
	}
	d.problems = append(d.problems, Problem{File: file, Line: r.Start.Line, Column: r.Start.Column, Field: field, Message: msg})
}

// diags records hcl's errors about field.
func (d *decoder) diags(field string, diags hcl.Diagnostics) {
	for _, diag := range diags {
		if diag.Severity == hcl.DiagError {
			d.add(field, d.where(diag), message(diag))
		}
	}
}

// structural records hcl's errors about the shape of a body read with
// schema (unsupported arguments and blocks, labels): the field is the name
// the error is about, or the block type whose labels are wrong ("Missing
// name for job"), prefixed with path; or else the block itself.
func (d *decoder) structural(path string, schema *hcl.BodySchema, diags hcl.Diagnostics) {
	for _, diag := range diags {
		if diag.Severity != hcl.DiagError {
			continue
		}
		field := strings.TrimSuffix(path, ".")
		if name := d.subjectName(diag); name != "" {
			field = path + name
		} else if _, ty, ok := strings.Cut(diag.Summary, " for "); ok && hasBlock(schema, ty) {
			field = path + ty
		}
		d.add(field, d.where(diag), message(diag))
	}
}

// hasBlock reports whether schema has blocks of type ty.
func hasBlock(schema *hcl.BodySchema, ty string) bool {
	return slices.ContainsFunc(schema.Blocks, func(b hcl.BlockHeaderSchema) bool { return b.Type == ty })
}

// subjectName returns the name that a diagnostic's subject spells, when
// its detail quotes it ("An argument named "foo" is not expected here").
func (d *decoder) subjectName(diag *hcl.Diagnostic) string {
	s := diag.Subject
	if s == nil || s.Start.Byte < 0 || s.End.Byte > len(d.src) || s.Start.Byte >= s.End.Byte {
		return ""
	}
	name := strings.Trim(string(d.src[s.Start.Byte:s.End.Byte]), `"`)
	if name == "" || !strings.Contains(diag.Detail, `"`+name+`"`) {
		return ""
	}
	return name
}

// where is a diagnostic's position: its subject, else its context, else
// the start of the file.
func (d *decoder) where(diag *hcl.Diagnostic) hcl.Range {
	switch {
	case diag.Subject != nil:
		return *diag.Subject
	case diag.Context != nil:
		return *diag.Context
	}
	return hcl.Range{Filename: d.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// message is a diagnostic's summary and detail.
func message(diag *hcl.Diagnostic) string {
	if diag.Detail == "" {
		return diag.Summary
	}
	return diag.Summary + "; " + diag.Detail
}
