// Package deploy holds the deployment examples (deploy/prometheus) and the
// test that checks them with promtool.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool returns the path of promtool. Without it the test is skipped on
// a developer's machine, but fails in CI (CI=true), whose .ci/run installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool is not installed, and CI=true: .ci/run should have installed it (apt-get install prometheus)")
	}
	t.Skip("SKIP: promtool not found on PATH, so the Prometheus rules are not checked; install it with `apt-get install prometheus` (Debian) to run this test")
	return ""
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// promtool accepts the alerting rules, their unit tests pass (each alert
// fires past the guide's threshold and resolves), and the scrape config
// example is a valid configuration.
func TestPrometheusRulesAndConfig(t *testing.T) {
	pt := promtool(t)
	out := run(t, "prometheus", pt, "check", "rules", "alerts.yml")
	if !strings.Contains(out, "SUCCESS: 7 rules found") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	rules, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"NodeOffline", "RecoveryFailed", "HighResponseTime", "RecoveryQueueHigh", "EvictionsPaused", "ReplicaDown"} {
		if !strings.Contains(string(rules), "alert: "+name+"\n") {
			t.Errorf("no rule for %s", name)
		}
	}
	run(t, "prometheus", pt, "test", "rules", "alerts_test.yml")

	// The example points at a token file that exists on a real server only:
	// check a copy that names a temporary one.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "mo-token")
	if err := os.WriteFile(tokenFile, []byte("example-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "/etc/prometheus/mo-token") {
		t.Fatal("prometheus.yml no longer names /etc/prometheus/mo-token")
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/prometheus/mo-token", tokenFile))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, pt, "check", "config", "prometheus.yml")
}
