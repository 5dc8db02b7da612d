package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

var binDir string

// sharedCerts is the CA and the server, agent and cli certificates of every
// TLS cluster that does not bring its own. It is made once per run.
var sharedCerts *certSet

// tlsByDefault is whether newTestCluster (and newClient) speak mutual TLS:
// yes, unless MO_TEST_TLS=0 asks for plaintext.
var tlsByDefault = os.Getenv("MO_TEST_TLS") != "0"

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// runMain builds the binaries and the shared certificates, runs the tests
// and removes both folders.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mo-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	for _, name := range []string{"scheduler", "agent"} {
		if _, err := os.Stat(filepath.Join("..", "cmd", name, "main.go")); err != nil {
			continue
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			return 1
		}
	}
	// testprog: a workload for the lifecycle tests (an HTTP server, a
	// memory allocator), so that they need no interpreter on the machine.
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "testprog"), "./testprog").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building testprog: %v\n%s", err, out)
		return 1
	}
	certDir, err := os.MkdirTemp("", "mo-integration-tls-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(certDir)
	if sharedCerts, err = newCertSet(certDir); err != nil {
		fmt.Fprintf(os.Stderr, "making the test certificates: %v\n", err)
		return 1
	}
	code := m.Run()
	printBenchTable()
	return code
}

// certSet is a CA and one certificate per role, as files in dir, plus the
// client side the harness uses against a cluster of these certificates: the
// server certificate (accepted by replicas and agents alike) and the CA as
// the only root.
type certSet struct {
	dir             string
	caPEM, caKeyPEM []byte
	pool            *x509.CertPool
	transport       *http.Transport // shared by the clients of this set
}

// newCertSet makes a new CA and a server, an agent and a cli certificate
// (valid for a year, for 127.0.0.1 and localhost) in dir.
func newCertSet(dir string) (*certSet, error) {
	now := time.Now()
	caPEM, caKeyPEM, err := tlsutil.NewCA(now, tlsutil.DefaultCALifetime)
	if err != nil {
		return nil, err
	}
	cs := &certSet{dir: dir, caPEM: caPEM, caKeyPEM: caKeyPEM, pool: x509.NewCertPool()}
	if !cs.pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the new CA does not parse")
	}
	if err := tlsutil.WritePair(cs.caFile(), caPEM, filepath.Join(dir, "ca-key.pem"), caKeyPEM, false); err != nil {
		return nil, err
	}
	for _, role := range tlsutil.Roles {
		certPEM, keyPEM, err := cs.issue(role, now, tlsutil.DefaultCertLifetime)
		if err != nil {
			return nil, err
		}
		if err := tlsutil.WritePair(cs.certFile(role), certPEM, cs.keyFile(role), keyPEM, false); err != nil {
			return nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(cs.certFile(tlsutil.RoleServer), cs.keyFile(tlsutil.RoleServer))
	if err != nil {
		return nil, err
	}
	cs.transport = newTransport(&tls.Config{RootCAs: cs.pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	return cs, nil
}

// issue makes a new certificate of role signed by the set's CA, valid from
// now for lifetime; it writes nothing.
func (cs *certSet) issue(role tlsutil.Role, now time.Time, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	return tlsutil.NewCert(cs.caPEM, cs.caKeyPEM, role, nil, nil, now, lifetime)
}

// caFile, certFile and keyFile name the set's files.
func (cs *certSet) caFile() string { return filepath.Join(cs.dir, "ca.pem") }

func (cs *certSet) certFile(role tlsutil.Role) string {
	return filepath.Join(cs.dir, string(role)+".pem")
}

func (cs *certSet) keyFile(role tlsutil.Role) string {
	return filepath.Join(cs.dir, string(role)+"-key.pem")
}

// flags are the --tls-* flags of a process of role; none for a nil set
// (plaintext).
func (cs *certSet) flags(role tlsutil.Role) []string {
	if cs == nil {
		return nil
	}
	return []string{"--tls-ca", cs.caFile(), "--tls-cert", cs.certFile(role), "--tls-key", cs.keyFile(role)}
}

// env is the CLI's SCHEDULER_TLS_* environment for the cli certificate;
// none for a nil set.
func (cs *certSet) env() []string {
	if cs == nil {
		return nil
	}
	return []string{tlsutil.EnvCA + "=" + cs.caFile(), tlsutil.EnvCert + "=" + cs.certFile(tlsutil.RoleCLI), tlsutil.EnvKey + "=" + cs.keyFile(tlsutil.RoleCLI)}
}

// client is a JSON client of a cluster of this set, speaking https with the
// server certificate; plaintext for a nil set.
func (cs *certSet) client(token string) *client {
	if cs == nil {
		return &client{http: &http.Client{Timeout: 20 * time.Second, Transport: plainTransport}, token: token, scheme: "http"}
	}
	return &client{http: &http.Client{Timeout: 20 * time.Second, Transport: cs.transport}, token: token, scheme: "https"}
}

// defaultCerts is the certificate set of a cluster that did not choose: the
// shared one, or none when MO_TEST_TLS=0.
func defaultCerts() *certSet {
	if tlsByDefault {
		return sharedCerts
	}
	return nil
}

// plainTransport is the transport of every plaintext client; it keeps
// enough idle connections for the benchmarks' 16 concurrent clients.
var plainTransport = newTransport(nil)

// newTransport is an HTTP transport that speaks TLS with cfg, or plaintext
// when cfg is nil.
func newTransport(cfg *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
}

// cleanEnv is the test's environment without SCHEDULER_TLS_*, so that only
// what a test passes decides whether a process speaks TLS.
func cleanEnv() []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SCHEDULER_TLS_") {
			out = append(out, e)
		}
	}
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// proc is one started process, killed by PID when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t testing.TB, name, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL to the process (and its group) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// term sends SIGTERM and waits up to d for a clean exit, then kills.
func (p *proc) term(d time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s did not exit within %s after SIGTERM", p.name, d)
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client is a small JSON client of the scheduler or agent API, over https
// or plaintext HTTP.
type client struct {
	http   *http.Client
	token  string
	scheme string // "https" or "http"
}

// newClient is a client of a cluster made by newTestCluster: https with the
// shared certificates, or plaintext under MO_TEST_TLS=0. A client of a
// cluster that chose its mode comes from tc.newClient.
func newClient(token string) *client { return defaultCerts().client(token) }

// plainClient is a client that speaks plaintext HTTP.
func plainClient(token string) *client { return (*certSet)(nil).client(token) }

// newTLSClient is a client that speaks https with cfg, on a transport of its
// own.
func newTLSClient(token string, cfg *tls.Config) *client {
	return &client{http: &http.Client{Timeout: 20 * time.Second, Transport: newTransport(cfg)}, token: token, scheme: "https"}
}

// clientTLSFiles is the client side of mutual TLS from files: the CA as the
// only root, the certificate and key as the client certificate.
func clientTLSFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate in it", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// url is the URL of path on address in the client's scheme.
func (c *client) url(address, path string) string { return c.scheme + "://" + address + path }

// call makes a request and returns the status and body.
func (c *client) call(method, address, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.url(address, path), rd)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getJSON GETs path and decodes a 200 answer into out.
func (c *client) getJSON(address, path string, out any) error {
	code, b, err := c.call("GET", address, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s%s: %d %s", address, path, code, b)
	}
	return json.Unmarshal(b, out)
}

// replica is one scheduler process of a test cluster.
type replica struct {
	id, http, raft, data string
	proc                 *proc
}

// testCluster is a set of scheduler replicas and agents for one test.
type testCluster struct {
	t        testing.TB
	dir      string
	token    string
	replicas []*replica
	agents   []*agentProc
	c        *client
	extra    []string // extra flags for every replica
	certs    *certSet // the cluster's certificates; nil: plaintext
	mu       sync.Mutex
}

// agentProc is one agent process.
type agentProc struct {
	id, listen, data string
	proc             *proc
}

// newTestCluster is a cluster on mutual TLS with the shared certificates,
// or in plaintext under MO_TEST_TLS=0; extra flags go to every replica.
func newTestCluster(t testing.TB, extra ...string) *testCluster {
	return newTestClusterWith(t, defaultCerts(), extra...)
}

// newPlainTestCluster is a cluster in plaintext whatever MO_TEST_TLS says.
func newPlainTestCluster(t testing.TB, extra ...string) *testCluster {
	return newTestClusterWith(t, nil, extra...)
}

// newTestClusterWith is a cluster on mutual TLS with certs, or in plaintext
// when certs is nil.
func newTestClusterWith(t testing.TB, certs *certSet, extra ...string) *testCluster {
	dir := t.TempDir()
	token := "test-token-" + strconv.Itoa(os.Getpid())
	tc := &testCluster{t: t, dir: dir, token: token, c: certs.client(token), extra: extra, certs: certs}
	t.Cleanup(tc.dumpLogs) // runs after the processes are killed, before dir is removed
	return tc
}

// newClient is a client of this cluster: https when it speaks TLS.
func (tc *testCluster) newClient(token string) *client { return tc.certs.client(token) }

// tlsOn reports whether the cluster speaks mutual TLS.
func (tc *testCluster) tlsOn() bool { return tc.certs != nil }

// cliEnv is the environment of a CLI process run against the cluster: the
// test's own without SCHEDULER_TLS_*, the cli certificate when the cluster
// speaks TLS, then extra.
func (tc *testCluster) cliEnv(extra ...string) []string {
	return append(append(cleanEnv(), tc.certs.env()...), extra...)
}

// cliTLSFlags are the --tls-* flags of a CLI process started with startProc
// (the cli certificate), or none in plaintext.
func (tc *testCluster) cliTLSFlags() []string { return tc.certs.flags(tlsutil.RoleCLI) }

// startReplicas starts n replicas (the first bootstraps, the others join)
// and waits until all are voters under one leader.
func (tc *testCluster) startReplicas(n int) {
	tc.t.Helper()
	for i := 1; i <= n; i++ {
		tc.replicas = append(tc.replicas, &replica{
			id: "s" + strconv.Itoa(i), http: addr(freePort(tc.t)), raft: addr(freePort(tc.t)),
			data: filepath.Join(tc.dir, "s"+strconv.Itoa(i)),
		})
	}
	for i, r := range tc.replicas {
		var flags []string
		if i == 0 {
			flags = []string{"--bootstrap"}
		} else {
			flags = []string{"--join", strings.Join(tc.httpAddrs(), ",")}
		}
		tc.startReplica(r, flags...)
	}
	tc.waitMembers(n)
}

func (tc *testCluster) httpAddrs() []string {
	var out []string
	for _, r := range tc.replicas {
		out = append(out, r.http)
	}
	return out
}

// startReplica starts (or restarts) one replica's process.
func (tc *testCluster) startReplica(r *replica, flags ...string) {
	args := append([]string{"serve", "--id", r.id, "--http", r.http, "--raft", r.raft, "--data", r.data, "--token", tc.token, "--log-level", "debug"}, flags...)
	args = append(args, tc.extra...)
	args = append(args, tc.certs.flags(tlsutil.RoleServer)...)
	r.proc = startProc(tc.t, r.id, filepath.Join(tc.dir, r.id+".log"), "scheduler", args...)
}

// status returns a replica's view of the cluster.
func (tc *testCluster) status(address string) (api.ClusterStatus, error) {
	var st api.ClusterStatus
	err := tc.c.getJSON(address, "/cluster/status", &st)
	return st, err
}

// waitMembers waits until a leader reports n voters and each has its HTTP address.
func (tc *testCluster) waitMembers(n int) {
	tc.t.Helper()
	waitFor(tc.t, 30*time.Second, fmt.Sprintf("%d voters with a leader", n), func() bool {
		for _, r := range tc.replicas {
			if r.proc == nil || !r.proc.alive() {
				continue
			}
			st, err := tc.status(r.http)
			if err != nil || st.Leader.ID == "" {
				continue
			}
			voters := 0
			for _, x := range st.Replicas {
				if x.Voter && x.HTTP != "" {
					voters++
				}
			}
			return voters == n
		}
		return false
	})
}

// leader returns the replica that leads now, waiting for one.
func (tc *testCluster) leader() *replica {
	tc.t.Helper()
	var out *replica
	waitFor(tc.t, 30*time.Second, "a leader", func() bool {
		for _, r := range tc.replicas {
			if r.proc == nil || !r.proc.alive() {
				continue
			}
			var s struct {
				State string `json:"state"`
			}
			if tc.c.getJSON(r.http, "/cluster/self", &s) == nil && s.State == "leader" {
				out = r
				return true
			}
		}
		return false
	})
	return out
}

// followers returns the live replicas other than the leader.
func (tc *testCluster) followers() []*replica {
	l := tc.leader()
	var out []*replica
	for _, r := range tc.replicas {
		if r != l && r.proc != nil && r.proc.alive() {
			out = append(out, r)
		}
	}
	return out
}

// cli runs the scheduler CLI and returns its stdout, stderr and exit code.
func (tc *testCluster) cli(args ...string) (string, string, int) {
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), args...)
	cmd.Env = tc.cliEnv("SCHEDULER_TOKEN="+tc.token, "SCHEDULER_ADDR="+strings.Join(tc.httpAddrs(), ","))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tc.t.Fatalf("running CLI: %v", err)
	}
	return out.String(), errb.String(), code
}

// submit posts a workload through the given replica and returns its IDs,
// retrying for a while on 503 (an election or a leader still establishing
// itself), as the CLI does.
func (tc *testCluster) submit(address string, req api.SubmitRequest) ([]string, error) {
	code, b, err := tc.c.call("POST", address, "/workloads", req)
	for deadline := time.Now().Add(10 * time.Second); err == nil && code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		code, b, err = tc.c.call("POST", address, "/workloads", req)
	}
	if err != nil {
		return nil, err
	}
	if code != http.StatusCreated {
		return nil, fmt.Errorf("submit: %d %s", code, b)
	}
	var resp api.SubmitResponse
	err = json.Unmarshal(b, &resp)
	return resp.IDs, err
}

// stateOf returns a replica's own copy of the state (stale read).
func (tc *testCluster) stateOf(address string) (map[string]any, error) {
	var st map[string]any
	err := tc.c.getJSON(address, "/state?stale=true", &st)
	return st, err
}

// dumpLogs prints the process logs when a test failed.
func (tc *testCluster) dumpLogs() {
	if !tc.t.Failed() {
		return
	}
	entries, _ := filepath.Glob(filepath.Join(tc.dir, "*.log"))
	keep := os.Getenv("MO_TEST_LOGS") // a folder to keep the whole logs of failed tests in
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		if keep != "" {
			dst := filepath.Join(keep, strings.ReplaceAll(tc.t.Name(), "/", "_"))
			if os.MkdirAll(dst, 0o755) == nil {
				_ = os.WriteFile(filepath.Join(dst, filepath.Base(e)), b, 0o644)
			}
		}
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		tc.t.Logf("==== %s (tail)\n%s", filepath.Base(e), b)
	}
}
