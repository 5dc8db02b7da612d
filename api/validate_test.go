package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"web", "Ünïcödé", "日本語の名前", "rocket 🚀", "a-b_c.d", strings.Repeat("x", MaxNameLen)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "evil\n\x1b[31mRED", "tab\there", "nul\x00", "del\x7f", "c1\u0085", "csi\u009b31m", "line\u2028sep", "bad\xffutf8", strings.Repeat("x", MaxNameLen+1)}
	for _, n := range bad {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", n)
		}
	}
	err := ValidateName("evil\n\x1b[31mRED")
	if err == nil || !strings.Contains(err.Error(), "control character") || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("error %q should name the control character, escaped", err)
	}
}

func TestValidateProcess(t *testing.T) {
	ok := []struct {
		cmd  string
		args []string
		env  map[string]string
	}{
		{"sleep", []string{"1"}, nil},
		{"sh", []string{"-c", "echo a\necho b"}, map[string]string{"A": "x=y", "B": "", "C": "tab\tand\nnewline"}},
	}
	for _, c := range ok {
		if err := ValidateProcess(c.cmd, c.args, c.env); err != nil {
			t.Errorf("ValidateProcess(%q, %q, %v) = %v", c.cmd, c.args, c.env, err)
		}
	}
	bad := []struct {
		name string
		cmd  string
		args []string
		env  map[string]string
	}{
		{"no command", "", nil, nil},
		{"blank command", "  ", nil, nil},
		{"NUL in command", "sl\x00eep", nil, nil},
		{"NUL in an arg", "echo", []string{"a", "b\x00c"}, nil},
		{"NUL in an env value", "true", nil, map[string]string{"A": "x\x00y"}},
		{"NUL in an env name", "true", nil, map[string]string{"A\x00B": "x"}},
		{"= in an env name", "true", nil, map[string]string{"A=B": "x"}},
		{"empty env name", "true", nil, map[string]string{"": "x"}},
	}
	for _, c := range bad {
		if err := ValidateProcess(c.cmd, c.args, c.env); err == nil {
			t.Errorf("%s: ValidateProcess = nil, want an error", c.name)
		}
	}
}

func TestJSONPathDropsEmbeddedGoNames(t *testing.T) {
	for in, want := range map[string]string{
		"Spec.resources.cpu_millicores": "resources.cpu_millicores",
		"count":                         "count",
		"check.interval":                "check.interval",
		"Spec":                          "Spec",
	} {
		if got := jsonPath(in); got != want {
			t.Errorf("jsonPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDurationNullIsAbsent(t *testing.T) {
	var c Check
	if err := json.Unmarshal([]byte(`{"type":"tcp","interval":null}`), &c); err != nil || c.Interval != 0 {
		t.Fatalf("%v %v", err, c.Interval)
	}
}
