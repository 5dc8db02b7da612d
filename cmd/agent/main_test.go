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
