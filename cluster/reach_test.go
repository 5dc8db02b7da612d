package cluster

import "testing"

func TestBestRelayPicksTheReplicaThatRelaysMost(t *testing.T) {
	cases := []struct {
		via  map[string]int
		want string
	}{
		{map[string]int{"s2": 1, "s3": 3}, "s3"},
		{map[string]int{"s3": 2, "s2": 2}, "s2"},
		{map[string]int{}, ""},
	}
	for _, c := range cases {
		if got := bestRelay(c.via); got != c.want {
			t.Errorf("bestRelay(%v) = %q, want %q", c.via, got, c.want)
		}
	}
}
