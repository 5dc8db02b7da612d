// Package jobfile reads job files: HCL (hashicorp/hcl/v2) or hcl's JSON
// syntax for the same schema, into the api.JobSpec that POST /jobs takes.
package jobfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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
// JSON (.json) from HCL.
func Parse(filename string, src []byte, vars map[string]string) (api.JobSpec, error) {
	// Placeholder until the HCL decoder lands: JSON only.
	var doc struct {
		Job map[string]api.JobSpec `json:"job"`
	}
	if err := json.Unmarshal(src, &doc); err != nil {
		return api.JobSpec{}, fmt.Errorf("%s: %v", filename, err)
	}
	if len(doc.Job) != 1 {
		return api.JobSpec{}, errors.New(filename + ": want exactly one job")
	}
	for name, j := range doc.Job {
		j.Name = name
		return j, nil
	}
	return api.JobSpec{}, nil
}
