package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// Usage lines of the tls subcommands.
const (
	tlsCAUsage   = "tls ca create [--dir DIR] [--force] [--days N]"
	tlsCertUsage = "tls cert create --role server|agent|cli [--ip IP]... [--dns NAME]... [--dir DIR] [--ca FILE] [--ca-key FILE] [--force] [--days N]"
)

// maxTLSDays bounds --days: a century is more than any certificate needs.
const maxTLSDays = 100 * 365

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		*l = append(*l, strings.TrimSpace(s))
	}
	return nil
}

// tlsOptions are the flags of the tls subcommands.
type tlsOptions struct {
	dir, role, ca, caKey string
	force                bool
	days                 int
	ips, dns             listFlag
}

// addTLSFlags defines the flags of tls ca create (sub "ca"), tls cert
// create (sub "cert"), or of both for tls -h (sub "").
func addTLSFlags(fs *flag.FlagSet, sub string) *tlsOptions {
	o := &tlsOptions{}
	switch sub {
	case "ca":
		fs.StringVar(&o.dir, "dir", ".", "write ca.pem and ca-key.pem into `DIR` (made if missing)")
		fs.IntVar(&o.days, "days", int(tlsutil.DefaultCALifetime/(24*time.Hour)), "the CA is valid for `N` days")
		fs.BoolVar(&o.force, "force", false, "overwrite ca.pem and ca-key.pem if they exist (every certificate it signed is then useless)")
		return o
	case "cert":
		fs.StringVar(&o.dir, "dir", ".", "write ROLE.pem and ROLE-key.pem into `DIR` (made if missing), and read the CA from it")
		fs.IntVar(&o.days, "days", int(tlsutil.DefaultCertLifetime/(24*time.Hour)), "the certificate is valid for `N` days, and never past the CA")
		fs.BoolVar(&o.force, "force", false, "overwrite ROLE.pem and ROLE-key.pem if they exist")
	default:
		fs.StringVar(&o.dir, "dir", ".", "the `DIR` to write the files into (made if missing), and where cert create reads the CA")
		fs.IntVar(&o.days, "days", 0, "validity in `N` days (default 1825 for ca create, 365 for cert create; a certificate never outlives its CA)")
		fs.BoolVar(&o.force, "force", false, "overwrite the files if they exist")
	}
	fs.StringVar(&o.role, "role", "", "the certificate's `ROLE`: server (a replica), agent (a node agent) or cli (an operator)")
	fs.Var(&o.ips, "ip", "an extra `IP` address to include (127.0.0.1 and ::1 always are); repeat it or comma-separate")
	fs.Var(&o.dns, "dns", "an extra DNS `NAME` to include (the role name and localhost always are); repeat it or comma-separate")
	fs.StringVar(&o.ca, "ca", "", "the CA certificate `FILE` (default DIR/ca.pem)")
	fs.StringVar(&o.caKey, "ca-key", "", "the CA key `FILE` (default DIR/ca-key.pem)")
	return o
}

// runTLS makes the cluster CA and the certificates of each role:
// tls ca create | tls cert create.
func runTLS(args []string) int {
	if len(args) == 0 {
		tlsUsage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		tlsUsage(os.Stderr)
		return exitOK
	case "ca", "cert":
	default:
		fmt.Fprintf(os.Stderr, "scheduler tls: unknown subcommand %q\n\n", escapeText(args[0]))
		tlsUsage(os.Stderr)
		return exitUsage
	}
	group := args[0]
	run := runTLSCACreate
	if group == "cert" {
		run = runTLSCertCreate
	}
	if len(args) < 2 {
		fmt.Fprintf(os.Stderr, "scheduler tls %s: want 'create'\n\n", group)
		tlsUsage(os.Stderr)
		return exitUsage
	}
	switch args[1] {
	case "create":
		return run(args[2:])
	case "-h", "-help", "--help", "help":
		return run([]string{"-h"})
	}
	fmt.Fprintf(os.Stderr, "scheduler tls %s: unknown subcommand %q (want create)\n\n", group, escapeText(args[1]))
	tlsUsage(os.Stderr)
	return exitUsage
}

// tlsUsage prints the tls subcommands, every flag and the examples.
func tlsUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: scheduler %s\n       scheduler %s\n\n", tlsCAUsage, tlsCertUsage)
	fmt.Fprint(w, "Makes the cluster's CA and the certificates of replicas (server), node agents\n(agent) and operators (cli). Peers are checked by the role in their certificate,\nnot by address.\n\n")
	fmt.Fprint(w, "Subcommands:\n")
	fmt.Fprint(w, "  ca create    make the cluster CA: DIR/ca.pem and DIR/ca-key.pem\n")
	fmt.Fprint(w, "  cert create  make a certificate signed by the CA: DIR/ROLE.pem and DIR/ROLE-key.pem\n\n")
	fmt.Fprint(w, "Flags:\n")
	fs := flag.NewFlagSet("tls", flag.ContinueOnError)
	fs.SetOutput(w)
	addTLSFlags(fs, "")
	fs.PrintDefaults()
	fmt.Fprint(w, "\nca create takes only --dir, --days and --force. Run 'scheduler tls ca create -h'\nor 'scheduler tls cert create -h' for one subcommand.\n")
	printExample(w, "tls")
}

// parseTLSDays reads --days as a lifetime.
func parseTLSDays(days int) (time.Duration, error) {
	if days < 1 || days > maxTLSDays {
		return 0, usageError(fmt.Sprintf("--days must be from 1 to %d, got %d", maxTLSDays, days))
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

func runTLSCACreate(args []string) int {
	const cmd = "tls ca create"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	o := addTLSFlags(fs, "ca")
	if code, ok := parse(fs, args, tlsCAUsage, 0); !ok {
		return code
	}
	lifetime, err := parseTLSDays(o.days)
	if err != nil {
		return fail(cmd, err)
	}
	certPath, keyPath := filepath.Join(o.dir, "ca.pem"), filepath.Join(o.dir, "ca-key.pem")
	certPEM, keyPEM, err := tlsutil.NewCA(time.Now(), lifetime)
	if err != nil {
		return fail(cmd, err)
	}
	if err := tlsutil.WritePair(certPath, certPEM, keyPath, keyPEM, o.force); err != nil {
		return fail(cmd, err)
	}
	ca, err := parseCertPEM(certPEM)
	if err != nil {
		return fail(cmd, err)
	}
	fmt.Printf("wrote %s (CA certificate: every replica, agent and operator needs it)\n", escapeText(certPath))
	fmt.Printf("wrote %s (CA key, mode 0600: keep it secret and off the nodes; it can make certificates for any role)\n", escapeText(keyPath))
	fmt.Printf("expires %s\n", ca.NotAfter.UTC().Format(time.RFC3339))
	return exitOK
}

func runTLSCertCreate(args []string) int {
	const cmd = "tls cert create"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	o := addTLSFlags(fs, "cert")
	if code, ok := parse(fs, args, tlsCertUsage, 0); !ok {
		return code
	}
	if o.role == "" {
		fmt.Fprintln(os.Stderr, "scheduler tls cert create: --role is required: server, agent or cli")
		fs.Usage()
		return exitUsage
	}
	role, err := tlsutil.ParseRole(o.role)
	if err != nil {
		return fail(cmd, usageError("--role: "+err.Error()))
	}
	lifetime, err := parseTLSDays(o.days)
	if err != nil {
		return fail(cmd, err)
	}
	var ips []net.IP
	for _, s := range o.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fail(cmd, usageError(fmt.Sprintf("--ip %q is not an IP address", s)))
		}
		ips = append(ips, ip)
	}
	for _, n := range o.dns {
		if err := tlsutil.CheckDNSName(n); err != nil {
			return fail(cmd, usageError("--dns: "+err.Error()))
		}
	}
	caPath, caKeyPath := o.ca, o.caKey
	if caPath == "" {
		caPath = filepath.Join(o.dir, "ca.pem")
	}
	if caKeyPath == "" {
		caKeyPath = filepath.Join(o.dir, "ca-key.pem")
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return fail(cmd, fmt.Errorf("reading the CA certificate: %w (make a CA with 'scheduler tls ca create', or name it with --ca)", err))
	}
	caKeyPEM, err := os.ReadFile(caKeyPath)
	if err != nil {
		return fail(cmd, fmt.Errorf("reading the CA key: %w (name it with --ca-key)", err))
	}
	now := time.Now()
	certPEM, keyPEM, err := tlsutil.NewCert(caPEM, caKeyPEM, role, ips, o.dns, now, lifetime)
	if err != nil {
		return fail(cmd, fmt.Errorf("%w (CA %s, CA key %s)", err, caPath, caKeyPath))
	}
	certPath := filepath.Join(o.dir, string(role)+".pem")
	keyPath := filepath.Join(o.dir, string(role)+"-key.pem")
	if err := tlsutil.WritePair(certPath, certPEM, keyPath, keyPEM, o.force); err != nil {
		return fail(cmd, err)
	}
	leaf, err := parseCertPEM(certPEM)
	if err != nil {
		return fail(cmd, err)
	}
	fmt.Printf("wrote %s (certificate, role %s)\n", escapeText(certPath), role)
	fmt.Printf("wrote %s (key, mode 0600)\n", escapeText(keyPath))
	expiry := "expires " + leaf.NotAfter.UTC().Format(time.RFC3339)
	if leaf.NotAfter.Before(now.Add(lifetime).Truncate(time.Second)) {
		expiry += fmt.Sprintf(" (capped at the CA's expiry, short of the %d days asked for)", o.days)
	}
	fmt.Println(expiry)
	addrs := make([]string, len(leaf.IPAddresses))
	for i, ip := range leaf.IPAddresses {
		addrs[i] = ip.String()
	}
	fmt.Printf("DNS names: %s\n", strings.Join(leaf.DNSNames, ", "))
	fmt.Printf("IPs: %s\n", strings.Join(addrs, ", "))
	return exitOK
}

// parseCertPEM reads the first certificate of a PEM block list.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
