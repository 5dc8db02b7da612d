package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// runTLSCmd runs scheduler tls ARGS in-process.
func runTLSCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	stdout, stderr = capture(t, func() { code = runTLS(args) })
	return code, stdout, stderr
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSCACreateAndCertCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	code, out, errOut := runTLSCmd(t, "ca", "create", "--dir", dir)
	if code != exitOK {
		t.Fatalf("ca create: exit %d, %s", code, errOut)
	}
	caPath, caKeyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	for _, want := range []string{"wrote " + caPath + " ", "wrote " + caKeyPath + " ", "expires "} {
		if !strings.Contains(out, want) {
			t.Errorf("ca create output lacks %q:\n%s", want, out)
		}
	}
	ca := readCert(t, caPath)
	if !ca.IsCA {
		t.Fatal("ca.pem is not a CA")
	}
	if d := ca.NotAfter.Sub(time.Now()); d < tlsutil.DefaultCALifetime-time.Hour || d > tlsutil.DefaultCALifetime {
		t.Fatalf("CA valid for %v", d)
	}
	if !strings.Contains(out, "expires "+ca.NotAfter.UTC().Format(time.RFC3339)) {
		t.Errorf("ca create output lacks the expiry:\n%s", out)
	}
	if fi, err := os.Stat(caKeyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v %v", fi, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	for _, role := range tlsutil.Roles {
		code, out, errOut := runTLSCmd(t, "cert", "create", "--role", string(role), "--dir", dir,
			"--ip", "10.0.0.5,fd00::1", "--ip", "192.168.1.9", "--dns", "n1.example.com", "--dns", "n2.example.com,n3.example.com", "--days", "30")
		if code != exitOK {
			t.Fatalf("cert create %s: exit %d, %s", role, code, errOut)
		}
		certPath := filepath.Join(dir, string(role)+".pem")
		keyPath := filepath.Join(dir, string(role)+"-key.pem")
		c := readCert(t, certPath)
		if got := tlsutil.RoleOf(c); got != role {
			t.Fatalf("%s: RoleOf = %q", certPath, got)
		}
		wantNames := []string{role.Name(), "localhost", "n1.example.com", "n2.example.com", "n3.example.com"}
		if !slices.Equal(c.DNSNames, wantNames) {
			t.Fatalf("%s: DNS names %q", certPath, c.DNSNames)
		}
		if len(c.IPAddresses) != 5 || c.IPAddresses[2].String() != "10.0.0.5" || c.IPAddresses[4].String() != "192.168.1.9" {
			t.Fatalf("%s: IPs %v", certPath, c.IPAddresses)
		}
		if d := c.NotAfter.Sub(time.Now()); d < 30*24*time.Hour-time.Hour || d > 30*24*time.Hour {
			t.Fatalf("%s valid for %v", certPath, d)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: role.Name(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("%s does not verify: %v", certPath, err)
		}
		if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", keyPath, fi, err)
		}
		for _, want := range []string{
			"wrote " + certPath + " ", "wrote " + keyPath + " ",
			"expires " + c.NotAfter.UTC().Format(time.RFC3339) + "\n",
			"DNS names: " + strings.Join(wantNames, ", ") + "\n",
			"IPs: 127.0.0.1, ::1, 10.0.0.5, fd00::1, 192.168.1.9\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("cert create %s output lacks %q:\n%s", role, want, out)
			}
		}
	}

	// --ca and --ca-key name the CA when it is elsewhere; a certificate
	// asked to outlive it ends with it, and the output says so.
	other := t.TempDir()
	code, out, errOut = runTLSCmd(t, "cert", "create", "--role", "cli", "--dir", other, "--ca", caPath, "--ca-key", caKeyPath, "--days", "36500")
	if code != exitOK {
		t.Fatalf("cert create with --ca: exit %d, %s", code, errOut)
	}
	c := readCert(t, filepath.Join(other, "cli.pem"))
	if !c.NotAfter.Equal(ca.NotAfter) || !strings.Contains(out, "capped at the CA's expiry") {
		t.Fatalf("NotAfter %v, CA's %v; output:\n%s", c.NotAfter, ca.NotAfter, out)
	}
}

// Existing files are kept unless --force, for the CA and for a certificate.
func TestTLSCreateRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runTLSCmd(t, "ca", "create", "--dir", dir, "--days", "10"); code != exitOK {
		t.Fatal(errOut)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	code, _, errOut := runTLSCmd(t, "ca", "create", "--dir", dir)
	if code != exitFail || !strings.Contains(errOut, "scheduler tls ca create: "+filepath.Join(dir, "ca.pem")+" exists; pass --force") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(b) != string(caBefore) {
		t.Fatal("ca.pem changed without --force")
	}

	if code, _, errOut := runTLSCmd(t, "cert", "create", "--role", "agent", "--dir", dir); code != exitOK {
		t.Fatal(errOut)
	}
	certBefore, _ := os.ReadFile(filepath.Join(dir, "agent.pem"))
	if err := os.Remove(filepath.Join(dir, "agent.pem")); err != nil {
		t.Fatal(err)
	}
	// Only the key is left: still refused, and the certificate is not written.
	code, _, errOut = runTLSCmd(t, "cert", "create", "--role", "agent", "--dir", dir)
	if code != exitFail || !strings.Contains(errOut, "agent-key.pem exists; pass --force") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.pem")); !os.IsNotExist(err) {
		t.Fatalf("agent.pem written though its key exists: %v", err)
	}
	code, _, errOut = runTLSCmd(t, "cert", "create", "--role", "agent", "--dir", dir, "--force")
	if code != exitOK {
		t.Fatalf("--force: exit %d, %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "agent.pem")); len(b) == 0 || string(b) == string(certBefore) {
		t.Fatal("--force did not write a new certificate")
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent-key.pem")); err != nil {
		t.Fatalf("after --force: %v", err)
	}

	code, _, errOut = runTLSCmd(t, "ca", "create", "--dir", dir, "--force")
	if code != exitOK {
		t.Fatalf("ca create --force: exit %d, %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(b) == string(caBefore) {
		t.Fatal("ca create --force did not write a new CA")
	}
}

func TestTLSErrors(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runTLSCmd(t, "ca", "create", "--dir", dir); code != exitOK {
		t.Fatal(errOut)
	}
	otherCA := t.TempDir()
	if code, _, errOut := runTLSCmd(t, "ca", "create", "--dir", otherCA); code != exitOK {
		t.Fatal(errOut)
	}
	missing := filepath.Join(t.TempDir(), "nowhere")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bare tls", nil, exitUsage, "cert create"},
		{"unknown subcommand", []string{"key"}, exitUsage, `unknown subcommand "key"`},
		{"ca without create", []string{"ca"}, exitUsage, "want 'create'"},
		{"cert with another verb", []string{"cert", "delete"}, exitUsage, `unknown subcommand "delete"`},
		{"missing role", []string{"cert", "create", "--dir", dir}, exitUsage, "scheduler tls cert create: --role is required"},
		{"unknown role", []string{"cert", "create", "--dir", dir, "--role", "admin"}, exitUsage, `scheduler tls cert create: --role: unknown role "admin"`},
		{"bad ip", []string{"cert", "create", "--dir", dir, "--role", "server", "--ip", "10.0.0.1,10.0.0.300"}, exitUsage, `--ip "10.0.0.300" is not an IP address`},
		{"empty ip", []string{"cert", "create", "--dir", dir, "--role", "server", "--ip", ""}, exitUsage, `--ip "" is not an IP address`},
		{"role name as dns", []string{"cert", "create", "--dir", dir, "--role", "cli", "--dns", "server.mo"}, exitUsage, "is in the role domain"},
		{"bad dns", []string{"cert", "create", "--dir", dir, "--role", "server", "--dns", "a..b"}, exitUsage, "invalid DNS name"},
		{"zero days", []string{"ca", "create", "--dir", dir, "--days", "0"}, exitUsage, "--days must be from 1"},
		{"too many days", []string{"cert", "create", "--dir", dir, "--role", "server", "--days", "99999999"}, exitUsage, "--days must be from 1"},
		{"positional argument", []string{"ca", "create", "extra"}, exitUsage, "wrong number of arguments"},
		{"unknown flag", []string{"cert", "create", "--nope"}, exitUsage, "flag provided but not defined"},
		{"missing CA", []string{"cert", "create", "--dir", missing, "--role", "server"}, exitFail, "reading the CA certificate: open " + filepath.Join(missing, "ca.pem")},
		{"missing CA key", []string{"cert", "create", "--dir", missing, "--role", "server", "--ca", filepath.Join(dir, "ca.pem")}, exitFail, "reading the CA key: open " + filepath.Join(missing, "ca-key.pem")},
		{"key of another CA", []string{"cert", "create", "--dir", missing, "--role", "server", "--ca", filepath.Join(dir, "ca.pem"), "--ca-key", filepath.Join(otherCA, "ca-key.pem")}, exitFail, "the CA key does not match the CA certificate (CA " + filepath.Join(dir, "ca.pem")},
	}
	for _, tc := range cases {
		code, out, errOut := runTLSCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d (want %d), stderr %q lacks %q", tc.name, code, tc.code, errOut, tc.want)
		}
		if out != "" {
			t.Errorf("%s: stdout %q", tc.name, out)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed cert create made its folder: %v", err)
	}
	for _, f := range []string{"server.pem", "cli.pem", "server-key.pem", "cli-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s written by a failed command", f)
		}
	}
}

// tls -h and help tls list the subcommands, every flag and the examples;
// each subcommand has its own -h; completion offers their flags.
func TestTLSHelp(t *testing.T) {
	code, _, errOut := runTLSCmd(t, "-h")
	if code != exitOK {
		t.Fatalf("tls -h: exit %d", code)
	}
	for _, want := range []string{"Usage: scheduler tls ca create", "scheduler tls cert create --role server|agent|cli", "Subcommands:", "  ca create", "  cert create", "Flags:", "-role ROLE", "-ca-key FILE", "Examples:", "  scheduler tls ca create"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("tls -h lacks %q:\n%s", want, errOut)
		}
	}
	var out string
	out, _ = capture(t, func() { code = runHelp([]string{"tls"}) })
	if code != exitOK || !strings.Contains(out, "Subcommands:") {
		t.Errorf("help tls: exit %d:\n%s", code, out)
	}
	for _, sub := range []string{"ca", "cert"} {
		code, _, errOut := runTLSCmd(t, sub, "create", "-h")
		if code != exitOK || !strings.Contains(errOut, "Usage: scheduler tls "+sub+" create") || !strings.Contains(errOut, "Example") {
			t.Errorf("tls %s create -h: exit %d:\n%s", sub, code, errOut)
		}
		code, _, errOut2 := runTLSCmd(t, sub, "-h")
		if code != exitOK || errOut2 != errOut {
			t.Errorf("tls %s -h: exit %d:\n%s", sub, code, errOut2)
		}
	}
	_, _, errOut = runTLSCmd(t, "ca", "create", "-h")
	if strings.Contains(errOut, "-role") {
		t.Errorf("ca create -h shows cert flags:\n%s", errOut)
	}
	out, _ = capture(t, func() { runComplete([]string{"flags", "tls"}) })
	for _, want := range []string{"--role\n", "--ip\n", "--dns\n", "--dir\n", "--ca\n", "--ca-key\n", "--force\n", "--days\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("flags of tls lack %q:\n%s", want, out)
		}
	}
}
