package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the three files of a TLS identity: the cluster CA, this
// process's certificate and its key.
type Files struct {
	CA, Cert, Key string
}

// Enabled reports whether any file is named (TLS is then on).
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Validate requires all three files or none.
func (f Files) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	if f.CA == "" {
		missing = append(missing, "--tls-ca")
	}
	if f.Cert == "" {
		missing = append(missing, "--tls-cert")
	}
	if f.Key == "" {
		missing = append(missing, "--tls-key")
	}
	if len(missing) > 0 {
		return fmt.Errorf("TLS needs --tls-ca, --tls-cert and --tls-key together (for the CLI also $SCHEDULER_TLS_CA, _CERT, _KEY); missing %v", missing)
	}
	return nil
}

// usageName names an extended key usage in words.
func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "serving TLS"
	}
	return "TLS client use"
}

// identity is one loaded set of files.
type identity struct {
	pool *x509.CertPool
	cert tls.Certificate
	leaf *x509.Certificate
}

// Store holds the current identity of a process and reloads it from its
// files on demand (SIGHUP). Every tls.Config it builds reads the identity
// current at each handshake, so a reload takes effect for new connections
// without a restart.
type Store struct {
	files Files
	role  Role
	now   func() time.Time
	cur   atomic.Pointer[identity]
	gen   atomic.Uint64 // counts successful reloads
	mu    sync.Mutex    // serialises reloads
}

// Load reads the files for a process of the given role. Every error names
// the file at fault: missing, unreadable, not PEM, a key that does not
// match, a certificate that another CA signed, that has expired, or that
// holds another role.
func Load(files Files, role Role) (*Store, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, errors.New("no TLS files named")
	}
	s := &Store{files: files, role: role, now: time.Now}
	id, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur.Store(id)
	return s, nil
}

// Reload reads the files again. On any error the old identity stays in use
// and the error says why; on success it returns the new certificate's
// expiry.
func (s *Store) Reload() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.read()
	if err != nil {
		return time.Time{}, err
	}
	s.cur.Store(id)
	s.gen.Add(1)
	return id.leaf.NotAfter, nil
}

// Generation counts the successful reloads.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// NotAfter is the current certificate's expiry.
func (s *Store) NotAfter() time.Time { return s.cur.Load().leaf.NotAfter }

// Role is the role of this process's certificate.
func (s *Store) Role() Role { return s.role }

// Files returns the files the store reads.
func (s *Store) Files() Files { return s.files }

func (s *Store) read() (*identity, error) {
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return nil, fmt.Errorf("TLS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	var cas []*x509.Certificate
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file %s: %w", s.files.CA, err)
		}
		pool.AddCert(c)
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", s.files.CA)
	}
	certPEM, err := os.ReadFile(s.files.Cert)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(s.files.Key)
	if err != nil {
		return nil, fmt.Errorf("TLS key file: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate file %s: %w", s.files.Cert, err)
		}
		pair.Leaf = leaf
	}
	if got := RoleOf(leaf); got != s.role {
		return nil, fmt.Errorf("TLS certificate file %s holds role %q; this process needs a %q certificate (scheduler tls cert create --role %s)", s.files.Cert, got, s.role, s.role)
	}
	now := s.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate file %s expired on %s", s.files.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("TLS certificate file %s is not valid before %s (is this machine's clock right?)", s.files.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	uses := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if s.role != RoleCLI {
		uses = append(uses, x509.ExtKeyUsageServerAuth) // it serves too
	}
	for _, u := range uses {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{u}})
		var unknown x509.UnknownAuthorityError
		var invalid x509.CertificateInvalidError
		switch {
		case err == nil:
		case errors.As(err, &unknown):
			return nil, fmt.Errorf("TLS certificate file %s is not signed by the CA in %s", s.files.Cert, s.files.CA)
		case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
			return nil, fmt.Errorf("TLS certificate file %s is not made for %s (make it with scheduler tls cert create --role %s)", s.files.Cert, usageName(u), s.role)
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return nil, fmt.Errorf("TLS certificate file %s, or the CA in %s, is expired or not yet valid", s.files.Cert, s.files.CA)
		default:
			return nil, fmt.Errorf("TLS certificate file %s does not verify against the CA in %s: %w", s.files.Cert, s.files.CA, err)
		}
	}
	return &identity{pool: pool, cert: pair, leaf: leaf}, nil
}
