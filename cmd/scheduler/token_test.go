package main

import (
	"flag"
	"strings"
	"testing"
)

// No command's -h prints the cluster token taken from the environment.
func TestHelpNeverPrintsTheToken(t *testing.T) {
	const secret = "s3cret-token-value-4711"
	t.Setenv("SCHEDULER_TOKEN", secret)
	for _, c := range commands() {
		if strings.HasPrefix(c.name, "_") {
			continue
		}
		var code int
		out, errOut := capture(t, func() { code = c.run([]string{"-h"}) })
		if code != exitOK {
			t.Errorf("%s -h: exit %d, want 0", c.name, code)
		}
		if strings.Contains(out+errOut, secret) {
			t.Errorf("%s -h printed the token:\n%s%s", c.name, out, errOut)
		}
		if strings.Contains(errOut, "-token") && !strings.Contains(errOut, "$SCHEDULER_TOKEN") {
			t.Errorf("%s -h does not say the token defaults to $SCHEDULER_TOKEN:\n%s", c.name, errOut)
		}
	}
}

// The token still comes from the environment when --token is not given.
func TestTokenDefaultsToTheEnvironment(t *testing.T) {
	t.Setenv("SCHEDULER_TOKEN", "from-env")
	for _, args := range [][]string{nil, {"--token", "from-flag"}} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		cf := addClientFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cf.client()
		want := "from-env"
		if args != nil {
			want = "from-flag"
		}
		if *cf.token != want {
			t.Errorf("args %v: token %q, want %q", args, *cf.token, want)
		}
	}
}
