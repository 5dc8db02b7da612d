package jobfile

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// designExample is the job file of DESIGN.md's section Jobs.
const designExample = `job "web" {
  count   = 3
  command = "python3"
  args    = ["-m", "http.server", "--bind", "127.0.0.1"]
  ports   = ["http"]
  env     = { GREETING = "hello" }
  check {
    type     = "http"
    port     = "http"
    path     = "/"
    interval = "2s"
    timeout  = "1s"
  }
  resources {
    cpu_millicores = 100
    memory_mb      = 64
  }
  update {
    max_parallel     = 1
    min_healthy_time = "3s"
    healthy_deadline = "1m"
    auto_revert      = true
  }
}
`

// designExampleJSON is the same job in hcl's JSON syntax.
const designExampleJSON = `{
  "job": {
    "web": {
      "count": 3,
      "command": "python3",
      "args": ["-m", "http.server", "--bind", "127.0.0.1"],
      "ports": ["http"],
      "env": {"GREETING": "hello"},
      "check": {"type": "http", "port": "http", "path": "/", "interval": "2s", "timeout": "1s"},
      "resources": {"cpu_millicores": 100, "memory_mb": 64},
      "update": {"max_parallel": 1, "min_healthy_time": "3s", "healthy_deadline": "1m", "auto_revert": true}
    }
  }
}
`

func intp(n int) *int { return &n }

func dur(d time.Duration) api.Duration { return api.Duration(d) }

func designSpec() api.JobSpec {
	return api.JobSpec{
		Name:    "web",
		Count:   intp(3),
		Command: "python3",
		Args:    []string{"-m", "http.server", "--bind", "127.0.0.1"},
		Env:     map[string]string{"GREETING": "hello"},
		Spec: api.Spec{
			Ports:     []string{"http"},
			Check:     &api.Check{Type: "http", Port: "http", Path: "/", Interval: dur(2 * time.Second), Timeout: dur(time.Second)},
			Resources: &api.Resources{CPUMillicores: 100, MemoryMB: 64},
		},
		Update: &api.UpdateStrategy{MaxParallel: intp(1), MinHealthyTime: dur(3 * time.Second), HealthyDeadline: dur(time.Minute), AutoRevert: true},
	}
}

func mustParse(t *testing.T, filename, src string, vars map[string]string) api.JobSpec {
	t.Helper()
	j, err := Parse(filename, []byte(src), vars)
	if err != nil {
		t.Fatalf("Parse(%s): %v", filename, err)
	}
	return j
}

func TestParseDesignExample(t *testing.T) {
	if got, want := mustParse(t, "web.hcl", designExample, nil), designSpec(); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestHCLAndJSONAgree(t *testing.T) {
	hcl := mustParse(t, "web.hcl", designExample, nil)
	for _, name := range []string{"web.json", "web"} { // by name, and by the leading '{'
		if j := mustParse(t, name, designExampleJSON, nil); !reflect.DeepEqual(hcl, j) {
			t.Errorf("%s: JSON gives %+v, HCL %+v", name, j, hcl)
		}
	}
}

// TestNotNormalized checks that fields left out stay empty: the server
// fills the defaults.
func TestNotNormalized(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"min.hcl", `job "batch1" { command = "true" }`},
		{"min.json", `{"job": {"batch1": {"command": "true"}}}`},
	} {
		j := mustParse(t, tc.name, tc.src, nil)
		if want := (api.JobSpec{Name: "batch1", Command: "true"}); !reflect.DeepEqual(j, want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, j, want)
		}
	}
	// Explicit values that equal the defaults are kept as given.
	j := mustParse(t, "zero.hcl", `job "z" {
  command   = "true"
  count     = 0
  type      = "batch"
  exclusive = true
  restart {
    attempts = 0
  }
  resources {}
}`, nil)
	if j.Count == nil || *j.Count != 0 || j.Type != api.TypeBatch || !j.Exclusive || j.Restart == nil || j.Resources == nil || j.Update != nil {
		t.Errorf("got %+v", j)
	}
}

// TestDeployExamples parses deploy/jobs/web.hcl and web.json: the same job.
func TestDeployExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "jobs")
	h, err := ParseFile(filepath.Join(dir, "web.hcl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseFile(filepath.Join(dir, "web.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, j) {
		t.Errorf("web.hcl gives %+v\nweb.json gives %+v", h, j)
	}
	want := api.JobSpec{
		Name:    "web",
		Count:   intp(3),
		Command: "sh",
		Args:    []string{"-c", `exec python3 -m http.server "$MO_PORT_HTTP" --bind 127.0.0.1`},
		Spec: api.Spec{
			Ports: []string{"http"},
			Check: &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/", Interval: dur(time.Second)},
		},
		Update: &api.UpdateStrategy{MaxParallel: intp(1), MinHealthyTime: dur(3 * time.Second), HealthyDeadline: dur(time.Minute), AutoRevert: true},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("web.hcl gives %+v\nwant %+v", h, want)
	}
	if port := api.PortEnv(h.Ports[0]); port != "MO_PORT_HTTP" {
		t.Errorf("the port label gives %s, not the MO_PORT_HTTP of args", port)
	}
}

func TestParseFileMissing(t *testing.T) {
	if _, err := ParseFile(filepath.Join(t.TempDir(), "none.hcl"), nil); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestErrorJSON(t *testing.T) {
	_, err := Parse("web.hcl", []byte(`job "web" { count = -1 }`), nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want *Error", err, err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"problems":[{"file":"web.hcl","line":1,"column":1,"field":"command","message":"command is required"},` +
		`{"file":"web.hcl","line":1,"column":13,"field":"count","message":"-1: want 0 to 1000"}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}
