package main

import (
	"crypto/tls"
	"errors"
	"strings"
)

// tlsError is a TLS mismatch between the CLI and a replica; it is not
// retried.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// tlsHint says what to fix when a call failed on TLS, or "" when the error
// is something else.
func tlsHint(err error) string {
	msg := err.Error()
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "this replica speaks plaintext: unset SCHEDULER_TLS_* and --tls-*, or start the cluster with TLS"
	case errors.As(err, &alert), strings.Contains(msg, "remote error: tls"):
		return "the replica refused this client's certificate: SCHEDULER_TLS_CERT must be a cli certificate signed by the cluster's CA (scheduler tls cert create --role cli)"
	case errors.As(err, &verify), strings.Contains(msg, "peer certificate refused"):
		return "the replica's certificate is not a server certificate of the CA in SCHEDULER_TLS_CA"
	case strings.Contains(msg, "this port speaks mutual TLS only"):
		return "set SCHEDULER_TLS_CA, SCHEDULER_TLS_CERT and SCHEDULER_TLS_KEY (or --tls-ca, --tls-cert, --tls-key)"
	}
	return ""
}
