package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
)

// Against an https target that requires an API key, every scenario's
// requests (single orders with Idempotency-Key, NDJSON bulk, the status
// scenario's bulk preparation and its status changes, the Go client's
// Batcher) carry Config.APIKey and trust Config.CAFile: nothing is answered
// 401 or fails its handshake, and what was acknowledged is in PostgreSQL.
// Without the key every request is a 401.
func TestAPIKeyAndCAFileOnEveryRequest(t *testing.T) {
	const key = "loadtest-key-0123456789"
	ca := testcert.NewCA(t, "loadtest")
	pair := ca.Issue(t, "orderflow", "127.0.0.1")
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.TLS.CertFile, c.Ingest.TLS.KeyFile = pair.CertFile, pair.KeyFile
		c.Ingest.APIKeys = []ingest.APIKey{{Name: "loadtest", Key: key}}
	}))
	for _, sc := range []string{ScenarioDuplicates, ScenarioBatches, ScenarioStatus, ScenarioBatcher} {
		res, _ := mustRun(t, Config{Target: in.URL, CAFile: ca.File, APIKey: key, Scenario: sc, Conns: 2, MaxRequests: 30,
			BatchSize: 10, StatusOrders: 20, Duration: 30 * time.Second, RunID: "key-" + sc})
		c := res.Report.Counts
		if c.Requests == 0 || c.Acked != c.Requests || c.ByStatus["401"] != 0 || c.TransportErrors != 0 {
			t.Fatalf("%s with the key: counts %+v; want every request acknowledged", sc, c)
		}
		rc, err := ReconcileStore(context.Background(), in.DatabaseURL, res)
		if err != nil {
			t.Fatal(err)
		}
		if !rc.OK() || rc.Acked == 0 {
			t.Fatalf("%s: reconcile %+v; want every acknowledged order stored", sc, rc)
		}
	}
	res, _ := mustRun(t, Config{Target: in.URL, CAFile: ca.File, Conns: 1, MaxRequests: 5, Duration: 30 * time.Second, RunID: "nokey"})
	if c := res.Report.Counts; c.Requests != 5 || c.ByStatus["401"] != 5 {
		t.Fatalf("without the key: counts %+v; want 5 requests answered 401", c)
	}
}

func TestAPIKeyValidatedNotReported(t *testing.T) {
	if _, err := New(Config{APIKey: "has space-0123456789"}); err == nil || !strings.Contains(err.Error(), "API key") {
		t.Fatalf("New with a key holding a space: got %v; want an API key error", err)
	}
	g, err := New(Config{APIKey: "secret-key-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Config().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret-key") {
		t.Fatalf("report config %s holds the API key", b)
	}
}
