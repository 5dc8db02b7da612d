package agent

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// watchReload reloads the TLS files on each SIGHUP until ctx is done. On
// success the client's pooled connections are closed, so that its next
// heartbeats show the new certificate; on failure the old certificates stay
// in use and the log says why. Without TLS a SIGHUP is logged and ignored
// (it no longer ends the agent).
func watchReload(ctx context.Context, store *tlsutil.Store, log hclog.Logger, client *http.Client) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if store == nil {
			log.Info("SIGHUP: TLS is off, no certificates to reload")
			continue
		}
		exp, err := store.Reload()
		if err != nil {
			log.Error("TLS reload failed; keeping the certificates in use", "error", err)
			continue
		}
		client.CloseIdleConnections()
		log.Info("TLS certificates reloaded", "expires", exp.UTC().Format(time.RFC3339), "days_left", int(time.Until(exp).Hours()/24))
	}
}
