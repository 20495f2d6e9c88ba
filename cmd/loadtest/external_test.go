package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
	"github.com/orderflow/orderflow/loadtest"
)

// The CLI against a deployment it did not start, as a user runs it
// against staging: https with a private CA (-ca-file) and an API key, from
// ORDERFLOW_LOADTEST_API_KEY or -api-key. Every request is acknowledged,
// the database holds exactly the acknowledged orders under the run id's
// prefix, and reconciliation passes, the status scenario's final states
// included. Without the key the run fails, saying why.
func TestRunAgainstExternalHTTPSTargetWithKey(t *testing.T) {
	const key = "loadtest-cli-key-0123456789"
	ca := testcert.NewCA(t, "loadtest")
	pair := ca.Issue(t, "orderflow", "127.0.0.1")
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.TLS.CertFile, c.Ingest.TLS.KeyFile = pair.CertFile, pair.KeyFile
		c.Ingest.APIKeys = []ingest.APIKey{{Name: "loadtest", Key: key}}
	}))
	dir := t.TempDir()
	common := []string{"-target", in.URL, "-ca-file", ca.File, "-admin", in.AdminURL, "-conns", "4", "-duration", "30s",
		"-database-url", in.DatabaseURL, "-kafka-brokers", strings.Join(in.Brokers, ","), "-kafka-topic", enginetest.Topic,
		"-reconcile-timeout", "30s", "-charts=false", "-settle", "0", "-postgres-cpu=false"}
	keyEnv := func(k string) string {
		if k == apiKeyEnv {
			return key
		}
		return ""
	}
	runOK := func(runID string, getenv func(string) string, args ...string) *loadtest.Report {
		t.Helper()
		out := filepath.Join(dir, runID+".json")
		args = append(append(append([]string(nil), common...), "-run-id", runID, "-out", out), args...)
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("loadtest %q: %v\n%s%s", args, err, stdout.String(), stderr.String())
		}
		rep, err := loadtest.ReadReport(out)
		if err != nil {
			t.Fatal(err)
		}
		if rc := rep.Reconcile; rc == nil || !rc.OK() {
			t.Fatalf("%s: reconcile %+v; want OK\n%s", runID, rep.Reconcile, stdout.String())
		}
		return rep
	}

	rep := runOK("ext1", keyEnv, "-max-requests", "200")
	if c := rep.Counts; c.Requests != 200 || c.ByStatus["201"] != 200 || rep.Reconcile.Acked != 200 {
		t.Fatalf("ext1: counts %+v, reconciled %d; want 200 requests, each 201, 200 reconciled", c, rep.Reconcile.Acked)
	}
	if n := countOrders(t, in.DatabaseURL, "lt_ext1_"); n != 200 {
		t.Fatalf("ext1: %d orders lt_ext1_* in the database; want 200", n)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ext1.json")); err != nil || bytes.Contains(b, []byte(key)) {
		t.Fatalf("ext1 report: read error %v, or it holds the API key", err)
	}

	rep = runOK("ext2", noEnv, "-api-key", key, "-scenario", loadtest.ScenarioStatus, "-status-orders", "30", "-max-requests", "60")
	if c := rep.Counts; c.Updates.Acked != 60 || rep.Reconcile.StateChecked == 0 {
		t.Fatalf("ext2: counts %+v, reconcile %+v; want 60 status changes acknowledged and final states checked", c, rep.Reconcile)
	}
	// 60 changes move 15 of the 30 prepared orders to delivered: no
	// worker runs out and creates more.
	if n := countOrders(t, in.DatabaseURL, "lt_ext2_"); n != 30 {
		t.Fatalf("ext2: %d orders lt_ext2_* in the database; want the 30 prepared", n)
	}

	args := append(append([]string(nil), common...), "-run-id", "ext3", "-out", "", "-max-requests", "5", "-conns", "1")
	var stdout bytes.Buffer
	err := run(context.Background(), args, noEnv, &stdout, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "none of 5 requests was acknowledged") || !strings.Contains(err.Error(), "-api-key") {
		t.Fatalf("loadtest without the key: got %v; want an error saying none of 5 was acknowledged and naming -api-key\n%s", err, stdout.String())
	}
}

func countOrders(t *testing.T, dbURL, prefix string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders WHERE id LIKE $1`, prefix+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A target on another machine: this machine's admin listener, database
// and broker (the defaults) are not its, so without -admin the server is
// not scraped, and without -database-url and -kafka-brokers nothing is
// reconciled (nor is this machine's PostgreSQL CPU reported); given
// explicitly, they are used.
func TestRemoteTargetDefaults(t *testing.T) {
	targets := func(args ...string) []target {
		t.Helper()
		cfg, o, err := parseFlags(args, noEnv, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := targetsOf(cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		remoteDefaults(ts, &bytes.Buffer{})
		return ts
	}
	remote := "https://staging.example"
	ts := targets("-target", remote, "-allow-remote")
	if ts[0].admin != "" || ts[0].reconcile || ts[0].backend.DatabaseURL != "" {
		t.Fatalf("remote with defaults: %+v; want no admin, no reconciliation, no database", ts[0])
	}
	ts = targets("-target", remote, "-allow-remote", "-admin", "http://10.0.0.1:6060", "-database-url", "postgres://db/x", "-kafka-brokers", "k:9092")
	if ts[0].admin != "http://10.0.0.1:6060" || !ts[0].reconcile || ts[0].backend.DatabaseURL != "postgres://db/x" {
		t.Fatalf("remote with its backends given: %+v; want them used and reconciled", ts[0])
	}
	ts = targets("-target", remote, "-allow-remote", "-database-url", "postgres://db/x")
	if ts[0].reconcile || ts[0].backend.DatabaseURL != "postgres://db/x" {
		t.Fatalf("remote with only its database: %+v; want no reconciliation (the brokers are missing), the database kept", ts[0])
	}
	ts = targets("-targets", "a="+remote+",b=http://127.0.0.1:8080", "-allow-remote", "-target-opt", "a.database-url=postgres://db/x", "-target-opt", "a.kafka-brokers=k:9092")
	if !ts[0].reconcile || !ts[1].reconcile {
		t.Fatalf("-targets: %+v; want a reconciled (its backends given per target), b (loopback) reconciled", ts)
	}
	ts = targets("-target", "http://127.0.0.1:8080")
	if ts[0].admin != "http://127.0.0.1:6060" || !ts[0].reconcile || ts[0].backend.DatabaseURL == "" {
		t.Fatalf("loopback with defaults: %+v; want the default admin, database and reconciliation", ts[0])
	}

	// Through run: an unreachable remote target is not reconciled against
	// this machine's database (which would report its orders lost), and
	// a run that acknowledged nothing fails, saying why.
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-target", "http://192.0.2.1:9", "-allow-remote", "-conns", "1", "-max-requests", "1",
		"-request-timeout", "300ms", "-duration", "5s", "-out", "", "-run-id", "remote1"}, noEnv, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "not reconciled") || errors.Is(err, loadtest.ErrReconcile) ||
		err == nil || !strings.Contains(err.Error(), "none of 1 requests was acknowledged") {
		t.Fatalf("run against an unreachable remote target: err %v, stderr %q; want not reconciled and none acknowledged\n%s", err, stderr.String(), stdout.String())
	}
}
