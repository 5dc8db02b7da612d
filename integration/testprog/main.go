// Command testprog is a workload for the integration tests, built by their
// TestMain next to the scheduler and agent binaries. Its mode is its first
// argument:
//
//	testprog http [LABEL]  serves 200 "ok PID" on 127.0.0.1:$MO_PORT_<LABEL> (default HTTP)
//	testprog alloc MB      allocates and touches MB MiB of memory, then sleeps
//	testprog sleep         sleeps until killed
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testprog http [LABEL] | alloc MB | sleep")
	}
	switch os.Args[1] {
	case "http":
		label := "http"
		if len(os.Args) > 2 {
			label = os.Args[2]
		}
		serve(label)
	case "alloc":
		if len(os.Args) != 3 {
			fail("usage: testprog alloc MB")
		}
		mb, err := strconv.Atoi(os.Args[2])
		if err != nil || mb <= 0 {
			fail("alloc: MB must be a positive number, not " + os.Args[2])
		}
		alloc(mb)
	case "sleep":
		sleepForever()
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "testprog:", msg)
	os.Exit(2)
}

// serve answers every request with 200 on the port the agent picked for label.
func serve(label string) {
	env := "MO_PORT_" + strings.ToUpper(label)
	port := os.Getenv(env)
	if port == "" {
		fail(env + " is not set")
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		fail(err.Error())
	}
	fmt.Printf("serving on %s, pid %d\n", l.Addr(), os.Getpid())
	pid := strconv.Itoa(os.Getpid())
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok", pid)
	}))
	fail(err.Error())
}

// sink keeps the allocated memory reachable.
var sink [][]byte

// alloc allocates mb MiB a MiB at a time, writing every page, then sleeps.
func alloc(mb int) {
	for i := 1; i <= mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		sink = append(sink, b)
		if i%16 == 0 || i == mb {
			fmt.Printf("allocated %d MB\n", i)
		}
	}
	sleepForever()
}

func sleepForever() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-ch:
	case <-time.After(24 * time.Hour):
	}
}
