// Package version names the build: set at link time by the Makefile
// (-ldflags "-X github.com/micro-orchestrator/mo/internal/version.Version=..."
// from `git describe --always --dirty`), else taken from the module build
// information that the Go toolchain embeds, else "dev".
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags -X; empty in a plain `go build`.
var Version = ""

// String returns the build's version: the link-time Version, else the
// module version or VCS revision embedded by the Go toolchain, else "dev".
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return fromBuildInfo(bi)
}

// fromBuildInfo picks a version from embedded build information.
func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// GoVersion returns the Go version the binary was built with.
func GoVersion() string { return runtime.Version() }
