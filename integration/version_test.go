package integration

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// Every binary tells its version: `scheduler version`, GET /cluster/status
// (the answering replica's, and each replica's), and mo_build_info on the
// /metrics of replicas and agents.
func TestVersionEverywhere(t *testing.T) {
	tc := newTestCluster(t)
	out, errOut, code := tc.cli("version")
	f := strings.Fields(out)
	if code != 0 || len(f) != 3 || f[0] != "scheduler" || f[1] == "" || !strings.HasPrefix(f[2], "(go") {
		t.Fatalf("scheduler version: exit %d, %q %q", code, out, errOut)
	}
	v := f[1]
	out, _, code = tc.cli("version", "--json")
	var j map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j["version"] != v || j["go"] == "" {
		t.Fatalf("scheduler version --json: exit %d, %q", code, out)
	}

	tc.startReplicas(1)
	tc.startAgents(1)
	st, err := tc.status(tc.replicas[0].http)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != v || len(st.Replicas) != 1 || st.Replicas[0].Version != v || st.Leader.Version != v {
		t.Fatalf("cluster status versions %+v, want %q", st, v)
	}
	want := `mo_build_info{goversion="` + runtime.Version() + `",version="` + v + `"}`
	if m := tc.scrape(tc.replicas[0].http); m[want] != 1 {
		t.Fatalf("no %s 1 on the replica", want)
	}
	if m := tc.scrape(tc.agents[0].listen); m[want] != 1 {
		t.Fatalf("no %s 1 on the agent", want)
	}
	out, _, code = tc.cli("cluster")
	if code != 0 || !strings.Contains(out, "VERSION") || !strings.Contains(out, v) {
		t.Fatalf("scheduler cluster: exit %d\n%s", code, out)
	}
}
