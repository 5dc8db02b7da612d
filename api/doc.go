// Package api holds the wire types shared by the scheduler API, the agent API,
// the CLI and the tests, and the one place where outgoing HTTP clients are built.
package api
