package cluster

import (
	"testing"

	"github.com/micro-orchestrator/mo/api"
)

// A submission the agent would refuse to start is refused at the API.
func TestValidateSubmitRefusesWhatTheAgentWould(t *testing.T) {
	bad := map[string]api.SubmitRequest{
		"control characters in the name": {Name: "evil\n\x1b[31mRED", Command: "true"},
		"DEL in the name":                {Name: "a\x7f", Command: "true"},
		"C1 in the name":                 {Name: "a\u009b", Command: "true"},
		"NUL in an env value":            {Name: "x", Command: "true", Env: map[string]string{"A": "1\x002"}},
		"NUL in an env name":             {Name: "x", Command: "true", Env: map[string]string{"A\x00": "1"}},
		"= in an env name":               {Name: "x", Command: "true", Env: map[string]string{"A=B": "1"}},
		"empty env name":                 {Name: "x", Command: "true", Env: map[string]string{"": "1"}},
		"NUL in the command":             {Name: "x", Command: "tr\x00ue"},
		"NUL in an argument":             {Name: "x", Command: "echo", Args: []string{"a\x00b"}},
	}
	for what, s := range bad {
		if _, err := validateSubmit(&s); err == nil {
			t.Errorf("%s: accepted", what)
		}
		if err := api.ValidateProcess(s.Command, s.Args, s.Env); err == nil && what[:3] == "NUL" {
			t.Errorf("%s: the agent's rule accepts it", what)
		}
	}
	for _, name := range []string{"web", "日本語", "🚀 rocket", "  padded  "} {
		s := api.SubmitRequest{Name: name, Command: "sleep", Args: []string{"1"}, Env: map[string]string{"A": "multi\nline"}}
		if _, err := validateSubmit(&s); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}
