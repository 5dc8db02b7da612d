package jobfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestVars(t *testing.T) {
	vars := map[string]string{"cmd": "python3", "n": "2", "port": "http", "greeting": "hi"}
	src := `job "web" {
  command = var.cmd
  count   = var.n
  args    = ["-m", "http.server", "${var.port}-${var.n}"]
  env     = { GREETING = "${var.greeting}!", PORT = var["port"] }
}`
	j := mustParse(t, "web.hcl", src, vars)
	if j.Command != "python3" || j.Count == nil || *j.Count != 2 ||
		!reflect.DeepEqual(j.Args, []string{"-m", "http.server", "http-2"}) ||
		!reflect.DeepEqual(j.Env, map[string]string{"GREETING": "hi!", "PORT": "http"}) {
		t.Errorf("got %+v", j)
	}
	jsrc := `{"job": {"web": {"command": "${var.cmd}", "count": "${var.n}", "args": ["-m", "http.server", "${var.port}-${var.n}"],
  "env": {"GREETING": "${var.greeting}!", "PORT": "${var.port}"}}}}`
	if jj := mustParse(t, "web.json", jsrc, vars); !reflect.DeepEqual(j, jj) {
		t.Errorf("JSON gives %+v, HCL %+v", jj, j)
	}
}

func TestUnknownVariable(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"web.hcl", "job \"web\" {\n  command = \"x\"\n  type = var.kind\n}", "web.hcl:3,10: type: unknown variable var.kind"},
		{"web.hcl", "job \"web\" {\n  command = \"${var.cmd}\"\n}", "web.hcl:2,16: command: unknown variable var.cmd"},
		{"web.hcl", "job \"web\" {\n  command = cmd\n}", "web.hcl:2,13: command: unknown name cmd: only var.NAME may be referenced"},
		{"web.hcl", "job \"web\" {\n  command = var\n}", "web.hcl:2,13: command: var needs a variable name"},
		{"web.json", "{\"job\": {\"web\": {\n  \"command\": \"${var.cmd}\"\n}}}", "web.json:2,17: command: unknown variable var.cmd"},
	} {
		_, err := Parse(tc.name, []byte(tc.src), map[string]string{"other": "x"})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got error %v, want one starting %q", tc.src, err, tc.want)
		}
	}
}

func TestVarsFromEnv(t *testing.T) {
	got := VarsFromEnv([]string{
		"PATH=/bin",
		"MO_VAR_region=eu-west",
		"MO_VAR_empty=",
		"MO_VAR_eq=a=b",
		"MO_VAR_=nameless",
		"MO_VAR_noeq",
		"XMO_VAR_x=1",
		"MO_VAR_region=eu-north", // the last one wins, as in exec.Cmd.Env
	})
	want := map[string]string{"region": "eu-north", "empty": "", "eq": "a=b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := VarsFromEnv(nil); got == nil || len(got) != 0 {
		t.Errorf("VarsFromEnv(nil) = %#v, want an empty map", got)
	}
}
