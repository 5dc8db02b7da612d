package partition

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// tlsEnv turns mutual TLS off when set to 0: labs then run in plaintext.
const tlsEnv = "MO_TEST_TLS"

// tlsOn reports whether labs run with mutual TLS (the default).
func tlsOn() bool { return os.Getenv(tlsEnv) != "0" }

// labTLS is one lab's CA and its server, agent and cli certificates, and
// the TLS configs of the test's own client, which shows the server
// certificate: agents accept no other, replicas accept every role.
type labTLS struct {
	dir        string
	toReplicas *tls.Config // expects a server certificate
	toAgents   *tls.Config // expects an agent certificate
}

// newLabTLS makes a CA and a certificate for every role in dir, as
// scheduler tls ca create and cert create would. The certificates carry no
// lab address: peers are checked by role name, not IP.
func newLabTLS(dir string) (*labTLS, error) {
	t := &labTLS{dir: dir}
	now := time.Now()
	caCert, caKey, err := tlsutil.NewCA(now, tlsutil.DefaultCALifetime)
	if err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}
	if err := tlsutil.WritePair(t.ca(), caCert, filepath.Join(dir, "ca-key.pem"), caKey, false); err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}
	for _, role := range tlsutil.Roles {
		cert, key, err := tlsutil.NewCert(caCert, caKey, role, nil, nil, now, tlsutil.DefaultCertLifetime)
		if err != nil {
			return nil, fmt.Errorf("lab %s certificate: %w", role, err)
		}
		if err := tlsutil.WritePair(t.cert(role), cert, t.key(role), key, false); err != nil {
			return nil, fmt.Errorf("lab %s certificate: %w", role, err)
		}
	}
	store, err := tlsutil.Load(t.files(tlsutil.RoleServer), tlsutil.RoleServer)
	if err != nil {
		return nil, fmt.Errorf("loading the lab's server certificate: %w", err)
	}
	t.toReplicas = store.ClientConfig(tlsutil.RoleServer)
	t.toAgents = store.ClientConfig(tlsutil.RoleAgent)
	return t, nil
}

func (t *labTLS) ca() string                    { return filepath.Join(t.dir, "ca.pem") }
func (t *labTLS) cert(role tlsutil.Role) string { return filepath.Join(t.dir, string(role)+".pem") }
func (t *labTLS) key(role tlsutil.Role) string  { return filepath.Join(t.dir, string(role)+"-key.pem") }

func (t *labTLS) files(role tlsutil.Role) tlsutil.Files {
	return tlsutil.Files{CA: t.ca(), Cert: t.cert(role), Key: t.key(role)}
}

// flags are the --tls-* flags of a process of the role; none without TLS.
func (t *labTLS) flags(role tlsutil.Role) []string {
	if t == nil {
		return nil
	}
	f := t.files(role)
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}

// mode names the lab's transport for its log line.
func (t *labTLS) mode() string {
	if t == nil {
		return "plaintext (" + tlsEnv + "=0)"
	}
	return "mutual TLS"
}
