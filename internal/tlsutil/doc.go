// Package tlsutil owns transport security: the roles a certificate can hold
// (server, agent, cli), making the CA and the certificates, loading and
// reloading them, and every tls.Config of the project, for servers and
// clients alike. Peers are checked by the role name in their certificate
// (server.mo, agent.mo, cli.mo), never by IP, so certificates survive address
// changes.
package tlsutil
