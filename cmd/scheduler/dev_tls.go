package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// devTLS is the CA and the three certificates of a local cluster.
type devTLS struct {
	dir string
}

// makeDevTLS creates a CA and a server, an agent and a cli certificate in
// root/tls, or keeps those a previous run left there (--dir, --keep) when
// they all still load.
func makeDevTLS(root string) (*devTLS, error) {
	d := &devTLS{dir: filepath.Join(root, "tls")}
	if d.usable() {
		return d, nil
	}
	now := time.Now()
	caCert, caKey, err := tlsutil.NewCA(now, tlsutil.DefaultCALifetime)
	if err != nil {
		return nil, err
	}
	if err := tlsutil.WritePair(d.ca(), caCert, filepath.Join(d.dir, "ca-key.pem"), caKey, true); err != nil {
		return nil, err
	}
	for _, role := range tlsutil.Roles {
		cert, key, err := tlsutil.NewCert(caCert, caKey, role, nil, nil, now, tlsutil.DefaultCertLifetime)
		if err != nil {
			return nil, err
		}
		if err := tlsutil.WritePair(d.cert(role), cert, d.key(role), key, true); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// usable reports whether every certificate in the folder loads.
func (d *devTLS) usable() bool {
	for _, role := range tlsutil.Roles {
		if _, err := tlsutil.Load(tlsutil.Files{CA: d.ca(), Cert: d.cert(role), Key: d.key(role)}, role); err != nil {
			return false
		}
	}
	return true
}

func (d *devTLS) ca() string                    { return filepath.Join(d.dir, "ca.pem") }
func (d *devTLS) cert(role tlsutil.Role) string { return filepath.Join(d.dir, string(role)+".pem") }
func (d *devTLS) key(role tlsutil.Role) string  { return filepath.Join(d.dir, string(role)+"-key.pem") }

// flags are the TLS flags of a process of the role; none without TLS.
func (d *devTLS) flags(role tlsutil.Role) []string {
	if d == nil {
		return nil
	}
	return []string{"--tls-ca", d.ca(), "--tls-cert", d.cert(role), "--tls-key", d.key(role)}
}

// clientConfig is the TLS config of dev's own calls (a cli certificate), or
// nil without TLS.
func (d *devTLS) clientConfig() (api.TLSClient, error) {
	if d == nil {
		return nil, nil
	}
	s, err := tlsutil.Load(tlsutil.Files{CA: d.ca(), Cert: d.cert(tlsutil.RoleCLI), Key: d.key(tlsutil.RoleCLI)}, tlsutil.RoleCLI)
	if err != nil {
		return nil, err
	}
	return s.Client(tlsutil.RoleServer), nil
}

// printExports prints the exports a CLI in another terminal needs.
func (d *devTLS) printExports() {
	if d == nil {
		fmt.Printf("  (TLS is off: --no-tls)\n")
		return
	}
	fmt.Printf("  export %s=%s\n", tlsutil.EnvCA, d.ca())
	fmt.Printf("  export %s=%s\n", tlsutil.EnvCert, d.cert(tlsutil.RoleCLI))
	fmt.Printf("  export %s=%s\n", tlsutil.EnvKey, d.key(tlsutil.RoleCLI))
}
