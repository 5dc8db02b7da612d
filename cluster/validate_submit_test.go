package cluster

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/micro-orchestrator/mo/api"
)

// A submission the agent would refuse to start is refused at the API.
func TestValidateSubmitRefusesWhatTheAgentWould(t *testing.T) {
	bad := map[string]api.SubmitRequest{
		"control characters in the name": {Name: "evil\n\x1b[31mRED", Command: "true"},
		"DEL in the name":                {Name: "a\x7f", Command: "true"},
		"C1 in the name":                 {Name: "a\u009b", Command: "true"},
		"NUL in an env value":            {Name: "x", Command: "true", Env: map[string]string{"A": "1\x002"}},
		"NUL in an env name":             {Name: "x", Command: "true", Env: map[string]string{"A\x00": "1"}},
		"= in an env name":               {Name: "x", Command: "true", Env: map[string]string{"A=B": "1"}},
		"empty env name":                 {Name: "x", Command: "true", Env: map[string]string{"": "1"}},
		"NUL in the command":             {Name: "x", Command: "tr\x00ue"},
		"NUL in an argument":             {Name: "x", Command: "echo", Args: []string{"a\x00b"}},
	}
	for what, s := range bad {
		if _, err := validateSubmit(&s); err == nil {
			t.Errorf("%s: accepted", what)
		}
		if err := api.ValidateProcess(s.Command, s.Args, s.Env); err == nil && what[:3] == "NUL" {
			t.Errorf("%s: the agent's rule accepts it", what)
		}
	}
	for _, name := range []string{"web", "日本語", "🚀 rocket", "  padded  "} {
		s := api.SubmitRequest{Name: name, Command: "sleep", Args: []string{"1"}, Env: map[string]string{"A": "multi\nline"}}
		if _, err := validateSubmit(&s); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// submitBody posts body to handleSubmit on a replica that does not lead:
// bad input is refused before leadership matters (400), good input gets as
// far as the missing leader (503).
func submitBody(t *testing.T, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/workloads", strings.NewReader(body))
	(&Replica{}).handleSubmit(rec, req, nil)
	var e api.Error
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, e.Error
}

// Every bad lifecycle spec is a 400 with a message that names the problem,
// and creates nothing (it never reaches raft: a non-leader answers 503 to
// good input only).
func TestSubmitRefusesBadSpecs(t *testing.T) {
	const base = `"name":"x","command":"sleep","args":["60"]`
	bad := map[string]struct{ body, want string }{
		"unknown type":            {`{` + base + `,"type":"cron"}`, `type "cron": want service or batch`},
		"unknown check type":      {`{` + base + `,"ports":["http"],"check":{"type":"grpc","port":"http"}}`, `unknown type "grpc"`},
		"check without a type":    {`{` + base + `,"check":{"port":"http"}}`, "type is required"},
		"check port not in ports": {`{` + base + `,"ports":["http"],"check":{"type":"http","port":"admin"}}`, `port "admin" is not one of ports`},
		"tcp check without port":  {`{` + base + `,"check":{"type":"tcp"}}`, "needs port"},
		"exec without command":    {`{` + base + `,"check":{"type":"exec"}}`, "exec check needs a command"},
		"exec with empty command": {`{` + base + `,"check":{"type":"exec","command":[" "]}}`, "exec check needs a command"},
		"duration unparsable":     {`{` + base + `,"check":{"type":"exec","command":["true"],"interval":"soon"}}`, `check.interval: duration "soon"`},
		"duration zero":           {`{` + base + `,"check":{"type":"exec","command":["true"],"timeout":"0s"}}`, `check.timeout: duration "0s": must be positive`},
		"duration negative":       {`{` + base + `,"restart":{"attempts":1,"delay":"-1s"}}`, `restart.delay: duration "-1s": must be positive`},
		"duration not a string":   {`{` + base + `,"restart":{"attempts":1,"max_delay":5}}`, "restart.max_delay: a duration is a string"},
		"grace too long":          {`{` + base + `,"check":{"type":"exec","command":["true"],"grace":"100h"}}`, "check.grace 100h0m0s: at most 24h"},
		"max delay below delay":   {`{` + base + `,"restart":{"attempts":1,"delay":"10s","max_delay":"1s"}}`, "shorter than restart.delay"},
		"negative restarts":       {`{` + base + `,"restart":{"attempts":-1}}`, "restart.attempts -1"},
		"negative cpu":            {`{` + base + `,"resources":{"cpu_millicores":-5}}`, "resources.cpu_millicores -5: want 0 to"},
		"absurd memory":           {`{` + base + `,"resources":{"memory_mb":99999999999}}`, "resources.memory_mb 99999999999: want 0 to"},
		"absurd pids":             {`{` + base + `,"resources":{"pids":100000000}}`, "resources.pids"},
		"cpu not a number":        {`{` + base + `,"resources":{"cpu_millicores":"lots"}}`, `field "resources.cpu_millicores" must be of type int`},
		"upper case port label":   {`{` + base + `,"ports":["HTTP"]}`, `port label "HTTP": use 1 to 32 of a-z, 0-9 and _`},
		"dash in port label":      {`{` + base + `,"ports":["my-port"]}`, `port label "my-port"`},
		"empty port label":        {`{` + base + `,"ports":[""]}`, `port label ""`},
		"port label twice":        {`{` + base + `,"ports":["http","http"]}`, "listed twice"},
		"failures out of range":   {`{` + base + `,"check":{"type":"exec","command":["true"],"failures":1000}}`, "check.failures 1000"},
		"unknown spec field":      {`{` + base + `,"check":{"type":"exec","command":["true"],"retries":3}}`, "unknown field"},
		"several problems":        {`{` + base + `,"type":"x","ports":["A"]}`, `type "x": want service or batch; port label "A"`},
	}
	for what, c := range bad {
		code, msg := submitBody(t, c.body)
		if code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 400 containing %q", what, code, msg, c.want)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: a multi-line message %q", what, msg)
		}
	}
	good := []string{
		`{` + base + `}`,
		`{` + base + `,"type":"batch"}`,
		`{` + base + `,"ports":["http","metrics_2"],"check":{"type":"http","port":"http","path":"/healthz","interval":"2s","timeout":"500ms","failures":2,"grace":"1m"},` +
			`"restart":{"attempts":3,"delay":"1s","max_delay":"30s"},"resources":{"cpu_millicores":500,"memory_mb":256,"pids":64}}`,
		`{` + base + `,"check":{"type":"exec","command":["sh","-c","true"],"interval":null}}`,
		`{` + base + `,"resources":{"cpu_millicores":1048576}}`, // larger than any node: accepted, waits
	}
	for _, body := range good {
		if code, msg := submitBody(t, body); code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d %q, want it past validation", body, code, msg)
		}
	}
}

// A valid spec is stored with its defaults filled in.
func TestValidateSubmitNormalizesTheSpec(t *testing.T) {
	s := api.SubmitRequest{Name: "x", Command: "sleep", Spec: api.Spec{Ports: []string{"http"}, Check: &api.Check{Type: api.CheckHTTP, Port: "http"},
		Resources: &api.Resources{}}}
	if _, err := validateSubmit(&s); err != nil {
		t.Fatal(err)
	}
	c := s.Spec.Check
	if s.Spec.Type != api.TypeService || c.Path != "/" || c.Interval.D() != api.DefaultCheckInterval || c.Failures != api.DefaultCheckFailures ||
		s.Spec.Restart == nil || s.Spec.Restart.Attempts != api.DefaultCheckedRestarts || s.Spec.Resources != nil {
		t.Fatalf("not normalized: %+v %+v %+v", s.Spec, c, s.Spec.Restart)
	}
}

func TestValidateCapacity(t *testing.T) {
	for _, c := range []*api.Capacity{nil, {}, {CPUMillicores: 4000, MemoryMB: 7938}} {
		if err := validateCapacity(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range []*api.Capacity{{CPUMillicores: -1}, {MemoryMB: -1}, {CPUMillicores: api.MaxCPUMillicores + 1}} {
		if err := validateCapacity(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestShownFillsHealthAndType(t *testing.T) {
	w := shown(&api.Workload{ID: "w"})
	if w.Health != api.HealthUnknown || w.Spec.Type != api.TypeService {
		t.Fatalf("%+v", w)
	}
	w = shown(&api.Workload{ID: "w", Health: api.HealthHealthy, Spec: api.Spec{Type: api.TypeBatch}})
	if w.Health != api.HealthHealthy || w.Spec.Type != api.TypeBatch {
		t.Fatalf("%+v", w)
	}
}
