package api

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// NewHTTPClient builds every outgoing HTTP client of the project (CLI,
// forwarding, health checks, calls to agents): it sends the cluster token as a
// bearer token on each request and applies the given overall timeout. With a
// TLS config every request goes out over TLS, whatever scheme its URL names.
func NewHTTPClient(token string, timeout time.Duration, tc *tls.Config) *http.Client {
	return &http.Client{Timeout: timeout, Transport: NewTransport(token, tc)}
}

// NewTransport returns the round tripper used by NewHTTPClient, for callers
// such as reverse proxies that need a transport rather than a client. A nil
// tc speaks plaintext HTTP. With one, an http:// URL is sent as https://, so
// that a cluster with TLS on never sends a request (or its token) in clear
// text, and the addresses stored and shown stay plain host:port.
func NewTransport(token string, tc *tls.Config) http.RoundTripper {
	base := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		ForceAttemptHTTP2:     false,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   5 * time.Second,
	}
	return &tokenTransport{token: token, tls: tc != nil, base: base}
}

type tokenTransport struct {
	token string
	tls   bool
	base  *http.Transport
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token != "" || (t.tls && r.URL.Scheme == "http") {
		r = r.Clone(r.Context())
		if t.token != "" {
			r.Header.Set("Authorization", "Bearer "+t.token)
		}
		if t.tls && r.URL.Scheme == "http" {
			r.URL.Scheme = "https"
		}
	}
	return t.base.RoundTrip(r)
}

// CloseIdleConnections closes the pooled idle connections (http.Client's
// method of the same name calls it), so that the next requests handshake
// again, with a reloaded certificate.
func (t *tokenTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// CloseIdle closes the idle pooled connections of a transport built here.
func CloseIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
