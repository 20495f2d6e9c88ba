package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
	"github.com/orderflow/orderflow/loadtest"
)

// backends starts a fresh database with a minimal orders table, an
// in-process broker and a fake order server that stores and publishes every
// order it acknowledges into them, except the one whose id ends in forget
// (when set): that one it acknowledges without storing or publishing.
func backends(t *testing.T, forget string) (srv *enginetest.FakeServer, dbURL, brokers string) {
	t.Helper()
	dbURL = pgtest.New(t)
	pgtest.Exec(t, dbURL, `CREATE TABLE orders (id text PRIMARY KEY)`)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	broker := enginetest.NewBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	// The fake calls OnCreate one call at a time, so one pgx.Conn (not for
	// concurrent use) serves it.
	store := func(ctx context.Context, id string) int {
		if forget != "" && strings.HasSuffix(id, forget) {
			return 0
		}
		if _, err := db.Exec(ctx, `INSERT INTO orders (id) VALUES ($1)`, id); err != nil {
			return http.StatusServiceUnavailable
		}
		rec := &kgo.Record{Topic: enginetest.Topic, Key: []byte(id), Value: []byte(`{}`),
			Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("order.created")}, {Key: "ce_id", Value: []byte(id + "/1")}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return http.StatusInternalServerError
		}
		return 0
	}
	srv = enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.OnCreate = store })
	return srv, dbURL, strings.Join(broker.ListenAddrs(), ",")
}

func noEnv(string) string { return "" }

func TestRunHelpAndBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, noEnv, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run(-h): got %v; want flag.ErrHelp", err)
	}
	if !strings.Contains(errOut.String(), "-reconcile-timeout") {
		t.Fatalf("run(-h) usage does not list -reconcile-timeout:\n%s", errOut.String())
	}
	f := func(args []string, want string) {
		t.Helper()
		err := run(context.Background(), args, noEnv, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("run(%q): got %v; want an error containing %q", args, err, want)
		}
	}
	f([]string{"-mode", "burst"}, "mode")
	f([]string{"-mode", "open"}, "rate")
	f([]string{"-target", "http://192.0.2.1:8080"}, "loopback")
	f([]string{"-duration", "soon"}, "invalid value")
	f([]string{"extra"}, "unexpected arguments")
}

func TestParseFlagsEnvAndLists(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://db/x", "KAFKA_BROKERS": "k1:9092,k2:9092", "KAFKA_TOPIC": "t"}
	cfg, o, err := parseFlags([]string{"-skus", "a, b,,c", "-kafka-topic", "flagwins", "-conns", "7", "-scenario", "duplicates"},
		func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if strings.Join(cfg.SKUs, "|") != "a|b|c" || cfg.Conns != 7 || cfg.Scenario != loadtest.ScenarioDuplicates {
		t.Fatalf("config %+v; want skus a|b|c, 7 conns, duplicates", cfg)
	}
	if o.databaseURL != "postgres://db/x" || o.kafkaBrokers != "k1:9092,k2:9092" || o.kafkaTopic != "flagwins" || !o.reconcile || o.reconcileTimeout != 30*time.Second {
		t.Fatalf("options %+v; want env defaults, the flag winning for the topic, reconcile on with 30s", o)
	}
}

func TestRunWritesReport(t *testing.T) {
	srv := enginetest.StartFake(t, nil)
	dir := t.TempDir()
	var out bytes.Buffer
	// Charts off: rendering PNGs under -race takes seconds (the smoke test
	// checks the charts).
	args := []string{"-target", srv.URL, "-conns", "2", "-duration", "300ms", "-reconcile=false", "-admin", "",
		"-run-id", "t1", "-out", filepath.Join(dir, "<runid>.json"), "-charts=false"}
	// The run must stop by itself; a minute bounds the wait, not how long
	// it may take on a busy machine.
	errc := make(chan error, 1)
	go func() { errc <- run(context.Background(), args, noEnv, &out, &bytes.Buffer{}) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run(%q): %v\n%s", args, err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("run(%q) still running after a minute; want it to stop by itself after 300ms", args)
	}
	rep, err := loadtest.ReadReport(filepath.Join(dir, "t1.json"))
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	if rep.RunID != "t1" || rep.Config.Conns != 2 || rep.Config.Duration != 300*time.Millisecond || rep.Counts.Acked == 0 ||
		rep.Counts.Acked != rep.Counts.ByStatus["201"] || len(rep.Series) == 0 || rep.Latency.P99Micros == 0 || rep.Reconcile != nil {
		t.Fatalf("report %+v; want run t1, 2 conns, 300ms, acked orders with latencies and a series, no reconciliation", rep)
	}
	for _, want := range []string{"run t1: closed loop", "latency (2xx", "report written to"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunReconciles(t *testing.T) {
	srv, dbURL, brokers := backends(t, "")
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"-target", srv.URL, "-conns", "2", "-max-requests", "100", "-duration", "20s", "-admin", "",
		"-database-url", dbURL, "-kafka-brokers", brokers, "-reconcile-timeout", "20s", "-run-id", "ok1", "-out", filepath.Join(dir, "r.json")}
	if err := run(context.Background(), args, noEnv, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("run(%q): %v\n%s", args, err, out.String())
	}
	rep, err := loadtest.ReadReport(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	if rc := rep.Reconcile; rc == nil || !rc.OK() || rc.Acked != 100 {
		t.Fatalf("reconcile %+v; want OK over 100 acked orders", rep.Reconcile)
	}
	if !strings.Contains(out.String(), "reconcile OK") {
		t.Fatalf("summary lacks the reconciliation verdict:\n%s", out.String())
	}
}

func TestRunFailsWhenAnAckedOrderIsMissing(t *testing.T) {
	// The server acknowledges order 7 without storing or publishing it.
	srv, dbURL, brokers := backends(t, "_7")
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"-target", srv.URL, "-conns", "1", "-max-requests", "20", "-duration", "20s", "-admin", "",
		"-database-url", dbURL, "-kafka-brokers", brokers, "-reconcile-timeout", "1s", "-run-id", "bad1", "-out", filepath.Join(dir, "r.json")}
	err := run(context.Background(), args, noEnv, &out, &bytes.Buffer{})
	if !errors.Is(err, loadtest.ErrReconcile) {
		t.Fatalf("run(%q): got %v; want loadtest.ErrReconcile\n%s", args, err, out.String())
	}
	rep, rerr := loadtest.ReadReport(filepath.Join(dir, "r.json"))
	if rerr != nil {
		t.Fatalf("read report: %v", rerr)
	}
	rc := rep.Reconcile
	if rc == nil || rc.LostCount != 1 || rc.UnpublishedCount != 1 || rc.Lost[0] != "lt_bad1_7" || rc.Unpublished[0] != "lt_bad1_7" {
		t.Fatalf("reconcile %+v; want lt_bad1_7 lost and unpublished", rc)
	}
	t.Logf("summary:\n%s", out.String())
	if !strings.Contains(out.String(), "reconcile FAILED") {
		t.Fatalf("summary lacks the failure:\n%s", out.String())
	}
}

func TestTargetsOf(t *testing.T) {
	cfg, o, err := parseFlags([]string{"-targets", "a=http://127.0.0.1:1,b=http://127.0.0.1:2", "-target-opt", "a.admin=http://127.0.0.1:3",
		"-target-opt", "b.reconcile=false", "-target-opt", "b.kafka-brokers=k1:1,k2:2", "-database-url", "postgres://x/y"}, noEnv, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ts, err := targetsOf(cfg, o)
	if err != nil {
		t.Fatalf("targetsOf: %v", err)
	}
	if len(ts) != 2 || ts[0].name != "a" || ts[0].admin != "http://127.0.0.1:3" || !ts[0].reconcile || ts[0].backend.DatabaseURL != "postgres://x/y" ||
		ts[1].admin != "" || ts[1].reconcile || strings.Join(ts[1].backend.Brokers, "|") != "k1:1|k2:2" {
		t.Fatalf("targets %+v; want a with its admin and the default database, b without admin or reconciliation, with its brokers", ts)
	}
	f := func(args []string, want string) {
		t.Helper()
		cfg, o, err := parseFlags(args, noEnv, &bytes.Buffer{})
		if err == nil {
			_, err = targetsOf(cfg, o)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%q: got %v; want an error containing %q", args, err, want)
		}
	}
	f([]string{"-targets", "A=http://x"}, "-targets")
	f([]string{"-targets", "a=http://x,a=http://y"}, "twice")
	f([]string{"-targets", "a=http://x", "-target-opt", "b.admin=x"}, "-target-opt")
	f([]string{"-targets", "a=http://x", "-target-opt", "a.color=x"}, "unknown key")
	f([]string{"-target-opt", "a.admin=x"}, "needs -targets")
	f([]string{"-sweep", "10,x"}, "-sweep")
}
