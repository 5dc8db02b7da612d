package tlsutil

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testPKI is a CA and a certificate per role, written to a folder.
type testPKI struct {
	dir           string
	caCert, caKey []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	var err error
	if p.caCert, p.caKey, err = NewCA(time.Now(), DefaultCALifetime); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.caPath(), p.caCert, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range Roles {
		p.issue(t, r, time.Now(), DefaultCertLifetime)
	}
	return p
}

func (p *testPKI) caPath() string { return filepath.Join(p.dir, "ca.pem") }

// issue (re)writes the certificate and key of role.
func (p *testPKI) issue(t *testing.T, r Role, now time.Time, life time.Duration) {
	t.Helper()
	c, k, err := NewCert(p.caCert, p.caKey, r, nil, nil, now, life)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(p.files(r).Cert, c, p.files(r).Key, k, true); err != nil {
		t.Fatal(err)
	}
}

func (p *testPKI) files(r Role) Files {
	return Files{CA: p.caPath(), Cert: filepath.Join(p.dir, string(r)+".pem"), Key: filepath.Join(p.dir, string(r)+"-key.pem")}
}

func (p *testPKI) load(t *testing.T, r Role) *Store {
	t.Helper()
	s, err := Load(p.files(r), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFilesValidate(t *testing.T) {
	if err := (Files{}).Validate(); err != nil {
		t.Fatalf("no files: %v", err)
	}
	err := Files{CA: "a", Cert: "b"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	expired := newTestPKI(t)
	expired.issue(t, RoleServer, time.Now().Add(-48*time.Hour), time.Hour)
	srv := p.files(RoleServer)
	cases := []struct {
		name  string
		files Files
		role  Role
		want  []string
	}{
		{"missing CA", Files{CA: filepath.Join(p.dir, "nope.pem"), Cert: srv.Cert, Key: srv.Key}, RoleServer, []string{"nope.pem", "no such file"}},
		{"missing cert", Files{CA: srv.CA, Cert: filepath.Join(p.dir, "gone.pem"), Key: srv.Key}, RoleServer, []string{"gone.pem"}},
		{"missing key", Files{CA: srv.CA, Cert: srv.Cert, Key: filepath.Join(p.dir, "gone-key.pem")}, RoleServer, []string{"gone-key.pem"}},
		{"CA not PEM", Files{CA: garbage, Cert: srv.Cert, Key: srv.Key}, RoleServer, []string{"garbage.pem", "no PEM"}},
		{"cert not PEM", Files{CA: srv.CA, Cert: garbage, Key: srv.Key}, RoleServer, []string{"garbage.pem"}},
		{"key of another cert", Files{CA: srv.CA, Cert: srv.Cert, Key: p.files(RoleAgent).Key}, RoleServer, []string{"agent-key.pem"}},
		{"wrong role", p.files(RoleAgent), RoleServer, []string{"agent.pem", `role "agent"`, `"server"`}},
		{"another CA", Files{CA: other.caPath(), Cert: srv.Cert, Key: srv.Key}, RoleServer, []string{"server.pem", "not signed by the CA"}},
		{"expired", expired.files(RoleServer), RoleServer, []string{"server.pem", "expired"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.files, c.role)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error shows key material: %q", err)
			}
		})
	}
}

func TestReloadKeepsTheOldIdentityOnError(t *testing.T) {
	p := newTestPKI(t)
	s := p.load(t, RoleServer)
	before := s.NotAfter()
	if err := os.WriteFile(p.files(RoleServer).Cert, []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil || !strings.Contains(err.Error(), "server.pem") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if !s.NotAfter().Equal(before) {
		t.Fatal("a failed reload changed the identity")
	}
	p.issue(t, RoleServer, time.Now(), 30*24*time.Hour)
	exp, err := s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(s.NotAfter()) || !exp.Before(before) {
		t.Fatalf("reload: expiry %s (was %s)", exp, before)
	}
}

// serve runs a TLS listener that echoes one line per connection, logging to
// the returned buffer.
func serve(t *testing.T, cfg *tls.Config) (string, *syncBuffer) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})
	ln := NewListener(inner, cfg, log)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, line)
			}()
		}
	}()
	return ln.Addr().String(), buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// roundTrip dials addr with cfg, sends a line and reads it back.
func roundTrip(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// waitLog polls the buffer until it holds want.
func waitLog(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q; it holds:\n%s", want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRolesAtTheHandshake(t *testing.T) {
	p := newTestPKI(t)
	server, agent, cli := p.load(t, RoleServer), p.load(t, RoleAgent), p.load(t, RoleCLI)
	addr, log := serve(t, server.ServerConfig(RoleServer))

	if err := roundTrip(addr, server.ClientConfig(RoleServer)); err != nil {
		t.Fatalf("server to server: %v", err)
	}
	if err := roundTrip(addr, cli.ClientConfig(RoleServer)); err == nil {
		t.Fatal("a cli certificate got through a server-only port")
	}
	waitLog(t, log, "a cli certificate is not accepted here (only server)")
	if err := roundTrip(addr, agent.ClientConfig(RoleServer)); err == nil {
		t.Fatal("an agent certificate got through a server-only port")
	}
	waitLog(t, log, "an agent certificate is not accepted here")
	// A client that expects an agent refuses a server certificate: peers are
	// checked by role name.
	err := roundTrip(addr, server.ClientConfig(RoleAgent))
	if err == nil || !strings.Contains(err.Error(), "agent.mo") {
		t.Fatalf("a client expecting an agent accepted a server: %v", err)
	}
}

func TestRefusalsAreLoggedOnce(t *testing.T) {
	p := newTestPKI(t)
	server := p.load(t, RoleServer)
	addr, log := serve(t, server.ServerConfig(RoleServer, RoleAgent, RoleCLI))

	// Plaintext HTTP gets a readable 400.
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.0 400") || !strings.Contains(string(b), "mutual TLS") {
			t.Fatalf("plaintext answer: %q", b)
		}
	}
	waitLog(t, log, "plaintext (not TLS) sent to a TLS port")

	// No client certificate.
	pool := server.cur.Load().pool
	noCert := &tls.Config{RootCAs: pool, ServerName: RoleServer.Name()}
	for range 3 {
		if err := roundTrip(addr, noCert); err == nil {
			t.Fatal("a client without a certificate got through")
		}
	}
	waitLog(t, log, "no client certificate")

	// Another CA.
	other := newTestPKI(t).load(t, RoleServer)
	otherCA := &tls.Config{RootCAs: pool, ServerName: RoleServer.Name(), Certificates: []tls.Certificate{other.cur.Load().cert}}
	for range 3 {
		if err := roundTrip(addr, otherCA); err == nil {
			t.Fatal("a certificate of another CA got through")
		}
	}
	waitLog(t, log, "certificate signed by another CA")

	for _, reason := range []string{"plaintext", "no client certificate", "another CA"} {
		if n := strings.Count(log.String(), reason); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", reason, n, log)
		}
	}
	if strings.Contains(log.String(), "PRIVATE") {
		t.Error("the log shows key material")
	}
}

func TestExpiredClientCertificateRefused(t *testing.T) {
	p := newTestPKI(t)
	server := p.load(t, RoleServer)
	addr, log := serve(t, server.ServerConfig(RoleCLI))
	cli := p.load(t, RoleCLI)
	p.issue(t, RoleCLI, time.Now().Add(-2*time.Hour), time.Hour)
	// Load refuses an expired certificate, so swap it in behind the store's back.
	expired, err := tls.LoadX509KeyPair(p.files(RoleCLI).Cert, p.files(RoleCLI).Key)
	if err != nil {
		t.Fatal(err)
	}
	id := *cli.cur.Load()
	id.cert = expired
	cli.cur.Store(&id)
	if err := roundTrip(addr, cli.ClientConfig(RoleServer)); err == nil {
		t.Fatal("an expired certificate got through")
	}
	waitLog(t, log, "certificate expired or not yet valid")
}

func TestReloadedCAAppliesToNewConnections(t *testing.T) {
	p := newTestPKI(t)
	server := p.load(t, RoleServer)
	addr, _ := serve(t, server.ServerConfig(RoleServer))
	oldPeer := p.load(t, RoleServer)
	if err := roundTrip(addr, oldPeer.ClientConfig(RoleServer)); err != nil {
		t.Fatal(err)
	}
	// A new CA and a new server certificate, reloaded in place.
	fresh := newTestPKI(t)
	for _, f := range []struct{ from, to string }{
		{fresh.caPath(), p.caPath()},
		{fresh.files(RoleServer).Cert, p.files(RoleServer).Cert},
		{fresh.files(RoleServer).Key, p.files(RoleServer).Key},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(addr, oldPeer.ClientConfig(RoleServer)); err == nil {
		t.Fatal("a peer of the old CA still got through after the reload")
	}
	if err := roundTrip(addr, fresh.load(t, RoleServer).ClientConfig(RoleServer)); err != nil {
		t.Fatalf("a peer of the new CA: %v", err)
	}
}

func TestRoleOf(t *testing.T) {
	p := newTestPKI(t)
	for _, r := range Roles {
		if got := RoleOf(p.load(t, r).cur.Load().leaf); got != r {
			t.Errorf("RoleOf(%s certificate) = %q", r, got)
		}
	}
	if _, err := ParseRole("admin"); err == nil {
		t.Error("ParseRole accepted admin")
	}
}
