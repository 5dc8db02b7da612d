package alerts

import (
	"fmt"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// CertWarnBefore is how long before a certificate expires that
// CertificateExpiring fires; CertCriticalBefore makes it critical.
const (
	CertWarnBefore     = 30 * 24 * time.Hour
	CertCriticalBefore = 7 * 24 * time.Hour
)

// CertInput is one TLS certificate in use in the cluster: a replica's or a
// node agent's.
type CertInput struct {
	Kind     string // "replica" or "node"
	ID       string
	NotAfter time.Time
}

// certExpiring returns a CertificateExpiring alert for each certificate
// that expires within CertWarnBefore (critical within CertCriticalBefore).
func certExpiring(cs []CertInput, now time.Time) []api.Alert {
	var out []api.Alert
	for _, c := range cs {
		left := c.NotAfter.Sub(now)
		if left > CertWarnBefore {
			continue
		}
		severity := api.SeverityWarning
		if left <= CertCriticalBefore {
			severity = api.SeverityCritical
		}
		when := fmt.Sprintf("expires on %s, in %d days", c.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24))
		if left <= 0 {
			when = fmt.Sprintf("expired on %s", c.NotAfter.UTC().Format("2006-01-02"))
		}
		a := api.Alert{
			Name: api.AlertCertExpiring, Severity: severity, Subject: c.Kind + " " + c.ID, Value: left.Hours() / 24,
			Summary: fmt.Sprintf("the TLS certificate of %s %s %s: make a new one (scheduler tls cert create) and send SIGHUP", c.Kind, c.ID, when),
			Since:   now,
		}
		if c.Kind == "node" {
			a.Node = c.ID
		}
		out = append(out, a)
	}
	return out
}
