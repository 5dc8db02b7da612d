package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backup refuses to overwrite an existing file without --force, before it
// calls the cluster at all.
func TestBackupRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	var code int
	_, errOut := capture(t, func() { code = runBackup([]string{"--addr", "127.0.0.1:1", "--timeout", "1s", path}) })
	if code != exitFail || !strings.Contains(errOut, "exists; pass --force") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("the file was changed to %q", b)
	}
	if err := refuseOverwrite(path, true); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	if err := refuseOverwrite(filepath.Join(t.TempDir(), "new.json"), false); err != nil {
		t.Fatalf("a new file: %v", err)
	}
}

// An unknown value of an enumerated filter is a usage error that lists the
// valid values, before any call.
func TestUnknownFilterValueIsAUsageError(t *testing.T) {
	var code int
	_, errOut := capture(t, func() { code = runWorkloads([]string{"--addr", "127.0.0.1:1", "--timeout", "1s", "--state", "bogus"}) })
	if code != exitUsage || !strings.Contains(errOut, "pending, running, failed, permanently_failed, completed, stopped") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
