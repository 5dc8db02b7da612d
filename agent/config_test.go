package agent

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{ID: "n1", DataDir: "/tmp/x", Token: "t", Join: []string{"127.0.0.1:7001", "http://127.0.0.1:7002/"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no id", func(c *Config) { c.ID = "" }, "--id is required"},
		{"id with space", func(c *Config) { c.ID = "n 1" }, "--id"},
		{"no data", func(c *Config) { c.DataDir = "" }, "--data is required"},
		{"no token", func(c *Config) { c.Token = "" }, "no cluster token"},
		{"token with space", func(c *Config) { c.Token = "a b" }, "token must not contain"},
		{"wildcard listen", func(c *Config) { c.Listen = "0.0.0.0:8080" }, "--advertise"},
		{"port-only listen", func(c *Config) { c.Listen = ":8080" }, "--advertise"},
		{"ipv6 wildcard", func(c *Config) { c.Listen = "[::]:8080" }, "--advertise"},
		{"bad listen", func(c *Config) { c.Listen = "localhost" }, "--listen"},
		{"wildcard advertise", func(c *Config) { c.Advertise = "0.0.0.0:8080" }, "not a wildcard"},
		{"advertise port 0", func(c *Config) { c.Advertise = "10.0.0.1:0" }, "--advertise"},
		{"bad join", func(c *Config) { c.Join = []string{"nohost"} }, "--join"},
		{"ftp join", func(c *Config) { c.Join = []string{"ftp://x:1"} }, "--join"},
		{"negative grace", func(c *Config) { c.StopGrace = -time.Second }, "--stop-grace"},
		{"tiny log cap", func(c *Config) { c.LogMaxBytes = 100 }, "--log-max-bytes"},
		{"bad port range", func(c *Config) { c.PortRange = PortRange{Low: 30000, High: 20000} }, "--port-range"},
		{"port range past 65535", func(c *Config) { c.PortRange = PortRange{Low: 60000, High: 70000} }, "--port-range"},
		{"negative cpu", func(c *Config) { c.CPUMillicores = -1 }, "--cpu-millicores"},
		{"negative memory", func(c *Config) { c.MemoryMB = -1 }, "--memory-mb"},
		{"negative restart grace", func(c *Config) { c.RestartGrace = -time.Second }, "--restart-grace"},
		{"huge restart grace", func(c *Config) { c.RestartGrace = 2 * time.Hour }, "--restart-grace"},
		{"negative drain deadline", func(c *Config) { c.DrainDeadline = -time.Second }, "--drain-deadline"},
	}
	for _, c := range cases {
		cfg := good
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// Insecure allows no token; a wildcard listen is fine with --advertise.
	ok := good
	ok.Token, ok.Insecure = "", true
	ok.Listen, ok.Advertise = "0.0.0.0:8080", "10.0.0.5:8080"
	if err := ok.Validate(); err != nil {
		t.Errorf("insecure with advertise: %v", err)
	}
	// Every problem is reported at once.
	if err := (Config{}).Validate(); err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Errorf("empty config: %v", err)
	}
	// The token never shows in the config's text.
	if s := (Config{Token: "very-secret"}).String(); strings.Contains(s, "very-secret") {
		t.Errorf("String() shows the token: %s", s)
	}
}
