package tlsutil

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)

func newTestCA(t *testing.T, lifetime time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := NewCA(testNow, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func parseTestCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCA(t *testing.T) {
	certPEM, keyPEM := newTestCA(t, DefaultCALifetime)
	ca := parseTestCert(t, certPEM)
	if ca.Subject.CommonName != "Micro-Orchestrator CA" || !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Fatalf("CA: CN %q IsCA %v basic %v maxpath %d zero %v", ca.Subject.CommonName, ca.IsCA, ca.BasicConstraintsValid, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; ca.KeyUsage != want {
		t.Fatalf("key usage %v, want %v", ca.KeyUsage, want)
	}
	if !ca.NotBefore.Equal(testNow.Add(-time.Minute)) || !ca.NotAfter.Equal(testNow.Add(5*365*24*time.Hour)) {
		t.Fatalf("valid %v to %v", ca.NotBefore, ca.NotAfter)
	}
	if len(ca.SubjectKeyId) == 0 || ca.SerialNumber.Sign() <= 0 || ca.SerialNumber.BitLen() > 128 {
		t.Fatalf("key id %x serial %v", ca.SubjectKeyId, ca.SerialNumber)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("tls.X509KeyPair: %v", err)
	}
	other, _ := newTestCA(t, time.Hour)
	if parseTestCert(t, other).SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Fatal("two CAs share a serial number")
	}
	if _, _, err := NewCA(testNow, 0); err == nil {
		t.Fatal("a zero lifetime was accepted")
	}
}

func TestNewCertPerRole(t *testing.T) {
	caPEM, caKeyPEM := newTestCA(t, DefaultCALifetime)
	ca := parseTestCert(t, caPEM)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	extraIP := net.ParseIP("10.0.0.5")
	for _, role := range Roles {
		t.Run(string(role), func(t *testing.T) {
			certPEM, keyPEM, err := NewCert(caPEM, caKeyPEM, role,
				[]net.IP{extraIP, net.ParseIP("127.0.0.1"), net.ParseIP("fd00::1"), net.ParseIP("10.0.0.5")},
				[]string{"node1.example.com", "localhost", "Node1.Example.com", "*.nodes.example.com"},
				testNow, DefaultCertLifetime)
			if err != nil {
				t.Fatal(err)
			}
			c := parseTestCert(t, certPEM)
			if got := RoleOf(c); got != role {
				t.Fatalf("RoleOf = %q, want %q", got, role)
			}
			if c.Subject.CommonName != role.Name() {
				t.Fatalf("CN %q", c.Subject.CommonName)
			}
			if want := []string{role.Name(), "localhost", "node1.example.com", "*.nodes.example.com"}; !slices.Equal(c.DNSNames, want) {
				t.Fatalf("DNS names %q, want %q", c.DNSNames, want)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if want := []string{"127.0.0.1", "::1", "10.0.0.5", "fd00::1"}; !slices.Equal(ips, want) {
				t.Fatalf("IPs %q, want %q", ips, want)
			}
			wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			if role == RoleCLI {
				wantEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			}
			if !slices.Equal(c.ExtKeyUsage, wantEKU) {
				t.Fatalf("EKU %v, want %v", c.ExtKeyUsage, wantEKU)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
				t.Fatalf("key usage %v, IsCA %v", c.KeyUsage, c.IsCA)
			}
			if !c.NotBefore.Equal(testNow.Add(-time.Minute)) || !c.NotAfter.Equal(testNow.Add(365*24*time.Hour)) {
				t.Fatalf("valid %v to %v", c.NotBefore, c.NotAfter)
			}
			if !slices.Equal(c.AuthorityKeyId, ca.SubjectKeyId) {
				t.Fatalf("authority key id %x, CA key id %x", c.AuthorityKeyId, ca.SubjectKeyId)
			}
			verify := func(name string, usage x509.ExtKeyUsage) error {
				_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: testNow.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{usage}})
				return err
			}
			for _, name := range []string{role.Name(), "localhost", "node1.example.com", "a.nodes.example.com"} {
				if err := verify(name, x509.ExtKeyUsageClientAuth); err != nil {
					t.Errorf("verify as %s: %v", name, err)
				}
			}
			for _, r := range Roles {
				if r != role && verify(r.Name(), x509.ExtKeyUsageClientAuth) == nil {
					t.Errorf("a %s certificate verifies as %s", role, r.Name())
				}
			}
			if err := verify(role.Name(), x509.ExtKeyUsageServerAuth); (err == nil) != (role != RoleCLI) {
				t.Errorf("verify for server auth: %v", err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("tls.X509KeyPair: %v", err)
			}
			if pair.Leaf == nil || !slices.Equal(pair.Leaf.Raw, c.Raw) {
				t.Fatal("tls.X509KeyPair gave another leaf")
			}
		})
	}
}

func TestNewCertRefusals(t *testing.T) {
	caPEM, caKeyPEM := newTestCA(t, DefaultCALifetime)
	otherPEM, otherKeyPEM := newTestCA(t, DefaultCALifetime)
	leafPEM, leafKeyPEM, err := NewCert(caPEM, caKeyPEM, RoleServer, nil, nil, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		caPEM     []byte
		caKeyPEM  []byte
		role      Role
		ips       []net.IP
		dns       []string
		lifetime  time.Duration
		now       time.Time
		wantInErr string
	}{
		{"cli claims server.mo", caPEM, caKeyPEM, RoleCLI, nil, []string{"server.mo"}, time.Hour, testNow, "role domain"},
		{"role name in capitals", caPEM, caKeyPEM, RoleAgent, nil, []string{"CLI.MO"}, time.Hour, testNow, "role domain"},
		{"own role name", caPEM, caKeyPEM, RoleAgent, nil, []string{"agent.mo"}, time.Hour, testNow, "role domain"},
		{"empty DNS name", caPEM, caKeyPEM, RoleServer, nil, []string{""}, time.Hour, testNow, "empty DNS name"},
		{"invalid DNS name", caPEM, caKeyPEM, RoleServer, nil, []string{"bad_name.example"}, time.Hour, testNow, "invalid DNS name"},
		{"DNS name with a space", caPEM, caKeyPEM, RoleServer, nil, []string{"a b"}, time.Hour, testNow, "invalid DNS name"},
		{"trailing dot", caPEM, caKeyPEM, RoleServer, nil, []string{"example.com."}, time.Hour, testNow, "invalid DNS name"},
		{"hyphen at a label's end", caPEM, caKeyPEM, RoleServer, nil, []string{"a-.example"}, time.Hour, testNow, "invalid DNS name"},
		{"IP as DNS name", caPEM, caKeyPEM, RoleServer, nil, []string{"10.0.0.1"}, time.Hour, testNow, "is an IP address"},
		{"inner wildcard", caPEM, caKeyPEM, RoleServer, nil, []string{"a.*.example"}, time.Hour, testNow, "invalid DNS name"},
		{"bad IP", caPEM, caKeyPEM, RoleServer, []net.IP{{1, 2, 3}}, nil, time.Hour, testNow, "invalid IP"},
		{"unknown role", caPEM, caKeyPEM, Role("admin"), nil, nil, time.Hour, testNow, "unknown role"},
		{"empty role", caPEM, caKeyPEM, Role(""), nil, nil, time.Hour, testNow, "unknown role"},
		{"zero lifetime", caPEM, caKeyPEM, RoleServer, nil, nil, 0, testNow, "lifetime"},
		{"key of another CA", caPEM, otherKeyPEM, RoleServer, nil, nil, time.Hour, testNow, "does not match"},
		{"certificate of another CA", otherPEM, caKeyPEM, RoleServer, nil, nil, time.Hour, testNow, "does not match"},
		{"leaf as CA", leafPEM, leafKeyPEM, RoleServer, nil, nil, time.Hour, testNow, "not a CA"},
		{"no CA certificate", []byte("junk"), caKeyPEM, RoleServer, nil, nil, time.Hour, testNow, "no PEM certificate"},
		{"no CA key", caPEM, []byte("junk"), RoleServer, nil, nil, time.Hour, testNow, "no PEM private key"},
		{"expired CA", caPEM, caKeyPEM, RoleServer, nil, nil, time.Hour, testNow.Add(DefaultCALifetime + time.Second), "CA expired"},
	}
	for _, tc := range cases {
		certPEM, keyPEM, err := NewCert(tc.caPEM, tc.caKeyPEM, tc.role, tc.ips, tc.dns, tc.now, tc.lifetime)
		if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.wantInErr)
		}
		if certPEM != nil || keyPEM != nil {
			t.Errorf("%s: output despite the error", tc.name)
		}
	}
}

// A certificate asked to outlive its CA ends with the CA.
func TestNewCertCappedAtCAExpiry(t *testing.T) {
	caPEM, caKeyPEM := newTestCA(t, 30*24*time.Hour)
	ca := parseTestCert(t, caPEM)
	certPEM, _, err := NewCert(caPEM, caKeyPEM, RoleAgent, nil, nil, testNow.Add(20*24*time.Hour), DefaultCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	c := parseTestCert(t, certPEM)
	if !c.NotAfter.Equal(ca.NotAfter) {
		t.Fatalf("NotAfter %v, CA's %v", c.NotAfter, ca.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: RoleAgent.Name(), CurrentTime: ca.NotAfter.Add(-time.Minute)}); err != nil {
		t.Fatalf("verify just before the CA expires: %v", err)
	}
	// A shorter one is left as asked.
	certPEM, _, err = NewCert(caPEM, caKeyPEM, RoleAgent, nil, nil, testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c := parseTestCert(t, certPEM); !c.NotAfter.Equal(testNow.Add(24 * time.Hour)) {
		t.Fatalf("NotAfter %v", c.NotAfter)
	}
}

// A CA key in SEC 1 form ("EC PRIVATE KEY") is read too.
func TestNewCertReadsSEC1CAKey(t *testing.T) {
	caPEM, caKeyPEM := newTestCA(t, DefaultCALifetime)
	b, _ := pem.Decode(caKeyPEM)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if _, _, err := NewCert(caPEM, sec1, RoleCLI, nil, nil, testNow, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestWritePair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "tls")
	certPath, keyPath := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := WritePair(certPath, []byte("cert 1"), keyPath, []byte("key 1"), false); err != nil {
		t.Fatal(err)
	}
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(keyPath); m != 0o600 {
		t.Fatalf("key mode %v", m)
	}
	if m := mode(certPath); m != 0o644 {
		t.Fatalf("cert mode %v", m)
	}
	if m := mode(dir); m != 0o700 {
		t.Fatalf("folder mode %v", m)
	}
	content := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Either file existing stops both, naming it.
	err := WritePair(certPath, []byte("cert 2"), keyPath, []byte("key 2"), false)
	if err == nil || !strings.Contains(err.Error(), certPath) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without force: %v", err)
	}
	if content(certPath) != "cert 1" || content(keyPath) != "key 1" {
		t.Fatal("a file changed without force")
	}
	otherCert := filepath.Join(dir, "other.pem")
	err = WritePair(otherCert, []byte("cert 2"), keyPath, []byte("key 2"), false)
	if err == nil || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing key only: %v", err)
	}
	if _, err := os.Stat(otherCert); !os.IsNotExist(err) {
		t.Fatalf("the cert was written though the key exists: %v", err)
	}

	// With force, both are replaced, modes kept, and no temporary file is left.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePair(certPath, []byte("cert 3"), keyPath, []byte("key 3"), true); err != nil {
		t.Fatal(err)
	}
	if content(certPath) != "cert 3" || content(keyPath) != "key 3" {
		t.Fatal("force did not overwrite")
	}
	if mode(keyPath) != 0o600 || mode(certPath) != 0o644 {
		t.Fatalf("modes after force: key %v cert %v", mode(keyPath), mode(certPath))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("files in the folder: %v", entries)
	}

	if err := WritePair(keyPath, nil, keyPath, nil, true); err == nil {
		t.Fatal("the same path for both was accepted")
	}
}

// The output of NewCert written by WritePair loads with tls.LoadX509KeyPair.
func TestWrittenPairLoads(t *testing.T) {
	dir := t.TempDir()
	caPEM, caKeyPEM, err := NewCA(time.Now(), DefaultCALifetime)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := NewCert(caPEM, caKeyPEM, RoleServer, nil, nil, time.Now(), DefaultCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := WritePair(certPath, certPEM, keyPath, keyPEM, false); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
}
