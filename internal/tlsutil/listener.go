package tlsutil

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// handshakeTimeout bounds a TLS handshake on an accepted connection: peers
// on a working network finish in milliseconds.
const handshakeTimeout = 3 * time.Second

// maxHandshakes bounds the handshakes in progress on one listener, and
// maxHandshakesPerHost those from one host: a connection over either limit
// is closed at once, so that idle connections from one host cannot hold
// back the handshakes of the others.
const (
	maxHandshakes        = 1024
	maxHandshakesPerHost = 32
)

// listener completes the TLS handshake of each accepted connection before
// handing it out, so that a refused peer (plaintext, no certificate, another
// CA, an expired certificate, the wrong role) is closed and logged here,
// once, and never reaches the server behind it.
type listener struct {
	inner   net.Listener
	cfg     *tls.Config
	refused *RefusalLog
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex // guards err, inflight and perHost
	err     error
	// inflight and perHost count the handshakes in progress.
	inflight int
	perHost  map[string]int
}

// NewListener wraps inner: Accept returns only connections whose TLS
// handshake under cfg succeeded. Refusals are logged to log, once per peer
// address and reason every few minutes, without secrets.
func NewListener(inner net.Listener, cfg *tls.Config, log hclog.Logger) net.Listener {
	l := &listener{
		inner: inner, cfg: cfg, refused: NewRefusalLog(log),
		conns: make(chan net.Conn), done: make(chan struct{}), perHost: map[string]int{},
	}
	go l.acceptLoop()
	return l
}

func (l *listener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.fail(err)
				return
			}
			// Out of file descriptors, or any other passing trouble: wait
			// and go on, as net/http and raft do.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-l.done:
				return
			}
			continue
		}
		backoff = 0
		host := hostOf(c.RemoteAddr())
		if !l.admit(host) {
			l.refused.Note(c.RemoteAddr().String(), "TLS connection refused", "too many handshakes", "too many handshakes in progress")
			c.Close()
			continue
		}
		go l.handshake(c, host)
	}
}

// admit counts a handshake from host in, unless a limit is reached.
func (l *listener) admit(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= maxHandshakes || l.perHost[host] >= maxHandshakesPerHost {
		return false
	}
	l.inflight++
	l.perHost[host]++
	return true
}

// finished counts a handshake from host out.
func (l *listener) finished(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if l.perHost[host]--; l.perHost[host] <= 0 {
		delete(l.perHost, host)
	}
}

// hostOf is an address without its port.
func hostOf(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func (l *listener) handshake(raw net.Conn, host string) {
	defer l.finished(host)
	tc := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader) {
			_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nthis port speaks mutual TLS only: a client needs the cluster CA and a certificate (scheduler: --tls-ca, --tls-cert, --tls-key or SCHEDULER_TLS_*; curl: https:// with --cacert, --cert, --key)\n")
		}
		l.refused.noteHandshake(raw.RemoteAddr(), err)
		raw.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

func (l *listener) fail(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.done)
	})
}

// Close stops accepting; a connection whose handshake ends after it is
// closed then.
func (l *listener) Close() error {
	err := l.inner.Close()
	l.fail(net.ErrClosed)
	return err
}

// Addr is the address listened on.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// looksLikeHTTP reports whether a record header is the start of a
// plaintext HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}
