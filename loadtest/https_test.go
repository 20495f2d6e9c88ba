package loadtest

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
)

// The generator loads an https target whose certificate chains to
// Config.CAFile, every order created; without it the TLS check refuses the
// same target.
func TestHTTPSTargetWithCAFile(t *testing.T) {
	ca := testcert.NewCA(t, "loadtest")
	pair := ca.Issue(t, "orderflow", "127.0.0.1")
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.TLS.CertFile, c.Ingest.TLS.KeyFile = pair.CertFile, pair.KeyFile
	}))
	res, _ := mustRun(t, Config{Target: in.URL, CAFile: ca.File, Conns: 2, Duration: time.Second, RunID: "https1"})
	if c := res.Report.Counts; c.Requests == 0 || c.ByStatus["201"] != c.Requests {
		t.Errorf("https with the CA: %d requests, by status %v; want every one answered 201", c.Requests, c.ByStatus)
	}
	res, _ = mustRun(t, Config{Target: in.URL, Conns: 1, Duration: 300 * time.Millisecond, RunID: "https2"})
	if c := res.Report.Counts; c.Requests == 0 || c.ByStatus["transport_error"] != c.Requests {
		t.Errorf("https without the CA: %d requests, by status %v; want the certificate refused on each", c.Requests, c.ByStatus)
	}
}
