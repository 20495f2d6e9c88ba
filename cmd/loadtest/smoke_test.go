package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/loadtest"
)

// TestSmokeLoadAgainstRealServer runs the load generator closed-loop with
// 16 connections against a real orderflow engine in this process (its own
// PostgreSQL database with the demo catalog, an in-process kfake broker)
// and fails on any lost, duplicated, phantom or unpublished order or wrong
// final status. It covers every scenario that writes: duplicates (new
// orders with keys plus 5% resends), batches, the create + status mix and
// the Go client's Batcher, about 13 s of load in all (4 s under -short). It asserts correctness, not
// speed: under -race on two busy cores the throughput means nothing.
func TestSmokeLoadAgainstRealServer(t *testing.T) {
	per := []time.Duration{4 * time.Second, 3 * time.Second, 3 * time.Second}
	if testing.Short() {
		per = []time.Duration{time.Second, time.Second, time.Second}
	}
	in := enginetest.Start(t)
	t.Cleanup(func() {
		if err := in.Stop(); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
	})
	dbURL, base, admin := in.DatabaseURL, in.URL, in.AdminURL
	brokers := strings.Join(in.Brokers, ",")
	dir := t.TempDir()
	common := []string{"-conns", "16", "-database-url", dbURL, "-kafka-brokers", brokers, "-kafka-topic", enginetest.Topic,
		"-reconcile-timeout", "60s", "-request-timeout", "20s", "-settle", "0"}

	f := func(name string, d time.Duration, args ...string) {
		t.Helper()
		out := filepath.Join(dir, name+".json")
		args = append(append(append([]string(nil), common...), "-duration", d.String(), "-out", out, "-run-id", "smoke-"+name), args...)
		var stdout bytes.Buffer
		if err := run(context.Background(), args, noEnv, &stdout, io.Discard); err != nil {
			t.Fatalf("loadtest %q: %v\n%s", args, err, stdout.String())
		}
		t.Logf("%s:\n%s", name, stdout.String())
	}
	f("dups", per[0], "-target", base, "-admin", admin, "-scenario", loadtest.ScenarioDuplicates)
	f("batch", per[1], "-targets", "of="+base, "-target-opt", "of.admin="+admin, "-scenario", loadtest.ScenarioBatches, "-batch-size", "50")
	f("mix", per[2], "-target", base, "-admin", admin, "-scenario", loadtest.ScenarioMix)
	f("batcher", per[2], "-target", base, "-admin", admin, "-scenario", loadtest.ScenarioBatcher)

	// Each report must show real work and a clean reconciliation.
	rep, err := loadtest.ReadReport(filepath.Join(dir, "dups.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rc := rep.Reconcile; rc == nil || !rc.OK() || rc.Acked == 0 || rep.Counts.Duplicates.Got201 != 0 {
		t.Fatalf("duplicates: reconcile %+v, duplicates %+v; want OK over some acked orders and no resend answered 201", rep.Reconcile, rep.Counts.Duplicates)
	}
	su, err := loadtest.ReadSuite(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(su.Runs) != 1 || su.Runs[0].Reconcile == nil || !su.Runs[0].Reconcile.OK() || su.Runs[0].Counts.Orders.Acked == 0 {
		t.Fatalf("batches: suite %+v; want one reconciled run with acked orders", su)
	}
	if _, err := os.Stat(filepath.Join(dir, "batch-throughput.png")); err != nil {
		t.Fatalf("batches: chart: %v", err)
	}
	rep, err = loadtest.ReadReport(filepath.Join(dir, "mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rc := rep.Reconcile; rc == nil || !rc.OK() || rc.StateChecked == 0 || rep.Counts.Updates.Acked == 0 {
		t.Fatalf("mix: reconcile %+v, updates %+v; want OK with final states checked", rep.Reconcile, rep.Counts.Updates)
	}
	rep, err = loadtest.ReadReport(filepath.Join(dir, "batcher.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rc := rep.Reconcile; rc == nil || !rc.OK() || rc.Acked == 0 {
		t.Fatalf("batcher: reconcile %+v; want OK over some acked orders", rep.Reconcile)
	}
}
