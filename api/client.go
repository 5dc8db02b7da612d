package api

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// TLSClient supplies the TLS side of a client: its config, and a
// generation that changes whenever the certificates are reloaded. A client
// built here then starts a fresh connection pool, so that every later
// request handshakes with the new certificate (connections kept busy by
// heartbeats would otherwise keep the old one for ever).
type TLSClient interface {
	Config() *tls.Config
	Generation() uint64
}

// NewHTTPClient builds every outgoing HTTP client of the project (CLI,
// forwarding, health checks, calls to agents): it sends the cluster token as a
// bearer token on each request and applies the given overall timeout. With
// tc every request goes out over TLS, whatever scheme its URL names; nil
// speaks plaintext.
func NewHTTPClient(token string, timeout time.Duration, tc TLSClient) *http.Client {
	return &http.Client{Timeout: timeout, Transport: NewTransport(token, tc)}
}

// NewTransport returns the round tripper used by NewHTTPClient, for callers
// such as reverse proxies that need a transport rather than a client. A nil
// tc speaks plaintext HTTP. With one, an http:// URL is sent as https://, so
// that a cluster with TLS on never sends a request (or its token) in clear
// text, and the addresses stored and shown stay plain host:port.
func NewTransport(token string, tc TLSClient) http.RoundTripper {
	t := &tokenTransport{token: token, tc: tc}
	var conf *tls.Config
	if tc != nil {
		conf = tc.Config()
		t.gen.Store(tc.Generation())
	}
	t.base.Store(newBase(conf))
	return t
}

// newBase is the pooled transport under a tokenTransport.
func newBase(conf *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		ForceAttemptHTTP2:     false,
		TLSClientConfig:       conf,
		TLSHandshakeTimeout:   5 * time.Second,
	}
}

// oldPoolLinger is how long a replaced pool is left for the requests still
// on it, before its connections are closed.
const oldPoolLinger = 30 * time.Second

type tokenTransport struct {
	token string
	tc    TLSClient
	base  atomic.Pointer[http.Transport]
	gen   atomic.Uint64
	mu    sync.Mutex // serialises pool swaps
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tls := t.tc != nil
	if tls && t.tc.Generation() != t.gen.Load() {
		t.swap()
	}
	if t.token != "" || (tls && r.URL.Scheme == "http") {
		r = r.Clone(r.Context())
		if t.token != "" {
			r.Header.Set("Authorization", "Bearer "+t.token)
		}
		if tls && r.URL.Scheme == "http" {
			r.URL.Scheme = "https"
		}
	}
	return t.base.Load().RoundTrip(r)
}

// swap starts a new pool after a reload; the old one is closed once the
// requests still on it have had time to end.
func (t *tokenTransport) swap() {
	t.mu.Lock()
	defer t.mu.Unlock()
	gen := t.tc.Generation()
	if gen == t.gen.Load() {
		return
	}
	old := t.base.Swap(newBase(t.tc.Config()))
	t.gen.Store(gen)
	old.CloseIdleConnections()
	time.AfterFunc(oldPoolLinger, old.CloseIdleConnections)
}

// CloseIdleConnections closes the pooled idle connections (http.Client's
// method of the same name calls it).
func (t *tokenTransport) CloseIdleConnections() { t.base.Load().CloseIdleConnections() }

// CloseIdle closes the idle pooled connections of a transport built here.
func CloseIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
