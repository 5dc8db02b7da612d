package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// DefaultCALifetime is how long a new CA is valid: 5 years.
const DefaultCALifetime = 5 * 365 * 24 * time.Hour

// DefaultCertLifetime is how long a new role certificate is valid: 1 year.
const DefaultCertLifetime = 365 * 24 * time.Hour

// caCommonName is the subject of every CA this package makes.
const caCommonName = "Micro-Orchestrator CA"

// certBackdate is how far before now a certificate starts, so that a peer
// whose clock is a little behind accepts it at once.
const certBackdate = time.Minute

// newKeyMaterial makes what every new certificate needs: a P-256 key, a
// random serial number and the key's identifier.
func newKeyMaterial() (*ecdsa.PrivateKey, *big.Int, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := certSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	keyID, err := certKeyID(&key.PublicKey)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, serial, keyID, nil
}

// NewCA makes a self-signed CA valid from now-1min to now+lifetime and
// returns its certificate and its private key (ECDSA P-256, PKCS #8), both
// PEM.
func NewCA(now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if lifetime <= 0 {
		return nil, nil, fmt.Errorf("CA lifetime must be positive, got %v", lifetime)
	}
	key, serial, keyID, err := newKeyMaterial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          keyID,
	}
	return signPEM(tmpl, tmpl, key, key)
}

// NewCert makes a certificate for role signed by the CA, with a new ECDSA
// P-256 key, and returns both PEM. Its DNS names are the role name,
// localhost and dnsNames; its IPs 127.0.0.1, ::1 and ips (each once).
// Servers and agents may use it as server and as client, the cli only as
// client. It is valid from now-1min to now+lifetime, but never past the CA:
// NotAfter is capped at the CA's NotAfter. NewCert refuses an unknown role,
// a DNS name that is invalid or that is a role name (a certificate holds its
// own role only), a CA certificate that is not a CA or has expired, and a
// key that is not the CA's.
func NewCert(caCertPEM, caKeyPEM []byte, role Role, ips []net.IP, dnsNames []string, now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if _, err := ParseRole(string(role)); err != nil {
		return nil, nil, err
	}
	if lifetime <= 0 {
		return nil, nil, fmt.Errorf("certificate lifetime must be positive, got %v", lifetime)
	}
	names, err := certDNSNames(role, dnsNames)
	if err != nil {
		return nil, nil, err
	}
	addrs, err := certIPs(ips)
	if err != nil {
		return nil, nil, err
	}
	ca, caKey, err := parseCAPair(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !now.Before(ca.NotAfter) {
		return nil, nil, fmt.Errorf("the CA expired on %s; make a new one (and new certificates for every role)", ca.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}

	key, serial, keyID, err := newKeyMaterial()
	if err != nil {
		return nil, nil, err
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if role == RoleCLI {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: role.Name()},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           addrs,
		SubjectKeyId:          keyID,
	}
	return signPEM(tmpl, ca, key, caKey)
}

// CheckDNSName reports why name cannot be an extra DNS name of a
// certificate: empty, not a host name, an IP address, or a role name.
func CheckDNSName(name string) error {
	if name == "" {
		return errors.New("empty DNS name")
	}
	if IsRoleName(name) || strings.HasSuffix(strings.ToLower(name), roleDomain) {
		return fmt.Errorf("DNS name %q is in the role domain %s: a certificate holds only its own role, given by --role", name, roleDomain)
	}
	if net.ParseIP(name) != nil {
		return fmt.Errorf("DNS name %q is an IP address: give it as an IP", name)
	}
	if len(name) > 253 {
		return fmt.Errorf("DNS name %q is longer than 253 characters", name)
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 && strings.Contains(name, ".") {
			continue // a wildcard, leftmost only
		}
		if !validHostLabel(label) {
			return fmt.Errorf("invalid DNS name %q: want letters, digits and hyphens in dot-separated labels of 1 to 63 characters, no hyphen at either end of a label", name)
		}
	}
	return nil
}

// validHostLabel reports whether s is one label of a host name.
func validHostLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// certDNSNames is the role name, localhost and the extra names, lowercase,
// each once.
func certDNSNames(role Role, extra []string) ([]string, error) {
	names := []string{role.Name(), "localhost"}
	for _, n := range extra {
		if err := CheckDNSName(n); err != nil {
			return nil, err
		}
		n = strings.ToLower(n)
		dup := false
		for _, have := range names {
			if have == n {
				dup = true
				break
			}
		}
		if !dup {
			names = append(names, n)
		}
	}
	return names, nil
}

// certIPs is 127.0.0.1, ::1 and the extra addresses, each once.
func certIPs(extra []net.IP) ([]net.IP, error) {
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, ip := range extra {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("invalid IP address %v", ip)
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		dup := false
		for _, have := range ips {
			if have.Equal(ip) {
				dup = true
				break
			}
		}
		if !dup {
			ips = append(ips, ip)
		}
	}
	return ips, nil
}

// parseCAPair reads a CA certificate and its key, and checks that the
// certificate is a CA that may sign certificates and that the key is its.
func parseCAPair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	var ca *x509.Certificate
	for rest := certPEM; ca == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, nil, errors.New("CA certificate: no PEM certificate in it")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("CA certificate: %w", err)
		}
		ca = c
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return nil, nil, fmt.Errorf("CA certificate: %q is not a CA certificate", ca.Subject.CommonName)
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("CA certificate: %q may not sign certificates", ca.Subject.CommonName)
	}
	key, err := parseSignerPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, errors.New("the CA key does not match the CA certificate")
	}
	return ca, key, nil
}

// parseSignerPEM reads the first private key PEM block: PKCS #8, SEC 1 (EC)
// or PKCS #1 (RSA).
func parseSignerPEM(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, errors.New("no PEM private key in it")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
}

// signPEM signs tmpl (for key) with parent's signer and returns the
// certificate and the key, both PEM-encoded.
func signPEM(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer any) (certPEM, keyPEM []byte, err error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	if keyPEM, err = privateKeyPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// privateKeyPEM encodes key as a PKCS #8 PEM block.
func privateKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// certSerial is a random positive 128-bit serial number.
func certSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// certKeyID is a key identifier for pub: the first 160 bits of the SHA-256
// of its encoded point (RFC 7093, method 1).
func certKeyID(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:20], nil
}

// WritePair writes a certificate (mode 0644) and its key (mode 0600),
// creating their folders (0700) if missing. It refuses, before writing
// either, if either file exists, unless force is set; then it replaces each
// atomically.
func WritePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte, force bool) error {
	if filepath.Clean(certPath) == filepath.Clean(keyPath) {
		return fmt.Errorf("the certificate and the key cannot both be %s", certPath)
	}
	for _, p := range []string{certPath, keyPath} {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return err
		case fi.IsDir():
			return fmt.Errorf("%s is a folder", p)
		case !force:
			return fmt.Errorf("%s exists; pass --force to overwrite it", p)
		}
	}
	for _, p := range []string{keyPath, certPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
	}
	if force {
		return replacePair(certPath, certPEM, keyPath, keyPEM)
	}
	if err := atomicfile.Create(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.Create(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath) // it is ours: nothing is left half-written
		return err
	}
	return nil
}

// replacePair writes both files to temporary files first, then renames each
// over its target, so that either is always whole.
func replacePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	keyTmp, err := atomicfile.WriteTemp(keyPath, keyPEM, 0o600)
	if err != nil {
		return err
	}
	certTmp, err := atomicfile.WriteTemp(certPath, certPEM, 0o644)
	if err != nil {
		_ = os.Remove(keyTmp)
		return err
	}
	if err := os.Rename(keyTmp, keyPath); err != nil {
		_ = os.Remove(keyTmp)
		_ = os.Remove(certTmp)
		return err
	}
	if err := os.Rename(certTmp, certPath); err != nil {
		_ = os.Remove(certTmp)
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(keyPath)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(certPath))
}
