package cluster

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// raftPool and raftTimeout are the raft transport's connection pool size and
// I/O timeout.
const (
	raftPool    = 5
	raftTimeout = 5 * time.Second
)

// raftTransport is raft's network transport: plain TCP without TLS, and
// with it a stream layer that accepts server certificates only and dials
// peers expecting one.
func (r *Replica) raftTransport(advertise *net.TCPAddr) (*raft.NetworkTransport, error) {
	logger := newRepeatLogger(r.log.Named("transport"), repeatWindow)
	if r.cfg.TLS == nil {
		return raft.NewTCPTransportWithLogger(r.cfg.RaftAddr, advertise, raftPool, raftTimeout, logger)
	}
	ln, err := net.Listen("tcp", r.cfg.RaftAddr)
	if err != nil {
		return nil, err
	}
	stream := &tlsStream{
		Listener:  tlsutil.NewListener(ln, r.cfg.TLS.ServerConfig(tlsutil.RoleServer), r.log.Named("raft-tls")),
		advertise: advertise,
		client:    r.cfg.TLS.ClientConfig(tlsutil.RoleServer),
		dialed:    map[*dialedConn]struct{}{},
	}
	r.tlsMu.Lock()
	r.raftStream = stream
	r.tlsMu.Unlock()
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: raftPool, Timeout: raftTimeout, Logger: logger,
	}), nil
}

// tlsStream is a raft.StreamLayer over mutual TLS. It remembers its
// connections, dialed (pooled and pipelined alike) and accepted, so that a
// certificate reload can close them all: peers then dial again and both
// sides handshake with the new certificates.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config

	mu     sync.Mutex
	dialed map[*dialedConn]struct{}
}

// Dial opens a TLS connection to a peer, handshake included, within timeout.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), s.client)
	if err != nil {
		return nil, err
	}
	return s.track(c), nil
}

// Accept returns the next peer connection whose handshake succeeded.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c), nil
}

func (s *tlsStream) track(c net.Conn) net.Conn {
	d := &dialedConn{Conn: c, s: s}
	s.mu.Lock()
	s.dialed[d] = struct{}{}
	s.mu.Unlock()
	return d
}

// closeDialed closes every raft connection of this replica, and reports
// how many.
func (s *tlsStream) closeDialed() int {
	s.mu.Lock()
	conns := make([]*dialedConn, 0, len(s.dialed))
	for d := range s.dialed {
		conns = append(conns, d)
	}
	s.mu.Unlock()
	for _, d := range conns {
		_ = d.Close()
	}
	return len(conns)
}

// dialedConn is a connection of a tlsStream; closing it forgets it.
type dialedConn struct {
	net.Conn
	s    *tlsStream
	once sync.Once
}

// Close closes the connection and forgets it.
func (d *dialedConn) Close() error {
	d.once.Do(func() {
		d.s.mu.Lock()
		delete(d.s.dialed, d)
		d.s.mu.Unlock()
	})
	return d.Conn.Close()
}

// Addr is the address peers are told to dial.
func (s *tlsStream) Addr() net.Addr { return s.advertise }
