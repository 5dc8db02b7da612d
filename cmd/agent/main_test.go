package main

import (
	"bytes"
	"strings"
	"testing"
)

// agent -h never prints the cluster token taken from the environment.
func TestHelpNeverPrintsTheToken(t *testing.T) {
	const secret = "s3cret-token-value-4711"
	getenv := func(k string) string {
		if k == "SCHEDULER_TOKEN" {
			return secret
		}
		return ""
	}
	var out bytes.Buffer
	if code := run([]string{"-h"}, getenv, &out); code != exitOK {
		t.Fatalf("agent -h: exit %d", code)
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("agent -h printed the token:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "(default $SCHEDULER_TOKEN)") {
		t.Fatalf("agent -h does not say where the token comes from:\n%s", out.String())
	}
}

// A bad --port-range is a usage error that says what is wrong.
func TestBadPortRangeIsAUsageError(t *testing.T) {
	for _, v := range []string{"30000-20000", "20000", "1-70000"} {
		var out bytes.Buffer
		code := run([]string{"--id", "n1", "--data", t.TempDir(), "--insecure", "--port-range", v}, func(string) string { return "" }, &out)
		if code != exitUsage || !strings.Contains(out.String(), "port range") {
			t.Errorf("--port-range %s: exit %d\n%s", v, code, out.String())
		}
	}
}

// The restart and drain flags are described, and bad values are usage
// errors.
func TestRestartFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, func(string) string { return "" }, &out); code != exitOK {
		t.Fatalf("agent -h: exit %d", code)
	}
	for _, want := range []string{"-restart-grace", "(default 10s)", "-drain-on-shutdown", "-drain-deadline", "(default 1h0m0s)", "KillMode=process"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("agent -h does not mention %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{{"--restart-grace", "-1s"}, {"--restart-grace", "2h"}, {"--drain-deadline", "0s"}} {
		var out bytes.Buffer
		code := run(append([]string{"--id", "n1", "--data", t.TempDir(), "--insecure"}, args...), func(string) string { return "" }, &out)
		if code != exitUsage || !strings.Contains(out.String(), strings.TrimPrefix(args[0], "-")) {
			t.Errorf("%v: exit %d\n%s", args, code, out.String())
		}
	}
}
