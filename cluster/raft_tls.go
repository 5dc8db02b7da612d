package cluster

import (
	"crypto/tls"
	"net"
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
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: raftPool, Timeout: raftTimeout, Logger: logger,
	}), nil
}

// tlsStream is a raft.StreamLayer over mutual TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

// Dial opens a TLS connection to a peer, handshake included, within timeout.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), s.client)
}

// Addr is the address peers are told to dial.
func (s *tlsStream) Addr() net.Addr { return s.advertise }
