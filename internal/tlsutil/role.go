package tlsutil

import (
	"crypto/x509"
	"fmt"
	"strings"
)

// Role is what a certificate allows its holder to be.
type Role string

// The three roles.
const (
	// RoleServer is a scheduler replica: raft, forwarding, calls to agents.
	RoleServer Role = "server"
	// RoleAgent is a node agent: it may register and report, nothing else.
	RoleAgent Role = "agent"
	// RoleCLI is an operator's client: the scheduler API, nothing internal.
	RoleCLI Role = "cli"
)

// roleDomain ends every role name.
const roleDomain = ".mo"

// Roles lists every role, in the order help text shows them.
var Roles = []Role{RoleServer, RoleAgent, RoleCLI}

// Name is the DNS name that marks the role in a certificate, and that a
// client expects of the peer it dials (server.mo, agent.mo, cli.mo).
func (r Role) Name() string { return string(r) + roleDomain }

// ParseRole reads a role as typed on a command line.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if s == string(r) {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want server, agent or cli)", s)
}

// IsRoleName reports whether name is one of the role names, which a
// certificate may carry only as its own role.
func IsRoleName(name string) bool {
	for _, r := range Roles {
		if strings.EqualFold(name, r.Name()) {
			return true
		}
	}
	return false
}

// RoleOf returns the role a certificate holds: the one role name among its
// DNS names. A certificate with none, or with more than one, holds no role.
func RoleOf(c *x509.Certificate) Role {
	var found Role
	for _, n := range c.DNSNames {
		for _, r := range Roles {
			if n == r.Name() {
				if found != "" && found != r {
					return ""
				}
				found = r
			}
		}
	}
	return found
}
