package main

import (
	"flag"
	"fmt"

	"github.com/micro-orchestrator/mo/internal/version"
)

// runVersion prints this binary's version and Go version; `scheduler
// cluster` shows each replica's.
func runVersion(args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parse(fs, args, "version [--json]", 0); !ok {
		return code
	}
	if *asJSON {
		printJSON(map[string]string{"version": version.String(), "go": version.GoVersion()})
		return exitOK
	}
	fmt.Printf("scheduler %s (%s)\n", version.String(), version.GoVersion())
	return exitOK
}
