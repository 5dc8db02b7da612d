package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// minVersion is the oldest protocol version spoken on any link.
const minVersion = tls.VersionTLS12

// ServerConfig is the tls.Config of a port that accepts peers of the given
// roles: it presents the current certificate, requires a client certificate
// signed by the current CA, and refuses any other role during the handshake.
func (s *Store) ServerConfig(allowed ...Role) *tls.Config {
	allowed = slices.Clone(allowed)
	return &tls.Config{
		MinVersion: minVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			id := s.cur.Load()
			return &tls.Config{
				MinVersion:   minVersion,
				Certificates: []tls.Certificate{id.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    id.pool,
				// No resumption: every connection shows a certificate that the
				// current CA and role rules accept.
				SessionTicketsDisabled: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return errors.New("no client certificate")
					}
					return checkRole(cs.PeerCertificates[0], allowed)
				},
			}, nil
		},
	}
}

// ClientConfig is the tls.Config of a client that dials a peer of the given
// role: it shows the current certificate and accepts only a peer
// certificate that the current CA signed for that role's name. The standard
// verification is replaced (not skipped) by one that reads the CA current
// at each handshake, so a reloaded CA applies at once.
func (s *Store) ClientConfig(peer Role) *tls.Config {
	return &tls.Config{
		MinVersion: minVersion,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := s.cur.Load().cert
			return &c, nil
		},
		InsecureSkipVerify: true, // verified in VerifyConnection below, by role name against the current CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the peer sent no certificate")
			}
			id := s.cur.Load()
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			_, err := leaf.Verify(x509.VerifyOptions{
				Roots: id.pool, Intermediates: inter, DNSName: peer.Name(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("peer certificate refused (want %s certificate from this cluster's CA): %w", withArticle(peer), err)
			}
			return checkRole(leaf, []Role{peer})
		},
	}
}

// Client is the TLS side of an HTTP client that dials peers of one role
// (it satisfies api.TLSClient): a client built on it starts a new
// connection pool after each reload.
type Client struct {
	store *Store
	conf  *tls.Config
}

// Client returns the TLS side of an HTTP client that dials peers of role
// peer.
func (s *Store) Client(peer Role) *Client { return &Client{store: s, conf: s.ClientConfig(peer)} }

// Config is the client's tls.Config.
func (c *Client) Config() *tls.Config { return c.conf }

// Generation changes at each reload of the store.
func (c *Client) Generation() uint64 { return c.store.Generation() }

// checkRole accepts a certificate whose role is one of allowed.
func checkRole(c *x509.Certificate, allowed []Role) error {
	got := RoleOf(c)
	if got == "" {
		return errors.New("the certificate holds no role (server.mo, agent.mo or cli.mo)")
	}
	if !slices.Contains(allowed, got) {
		names := make([]string, len(allowed))
		for i, r := range allowed {
			names[i] = string(r)
		}
		return fmt.Errorf("%s certificate is not accepted here (only %s)", withArticle(got), strings.Join(names, ", "))
	}
	return nil
}

// PeerRole is the role of the client certificate of a TLS connection, or ""
// when there is none (a plaintext connection).
func PeerRole(cs *tls.ConnectionState) Role {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return RoleOf(cs.PeerCertificates[0])
}

// withArticle is "a server", "an agent", "a cli".
func withArticle(r Role) string {
	if r == RoleAgent {
		return "an agent"
	}
	return "a " + string(r)
}
