// Package integration holds the end-to-end tests: they build the real
// bin/scheduler and bin/agent, start them as processes on 127.0.0.1 with free
// ports, drive them through the HTTP API and the CLI, and kill them by PID.
package integration
