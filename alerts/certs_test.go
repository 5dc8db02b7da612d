package alerts

import (
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func TestCertExpiring(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	in := Inputs{Certificates: []CertInput{
		{Kind: "replica", ID: "s1", NotAfter: now.Add(300 * day)},
		{Kind: "replica", ID: "s2", NotAfter: now.Add(20 * day)},
		{Kind: "node", ID: "n1", NotAfter: now.Add(3 * day)},
		{Kind: "node", ID: "n2", NotAfter: now.Add(-day)},
	}}
	got := map[string]api.Alert{}
	for _, a := range Desired(in, Thresholds{}, now) {
		if a.Name == api.AlertCertExpiring {
			got[a.Subject] = a
		}
	}
	if len(got) != 3 {
		t.Fatalf("alerts: %+v", got)
	}
	if _, ok := got["replica s1"]; ok {
		t.Error("a certificate with 300 days left raised an alert")
	}
	if a := got["replica s2"]; a.Severity != api.SeverityWarning {
		t.Errorf("20 days left: %+v", a)
	}
	if a := got["node n1"]; a.Severity != api.SeverityCritical || a.Node != "n1" {
		t.Errorf("3 days left: %+v", a)
	}
	if a := got["node n2"]; a.Severity != api.SeverityCritical {
		t.Errorf("expired: %+v", a)
	}
}
