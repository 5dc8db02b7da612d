package tlsutil

import (
	"flag"
	"os"
)

// Environment variables of the CLI's TLS files.
const (
	EnvCA   = "SCHEDULER_TLS_CA"
	EnvCert = "SCHEDULER_TLS_CERT"
	EnvKey  = "SCHEDULER_TLS_KEY"
)

// AddFlags adds --tls-ca, --tls-cert and --tls-key to fs, filling f. With
// fromEnv (the CLI) their defaults come from SCHEDULER_TLS_CA,
// SCHEDULER_TLS_CERT and SCHEDULER_TLS_KEY.
func AddFlags(fs *flag.FlagSet, f *Files, fromEnv bool) {
	var ca, cert, key string
	env := ""
	if fromEnv {
		ca, cert, key = os.Getenv(EnvCA), os.Getenv(EnvCert), os.Getenv(EnvKey)
		env = " ($" + EnvCA + ")"
	}
	fs.StringVar(&f.CA, "tls-ca", ca, "cluster CA certificate `FILE`: turns on mutual TLS"+env)
	if fromEnv {
		env = " ($" + EnvCert + ")"
	}
	fs.StringVar(&f.Cert, "tls-cert", cert, "this process's TLS certificate `FILE` (made by scheduler tls cert create)"+env)
	if fromEnv {
		env = " ($" + EnvKey + ")"
	}
	fs.StringVar(&f.Key, "tls-key", key, "the key `FILE` of --tls-cert"+env)
}
