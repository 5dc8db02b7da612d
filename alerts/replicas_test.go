package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func voters(down ...bool) []ReplicaInput {
	ids := []string{"s1", "s2", "s3", "s4", "s5"}
	var out []ReplicaInput
	for i, d := range down {
		out = append(out, ReplicaInput{ID: ids[i], HTTP: "127.0.0.1:700" + ids[i][1:], Down: d})
	}
	return out
}

// One of three voters down is critical (the next loss stops the cluster);
// one of five is a warning; the alert resolves when the voter is back.
func TestReplicaDownSeverityAndResolve(t *testing.T) {
	now := time.Now()
	set := NewSet(Thresholds{})
	three := voters(false, true, false)
	three[1].LastContact = now.Add(-3 * time.Second)
	fired, _ := set.Evaluate(Inputs{Replicas: three}, now)
	if len(fired) != 1 {
		t.Fatalf("fired %v, want one ReplicaDown", fired)
	}
	a := fired[0]
	if a.Name != api.AlertReplicaDown || a.Subject != "s2" || a.Severity != api.SeverityCritical ||
		!a.Since.Equal(three[1].LastContact) || a.Value < 2.9 || a.Value > 3.1 {
		t.Fatalf("alert %+v", a)
	}
	if want := "replica s2 (127.0.0.1:7002) is out of contact with the leader: 2 of 3 voters in contact, a majority is 2; the loss of one more stops it"; a.Summary != want {
		t.Fatalf("summary %q, want %q", a.Summary, want)
	}
	_, resolved := set.Evaluate(Inputs{Replicas: voters(false, false, false)}, now.Add(time.Second))
	if len(resolved) != 1 || resolved[0].Subject != "s2" || set.Len() != 0 {
		t.Fatalf("resolved %v, active %v", resolved, set.Active())
	}

	five := Desired(Inputs{Replicas: voters(false, false, true, false, false)}, Thresholds{}, now)
	if len(five) != 1 || five[0].Severity != api.SeverityWarning || !strings.HasSuffix(five[0].Summary, "it can lose 1 more") {
		t.Fatalf("one of five down: %+v", five)
	}
	two := Desired(Inputs{Replicas: voters(false, true, false, true, false)}, Thresholds{}, now)
	if len(two) != 2 || two[0].Severity != api.SeverityCritical || two[1].Severity != api.SeverityCritical {
		t.Fatalf("two of five down: %+v", two)
	}
	if got := Desired(Inputs{Replicas: voters(false)}, Thresholds{}, now); len(got) != 0 {
		t.Fatalf("a single voter in contact: %+v", got)
	}
}
