// Package partition is the project's partition lab: end-to-end tests that
// put every scheduler replica and every agent in a network namespace of its
// own, wired to a bridge in a private hub namespace, and then cut, heal and
// flap the links between them with blackhole routes while a sampler counts,
// every 50 ms, the instances of each workload that really run (from
// /proc/*/environ, which sees every namespace).
//
// It owns the lab (namespaces, veths, routes, processes, temp dirs and their
// cleanup, including after an interrupted run), the sampler, and the
// partition scenarios. The host's root namespace is never changed: the test
// process reaches the lab through a client namespace on the bridge.
//
// Every lab runs with mutual TLS: it makes its own CA and a server, an agent
// and a cli certificate, starts replicas and agents with --tls-*, and the
// test's own client shows the server certificate (agents accept no other).
// MO_TEST_TLS=0 runs the labs in plaintext instead.
//
// It needs root and iproute2's ip; without them every test skips. Run it with
//
//	go test -count=1 -v ./integration/partition
//
// The silent-failure benchmark runs only with MO_BENCH=1. make
// partition-drill runs every scenario verbosely. The
// package builds bin/scheduler and bin/agent itself; MO_LAB_BIN=DIR runs the
// ones already in DIR instead.
package partition
