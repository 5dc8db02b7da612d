// Package deploy holds the deployment examples (deploy/prometheus) and the
// test that checks them with promtool.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
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
	if !strings.Contains(out, "SUCCESS: 10 rules found") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	rules, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"NodeOffline", "RecoveryFailed", "HighResponseTime", "RecoveryQueueHigh", "EvictionsPaused", "ReplicaDown", "CertificateExpiring", "TargetUnreachable"} {
		if !strings.Contains(string(rules), "alert: "+name+"\n") {
			t.Errorf("no rule for %s", name)
		}
	}
	run(t, "prometheus", pt, "test", "rules", "alerts_test.yml")

	// The example points at a token file and TLS files that exist on a real
	// server only (promtool checks that they do): check a copy that names
	// temporary ones.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "mo-token")
	if err := os.WriteFile(tokenFile, []byte("example-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dir, "mo-tls")
	writeTLSFiles(t, tlsDir)
	cfg, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"/etc/prometheus/mo-token",
		// The replicas with a cli certificate, the agents with a server one.
		"ca_file: /etc/prometheus/mo-tls/ca.pem",
		"cert_file: /etc/prometheus/mo-tls/cli.pem",
		"key_file: /etc/prometheus/mo-tls/cli-key.pem",
		"server_name: " + tlsutil.RoleServer.Name(),
		"cert_file: /etc/prometheus/mo-tls/server.pem",
		"key_file: /etc/prometheus/mo-tls/server-key.pem",
		"server_name: " + tlsutil.RoleAgent.Name(),
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("prometheus.yml does not name %q", want)
		}
	}
	if n := strings.Count(string(cfg), "scheme: https"); n != 2 {
		t.Errorf("prometheus.yml has scheme: https %d times, want 2 (both jobs)", n)
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/prometheus/mo-token", tokenFile))
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/prometheus/mo-tls", tlsDir))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, dir, pt, "check", "config", "prometheus.yml")
}

// writeTLSFiles writes into dir what an operator copies to
// /etc/prometheus/mo-tls: the CA certificate, a cli pair (for the replicas)
// and a server pair (for the agents), made as `scheduler tls` makes them.
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caCert, caKey, err := tlsutil.NewCA(now, tlsutil.DefaultCALifetime)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caCert, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, role := range []tlsutil.Role{tlsutil.RoleCLI, tlsutil.RoleServer} {
		cert, key, err := tlsutil.NewCert(caCert, caKey, role, nil, nil, now, tlsutil.DefaultCertLifetime)
		if err != nil {
			t.Fatalf("%s certificate: %v", role, err)
		}
		name := string(role)
		if err := tlsutil.WritePair(filepath.Join(dir, name+".pem"), cert, filepath.Join(dir, name+"-key.pem"), key, false); err != nil {
			t.Fatalf("%s certificate: %v", role, err)
		}
	}
}
