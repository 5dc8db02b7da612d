package cluster

import (
	"testing"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

func TestRoleAllowed(t *testing.T) {
	cases := []struct {
		role         tlsutil.Role
		method, path string
		want         bool
	}{
		{tlsutil.RoleServer, "POST", "/cluster/heartbeats", true},
		{tlsutil.RoleServer, "POST", "/workloads", true},
		{tlsutil.RoleServer, "POST", "/cluster/join", true},
		{tlsutil.RoleAgent, "POST", "/nodes", true},
		{tlsutil.RoleAgent, "POST", "/nodes/n1/heartbeat", true},
		{tlsutil.RoleAgent, "POST", "/workloads", false},
		{tlsutil.RoleAgent, "GET", "/workloads", false},
		{tlsutil.RoleAgent, "GET", "/nodes", false},
		{tlsutil.RoleAgent, "POST", "/cluster/heartbeats", false},
		{tlsutil.RoleAgent, "POST", "/nodes/n1/x/heartbeat", false},
		{tlsutil.RoleAgent, "DELETE", "/workloads/w", false},
		{tlsutil.RoleCLI, "POST", "/workloads", true},
		{tlsutil.RoleCLI, "GET", "/nodes", true},
		{tlsutil.RoleCLI, "DELETE", "/workloads/w", true},
		{tlsutil.RoleCLI, "POST", "/cluster/remove", true},
		{tlsutil.RoleCLI, "POST", "/nodes", false},
		{tlsutil.RoleCLI, "POST", "/nodes/n1/heartbeat", false},
		{tlsutil.RoleCLI, "POST", "/cluster/heartbeats", false},
		{tlsutil.RoleCLI, "POST", "/cluster/join", false},
		{"", "GET", "/workloads", false},
		{tlsutil.RoleCLI, "POST", "/nodes//heartbeat", false},
		{tlsutil.RoleCLI, "post", "/nodes/n1/heartbeat", false},
		{tlsutil.RoleCLI, "POST", "/nodes/n1/heartbeat/", false},
		{tlsutil.RoleCLI, "post", "/nodes", false},
		{tlsutil.RoleCLI, "POST", "/cluster/join/", false},
		{tlsutil.RoleAgent, "post", "/nodes", false},
		{tlsutil.RoleAgent, "POST", "/nodes//heartbeat", true},
		{tlsutil.RoleAgent, "POST", "/nodes/n1/restarting", true},
		{tlsutil.RoleAgent, "POST", "/nodes/n1/drain", true},
		{tlsutil.RoleAgent, "GET", "/nodes/n1", true},
		{tlsutil.RoleAgent, "GET", "/nodes/n1/x", false},
		{tlsutil.RoleAgent, "POST", "/nodes/n1/eligibility", false},
		{tlsutil.RoleAgent, "DELETE", "/nodes/n1", false},
		{tlsutil.RoleCLI, "POST", "/nodes/n1/restarting", false},
		{tlsutil.RoleCLI, "POST", "/nodes/n1/drain", true},
	}
	for _, c := range cases {
		if got := roleAllowed(c.role, c.method, c.path); got != c.want {
			t.Errorf("roleAllowed(%q, %s %s) = %v, want %v", c.role, c.method, c.path, got, c.want)
		}
	}
}
