package soak

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildBinaries builds orderflow and benchtargets into dir.
func buildBinaries(t *testing.T, dir string) (orderflow, benchtargets string) {
	t.Helper()
	orderflow, benchtargets = filepath.Join(dir, "orderflow"), filepath.Join(dir, "benchtargets")
	for bin, pkg := range map[string]string{orderflow: "./cmd/orderflow", benchtargets: "./cmd/benchtargets"} {
		//lint:ignore SA1019 the test binary runs where it was built, so the GOROOT it was built with holds the go command running this test
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return orderflow, benchtargets
}

// TestSoakShort is the soak's 60-second form, part of every test run: a
// light fixed rate (the box is shared), a 2-second warmup, four 15-second
// windows, autovacuum on. It holds the run to what cannot depend on the machine's speed:
// nothing acknowledged is lost, duplicated, phantom or unpublished; every
// window has acknowledged orders, CPU, WAL and table sizes; the outbox is
// sized and the topic counted; the summary names every target with met or
// NOT MET; the charts and the JSON report are written. Latency and CPU
// targets are printed, not asserted: on a shared machine they measure the
// neighbours.
func TestSoakShort(t *testing.T) {
	dir := t.TempDir()
	orderflow, benchtargets := buildBinaries(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	out := filepath.Join(dir, "out", "short-soak")
	rep, err := Run(ctx, Config{Orderflow: orderflow, Broker: benchtargets, Duration: 60 * time.Second, Rate: 300, Warmup: 2 * time.Second,
		Interval: 15 * time.Second, Compare: 15 * time.Second, ReconcileTimeout: time.Minute, Out: out, Progress: &progress})
	if err != nil {
		t.Fatalf("soak: %v\nprogress:\n%s", err, progress.String())
	}
	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", sum.String())
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	c := rep.Reconcile
	if c.Acked < 62*300/2 {
		// Half, not all: on a crowded machine the generator may drop some
		// (it says so); the point is that the load was really sent.
		t.Fatalf("%d orders acknowledged in 62s at 300/s; want at least half", c.Acked)
	}
	if c.TopicRecords < int64(c.Acked) || c.Trimmed == 0 || c.Foreign != 0 {
		t.Fatalf("%d events read for %d acknowledged orders, %d trimmed from the broker, %d foreign; want all read, some trimmed, none foreign",
			c.TopicRecords, c.Acked, c.Trimmed, c.Foreign)
	}
	if len(rep.Samples) != 5 || len(rep.Windows) != 4 {
		t.Fatalf("%d samples, %d windows; want 5 and 4 (every 15s of 60s, and the end)", len(rep.Samples), len(rep.Windows))
	}
	for i, w := range rep.Windows {
		if w.Acked == 0 || w.P99Micros == 0 || w.ServerCPUMicrosPerOrder <= 0 || w.PostgresCPUMicrosPerOrder <= 0 ||
			w.WALBytesPerOrder <= 0 || w.Orders.TotalBytes == 0 || w.Orders.IndexBytes == 0 || w.OrderItems.TotalBytes == 0 ||
			w.Outbox.TotalBytes == 0 || w.Events == 0 || w.SoakCPUMicrosPerOrder <= 0 || w.MachineBusy <= 0 || w.MachineBusy > 1 {
			t.Fatalf("window %d lacks a measurement: %+v", i, w)
		}
	}
	if last := rep.Samples[4]; last.Orders.TotalBytes <= rep.Samples[0].Orders.TotalBytes || last.WALBytes <= rep.Samples[0].WALBytes {
		t.Fatalf("orders size or WAL did not grow: first %+v, last %+v", rep.Samples[0], last)
	}
	if rep.First.Acked == 0 || rep.Last.Acked == 0 || rep.Last.P99Micros == 0 {
		t.Fatalf("spans not measured: first %+v last %+v", rep.First, rep.Last)
	}
	text := sum.String()
	for _, want := range []string{"p99 of the last", "server CPU per order", "outbox total size", "0 lost orders", "0 duplicated rows", "0 repeated events"} {
		if !strings.Contains(text, want) {
			t.Fatalf("summary lacks the target %q:\n%s", want, text)
		}
	}
	if len(rep.Targets) != 7 {
		t.Fatalf("%d targets; want 7", len(rep.Targets))
	}
	for _, tg := range rep.Targets {
		if !strings.Contains(text, tg.Name) {
			t.Fatalf("summary lacks %q", tg.Name)
		}
	}
	for _, f := range append([]string{out + ".json", out + "-orderflow.log", out + "-postgres.log"}, rep.Charts...) {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	if len(rep.Charts) != 7 {
		t.Fatalf("charts %v; want 7", rep.Charts)
	}
}
