package api

import (
	"net"
	"net/http"
	"time"
)

// NewHTTPClient builds every outgoing HTTP client of the project (CLI,
// forwarding, health checks, calls to agents): it sends the cluster token as a
// bearer token on each request and applies the given overall timeout.
func NewHTTPClient(token string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: NewTransport(token)}
}

// NewTransport returns the round tripper used by NewHTTPClient, for callers
// such as reverse proxies that need a transport rather than a client.
func NewTransport(token string) http.RoundTripper {
	base := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		ForceAttemptHTTP2:     false,
	}
	return &tokenTransport{token: token, base: base}
}

type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.base.RoundTrip(r)
}
