package integration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// The log lines the TLS checks look for.
const (
	logRefused       = "TLS connection refused"
	logRoleRefused   = "request refused for the role of its certificate"
	logReloaded      = "TLS certificates reloaded"
	logReloadFailed  = "TLS reload failed; keeping"
	refusalAttempts  = 3  // each refusal is tried this often, and must be logged once
	rotationMinAcked = 10 // submissions acknowledged before, and again after, the reloads
)

// One cluster of 3 replicas and 2 agents on mutual TLS, with certificates
// of its own (the rotation overwrites them): each kind of refused peer,
// what each role may call, a replica and an agent that cannot read their
// files, certificate rotation under load with SIGHUP, and a reload of a
// broken file.
func TestTLS(t *testing.T) {
	certs, err := newCertSet(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestClusterWith(t, certs)
	tc.startReplicas(3)
	tc.startAgents(2)
	s1, n1 := tc.replicas[0], tc.agents[0]
	serverPair := loadPair(t, certs, tlsutil.RoleServer)
	agentPair := loadPair(t, certs, tlsutil.RoleAgent)
	cliPair := loadPair(t, certs, tlsutil.RoleCLI)
	withCert := func(c tls.Certificate) *tls.Config { return presenting(certs.pool, c) }

	tc.run(t, "PlaintextGets400", func(t *testing.T) {
		plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for _, target := range []struct{ address, log string }{{s1.http, s1.proc.log}, {n1.listen, n1.proc.log}} {
			for i := 0; i < refusalAttempts; i++ {
				req, _ := http.NewRequest("GET", "http://"+target.address+"/status", nil)
				req.Header.Set("Authorization", "Bearer "+tc.token)
				resp, err := plain.Do(req)
				if err != nil {
					t.Fatalf("plaintext GET to %s: %v", target.address, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "mutual TLS only") {
					t.Fatalf("plaintext GET to %s: %d %q, want 400 saying the port speaks mutual TLS only", target.address, resp.StatusCode, b)
				}
			}
			loggedOnce(t, target.log, logRefused, "reason=\"plaintext")
		}
	})

	tc.run(t, "NoClientCertificate", func(t *testing.T) {
		refusedHTTPS(t, tc.token, &tls.Config{RootCAs: certs.pool}, s1.http)
		loggedOnce(t, s1.proc.log, logRefused, "reason=\"no client certificate\"")
	})

	tc.run(t, "CertificateOfAnotherCA", func(t *testing.T) {
		other, err := newCertSet(filepath.Join(t.TempDir(), "other"))
		if err != nil {
			t.Fatal(err)
		}
		// A server certificate, the most powerful role, but from another CA.
		refusedHTTPS(t, tc.token, withCert(loadPair(t, other, tlsutil.RoleServer)), s1.http)
		loggedOnce(t, s1.proc.log, logRefused, "reason=\"certificate signed by another CA\"")
	})

	tc.run(t, "ExpiredCertificate", func(t *testing.T) {
		certPEM, keyPEM, err := certs.issue(tlsutil.RoleCLI, time.Now().Add(-2*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		refusedHTTPS(t, tc.token, withCert(pair), s1.http)
		loggedOnce(t, s1.proc.log, logRefused, "reason=\"certificate expired or not yet valid\"")
	})

	tc.run(t, "CertificateWithoutRole", func(t *testing.T) {
		refusedHTTPS(t, tc.token, withCert(roleLessPair(t, certs)), s1.http)
		loggedOnce(t, s1.proc.log, logRefused, "holds no role")
	})

	tc.run(t, "AgentCertificate", func(t *testing.T) {
		ac := newTLSClient(tc.token, withCert(agentPair))
		for i := 0; i < refusalAttempts; i++ {
			code, b, err := ac.call("POST", s1.http, "/workloads", api.SubmitRequest{Name: "from-agent", Command: "true"})
			if err != nil || code != http.StatusForbidden || !strings.Contains(string(b), "agent certificate") {
				t.Fatalf("POST /workloads with an agent certificate: %d %s %v, want 403", code, b, err)
			}
		}
		loggedOnce(t, s1.proc.log, logRoleRefused, "may not call POST /workloads")
		if code, b, err := ac.call("GET", s1.http, "/workloads", nil); err != nil || code != http.StatusForbidden {
			t.Errorf("GET /workloads with an agent certificate: %d %s %v, want 403", code, b, err)
		}
		// Its own paths pass: a heartbeat (of a node nobody registered, so
		// that no real node's bookkeeping changes) is answered by a follower.
		f := tc.followers()[0]
		if code, b, err := ac.call("POST", f.http, "/nodes/tls-probe/heartbeat", api.Heartbeat{NodeID: "tls-probe", Seq: 1}); err != nil || code != http.StatusOK {
			t.Errorf("heartbeat with an agent certificate: %d %s %v, want 200", code, b, err)
		}
		// The agent API takes server certificates only.
		refusedHTTPS(t, tc.token, withCert(agentPair), n1.listen)
		loggedOnce(t, n1.proc.log, logRefused, "an agent certificate is not accepted here")
	})

	tc.run(t, "CLICertificate", func(t *testing.T) {
		cc := newTLSClient(tc.token, withCert(cliPair))
		if code, b, err := cc.call("GET", s1.http, "/workloads", nil); err != nil || code != http.StatusOK {
			t.Errorf("GET /workloads with a cli certificate: %d %s %v", code, b, err)
		}
		if code, b, err := cc.call("POST", s1.http, "/workloads", api.SubmitRequest{Name: "from-cli", Command: "sleep", Args: []string{"600"}}); err != nil || code != http.StatusCreated {
			t.Errorf("POST /workloads with a cli certificate: %d %s %v", code, b, err)
		}
		for i := 0; i < refusalAttempts; i++ {
			code, b, err := cc.call("POST", s1.http, "/cluster/heartbeats", api.HeartbeatRelay{From: "s9"})
			if err != nil || code != http.StatusForbidden {
				t.Fatalf("POST /cluster/heartbeats with a cli certificate: %d %s %v, want 403", code, b, err)
			}
		}
		loggedOnce(t, s1.proc.log, logRoleRefused, "may not call POST /cluster/heartbeats")
		for _, p := range []string{"/cluster/join", "/nodes", "/nodes/n1/heartbeat"} {
			if code, b, err := cc.call("POST", s1.http, p, `{}`); err != nil || code != http.StatusForbidden {
				t.Errorf("POST %s with a cli certificate: %d %s %v, want 403", p, code, b, err)
			}
		}
		// The agent API refuses it in the handshake.
		refusedHTTPS(t, tc.token, withCert(cliPair), n1.listen)
		loggedOnce(t, n1.proc.log, logRefused, "a cli certificate is not accepted here")
		// So does the raft port; a server certificate gets through there.
		for i := 0; i < refusalAttempts; i++ {
			if err := raftProbe(s1.raft, withCert(cliPair), 5*time.Second); err == nil {
				t.Fatalf("the raft port %s accepted a cli certificate", s1.raft)
			} else if isTimeout(err) {
				t.Fatalf("the raft port %s neither refused a cli certificate nor closed: %v", s1.raft, err)
			}
		}
		loggedOnce(t, s1.proc.log, logRefused, "a cli certificate is not accepted here")
		if err := raftProbe(s1.raft, withCert(serverPair), 300*time.Millisecond); !isTimeout(err) {
			t.Fatalf("the raft port with a server certificate: %v, want an open connection", err)
		}
	})

	tc.run(t, "MissingFileStopsStart", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "no-such-server.pem")
		r := startProc(t, "s-missing", filepath.Join(dir, "s-missing.log"), "scheduler", "serve", "--id", "s9",
			"--http", addr(freePort(t)), "--raft", addr(freePort(t)), "--data", filepath.Join(dir, "s9"), "--token", tc.token, "--bootstrap",
			"--tls-ca", certs.caFile(), "--tls-cert", missing, "--tls-key", certs.keyFile(tlsutil.RoleServer))
		missingKey := filepath.Join(dir, "no-such-agent-key.pem")
		a := startProc(t, "n-missing", filepath.Join(dir, "n-missing.log"), "agent", "--id", "n9", "--listen", addr(freePort(t)),
			"--join", s1.http, "--data", filepath.Join(dir, "n9"), "--token", tc.token,
			"--tls-ca", certs.caFile(), "--tls-cert", certs.certFile(tlsutil.RoleAgent), "--tls-key", missingKey)
		for _, c := range []struct {
			p    *proc
			file string
		}{{r, missing}, {a, missingKey}} {
			select {
			case <-c.p.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s still runs with %s missing", c.p.name, c.file)
			}
			var ee *exec.ExitError
			b, _ := os.ReadFile(c.p.log)
			if !errors.As(c.p.err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(b), c.file) {
				t.Errorf("%s with %s missing: %v, want a failed exit naming the file:\n%s", c.p.name, c.file, c.p.err, b)
			}
		}
	})

	var rotated map[tlsutil.Role]*x509.Certificate
	tc.run(t, "RotationUnderLoad", func(t *testing.T) {
		rotated = rotateUnderLoad(t, tc, withCert(cliPair))
		// New connections see the new certificates.
		for _, r := range tc.replicas {
			for _, address := range []string{r.http, r.raft} {
				if got := peerCert(t, address, withCert(serverPair)); got.SerialNumber.Cmp(rotated[tlsutil.RoleServer].SerialNumber) != 0 {
					t.Errorf("%s %s shows serial %x, want the new %x", r.id, address, got.SerialNumber, rotated[tlsutil.RoleServer].SerialNumber)
				}
			}
		}
		for _, a := range tc.agents {
			if got := peerCert(t, a.listen, withCert(serverPair)); got.SerialNumber.Cmp(rotated[tlsutil.RoleAgent].SerialNumber) != 0 {
				t.Errorf("%s shows serial %x, want the new %x", a.id, got.SerialNumber, rotated[tlsutil.RoleAgent].SerialNumber)
			}
		}
		// The new cli certificate works.
		cc := newTLSClient(tc.token, withCert(loadPair(t, certs, tlsutil.RoleCLI)))
		if code, b, err := cc.call("GET", s1.http, "/workloads", nil); err != nil || code != http.StatusOK {
			t.Errorf("GET /workloads with the new cli certificate: %d %s %v", code, b, err)
		}
	})

	tc.run(t, "BrokenReloadKeepsCertificates", func(t *testing.T) {
		if rotated == nil {
			t.Skip("the rotation failed")
		}
		// Break the server and agent certificate files, SIGHUP one replica
		// and one agent, then put the files back (no one else reloads).
		for _, role := range []tlsutil.Role{tlsutil.RoleServer, tlsutil.RoleAgent} {
			good, err := os.ReadFile(certs.certFile(role))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(certs.certFile(role), []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := os.WriteFile(certs.certFile(role), good, 0o644); err != nil {
					t.Error(err)
				}
			}()
		}
		for _, p := range []*proc{s1.proc, n1.proc} {
			before := countLines(p.log, logReloadFailed)
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, p.name+" to log that the reload failed", func() bool { return countLines(p.log, logReloadFailed) > before })
		}
		if !strings.Contains(lastLine(s1.proc.log, logReloadFailed), certs.certFile(tlsutil.RoleServer)) {
			t.Errorf("the failed reload does not name the file: %s", lastLine(s1.proc.log, logReloadFailed))
		}
		if !s1.proc.alive() || !n1.proc.alive() {
			t.Fatal("a broken file on SIGHUP ended a process")
		}
		// Both still show the rotated certificates, and the cluster works.
		if got := peerCert(t, s1.http, withCert(serverPair)); got.SerialNumber.Cmp(rotated[tlsutil.RoleServer].SerialNumber) != 0 {
			t.Errorf("s1 shows serial %x after the failed reload, want %x", got.SerialNumber, rotated[tlsutil.RoleServer].SerialNumber)
		}
		if got := peerCert(t, n1.listen, withCert(serverPair)); got.SerialNumber.Cmp(rotated[tlsutil.RoleAgent].SerialNumber) != 0 {
			t.Errorf("n1 shows serial %x after the failed reload, want %x", got.SerialNumber, rotated[tlsutil.RoleAgent].SerialNumber)
		}
		cc := newTLSClient(tc.token, withCert(cliPair))
		code, b, err := cc.call("POST", s1.http, "/workloads", api.SubmitRequest{Name: "after-broken-reload", Command: "sleep", Args: []string{"600"}, Count: intp(2)})
		var resp api.SubmitResponse
		if err != nil || code != http.StatusCreated || json.Unmarshal(b, &resp) != nil {
			t.Fatalf("submit through s1 after its failed reload: %d %s %v", code, b, err)
		}
		waitFor(t, 20*time.Second, "the workloads submitted after the failed reloads running", func() bool {
			return allRunning(tc.workloads(), resp.IDs)
		})
		if _, err := tc.agentStatus(n1); err != nil {
			t.Errorf("n1's API after its failed reload: %v", err)
		}
		if n := tc.countNodes(api.NodeOnline); n != len(tc.agents) {
			t.Errorf("%d of %d nodes online after the failed reloads", n, len(tc.agents))
		}
	})
}

// run runs f as a subtest of t, the cluster's helpers failing the subtest.
func (tc *testCluster) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(st *testing.T) {
		parent := tc.t
		tc.t = st
		defer func() { tc.t = parent }()
		f(st)
	})
}

// rotateUnderLoad submits workloads through the replicas in turn with a cli
// certificate while it writes a new certificate for each role over the
// files and sends SIGHUP to every replica and agent. It checks that every
// process logged the reload, that every acknowledged submission is listed
// afterwards and that no node went offline meanwhile; it returns the new
// certificates.
func rotateUnderLoad(t *testing.T, tc *testCluster, cliTLS *tls.Config) map[tlsutil.Role]*x509.Certificate {
	procs := []*proc{}
	for _, r := range tc.replicas {
		procs = append(procs, r.proc)
	}
	for _, a := range tc.agents {
		procs = append(procs, a.proc)
	}
	reloads := map[*proc]int{}
	for _, p := range procs {
		reloads[p] = countLines(p.log, logReloaded)
	}
	leaderBefore := tc.leader().id

	var (
		mu       sync.Mutex
		acked    []string
		failures []string
		polls    int
		notOn    []string // node statuses other than online, or failed checks, seen while rotating
		reloaded time.Time
		checked  = map[string]map[string]bool{} // per node, the health checks ended after the reloads
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the load: a submission every 50 ms, through each replica in turn
		defer wg.Done()
		c := newTLSClient(tc.token, cliTLS)
		c.http.Timeout = 10 * time.Second
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r := tc.replicas[i%len(tc.replicas)]
			code, b, err := c.call("POST", r.http, "/workloads", api.SubmitRequest{Name: "rotation", Command: "sleep", Args: []string{"600"}})
			var resp api.SubmitResponse
			mu.Lock()
			if err == nil && code == http.StatusCreated && json.Unmarshal(b, &resp) == nil {
				acked = append(acked, resp.IDs...)
			} else {
				failures = append(failures, fmt.Sprintf("via %s: %d %s %v", r.id, code, b, err))
			}
			mu.Unlock()
		}
	}()
	go func() { // the watch: every node's status and last check, every 100 ms
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, r := range tc.replicas {
				var s api.HealthSummary
				if tc.c.getJSON(r.http, "/health/summary", &s) != nil {
					continue
				}
				mu.Lock()
				polls++
				for _, d := range s.NodeDetails {
					if d.Status != api.NodeOnline || d.ConsecutiveFailures > 0 {
						notOn = append(notOn, fmt.Sprintf("%s %s after %d failed checks", d.NodeID, d.Status, d.ConsecutiveFailures))
					}
					if lc, err := time.ParseInLocation(api.TimeLayout, d.LastCheck, time.UTC); err == nil && !reloaded.IsZero() && lc.After(reloaded) {
						if checked[d.NodeID] == nil {
							checked[d.NodeID] = map[string]bool{}
						}
						checked[d.NodeID][d.LastCheck] = true
					}
				}
				mu.Unlock()
				break
			}
		}
	}()
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor(t, 20*time.Second, "submissions before the rotation", func() bool { return ackedNow() >= rotationMinAcked })

	certs := tc.certs
	rotated := map[tlsutil.Role]*x509.Certificate{}
	for _, role := range tlsutil.Roles {
		certPEM, keyPEM, err := certs.issue(role, time.Now(), tlsutil.DefaultCertLifetime)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsutil.WritePair(certs.certFile(role), certPEM, certs.keyFile(role), keyPEM, true); err != nil {
			t.Fatal(err)
		}
		rotated[role] = parseCertPEM(t, certPEM)
	}
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP %s: %v", p.name, err)
		}
	}
	for _, p := range procs {
		waitFor(t, 10*time.Second, p.name+" to log that it reloaded its certificates", func() bool {
			return countLines(p.log, logReloaded) > reloads[p]
		})
	}
	mu.Lock()
	reloaded = time.Now()
	mu.Unlock()
	atReload := ackedNow()
	// Keep the load and the watch on until every node has passed two health
	// checks by the leader on the new certificates (and heartbeats went on
	// meanwhile): a node that the rotation cut off would be offline by then.
	waitFor(t, 30*time.Second, "submissions and two health checks of every node after the rotation", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < atReload+rotationMinAcked || len(checked) < len(tc.agents) {
			return false
		}
		for _, c := range checked {
			if len(c) < 2 {
				return false
			}
		}
		return true
	})
	stopLoad()

	t.Logf("rotation: %d submissions acknowledged (%d after every reload), %d failed, %d health polls; leader %s before, %s after",
		len(acked), len(acked)-atReload, len(failures), polls, leaderBefore, tc.leader().id)
	if len(failures) > 0 {
		t.Errorf("%d submissions failed during the rotation, first: %s", len(failures), failures[0])
	}
	if polls == 0 {
		t.Error("the node statuses were never read during the rotation")
	}
	if len(notOn) > 0 {
		t.Errorf("nodes not online during the rotation: %v", notOn)
	}
	listed := map[string]bool{}
	for _, w := range tc.workloads() {
		listed[w.ID] = true
	}
	for _, id := range acked {
		if !listed[id] {
			t.Errorf("acknowledged workload %s is missing after the rotation", id)
		}
	}
	var ev api.EventList
	if err := tc.c.getJSON(tc.leader().http, "/events", &ev); err != nil {
		t.Fatal(err)
	}
	for _, e := range ev.Events {
		if e.Kind == api.EventNodeOffline {
			t.Errorf("event during the test: %s %s %s", e.Kind, e.Subject, e.Message)
		}
	}
	return rotated
}

// presenting is a client TLS config that trusts pool and always shows cert,
// whatever CAs the server asks for.
func presenting(pool *x509.CertPool, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		RootCAs:    pool,
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	}
}

// refusedHTTPS makes a request with cfg refusalAttempts times, on new
// connections, and fails unless each is refused before any answer.
func refusedHTTPS(t *testing.T, token string, cfg *tls.Config, address string) {
	t.Helper()
	for i := 0; i < refusalAttempts; i++ {
		c := newTLSClient(token, cfg)
		c.http.Timeout = 5 * time.Second
		code, b, err := c.call("GET", address, "/status", nil)
		if err == nil {
			t.Fatalf("GET %s was answered (%d %s), want a refused handshake", address, code, b)
		}
		if isTimeout(err) {
			t.Fatalf("GET %s timed out instead of being refused: %v", address, err)
		}
	}
}

// raftProbe opens a TLS connection to a raft port with cfg and reads from
// it until d passes: a refused certificate shows as an error in the
// handshake or the first read, an accepted one as a timeout (raft waits for
// the dialer to speak).
func raftProbe(address string, cfg *tls.Config, d time.Duration) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", address, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		return errors.New("read a byte from the raft port")
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// peerCert is the certificate a new TLS connection to address shows.
func peerCert(t *testing.T, address string, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", address, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", address, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// loadPair reads the certificate and key of role from a set's files.
func loadPair(t *testing.T, cs *certSet, role tlsutil.Role) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cs.certFile(role), cs.keyFile(role))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func parseCertPEM(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roleLessPair is a client certificate that the set's CA signed but that
// names no role (tlsutil.NewCert never makes one).
func roleLessPair(t *testing.T, cs *certSet) tls.Certificate {
	t.Helper()
	ca := parseCertPEM(t, cs.caPEM)
	kb, _ := pem.Decode(cs.caKeyPEM)
	if kb == nil {
		t.Fatal("no PEM CA key")
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "no role"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// logLines are the lines of a log holding every one of parts.
func logLines(path string, parts ...string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

func countLines(path string, parts ...string) int { return len(logLines(path, parts...)) }

func lastLine(path string, parts ...string) string {
	l := logLines(path, parts...)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// loggedOnce waits until the log holds a line with msg and detail, then
// checks that there is exactly one (the attempts were refused alike).
func loggedOnce(t *testing.T, path, msg, detail string) {
	t.Helper()
	n := 0
	waitFor(t, 10*time.Second, fmt.Sprintf("%q with %q in %s", msg, detail, filepath.Base(path)), func() bool {
		n = countLines(path, msg, detail)
		return n > 0
	})
	if n != 1 {
		t.Errorf("%d lines %q with %q in %s, want 1 for %d attempts:\n%s", n, msg, detail, filepath.Base(path), refusalAttempts,
			strings.Join(logLines(path, msg, detail), "\n"))
	}
}
