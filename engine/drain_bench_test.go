package engine_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
	"github.com/orderflow/orderflow/loadtest"
)

// BenchmarkBacklogDrain measures how fast the sweeper drains an outbox
// backlog while the server keeps taking new orders at half its maximum
// rate (issue #9). On one engine, with the production timers, it
//
//  1. measures the intake maximum: closed loop, ORDERFLOW_DRAIN_MAX_CONNS
//     (default 64) connections for ORDERFLOW_DRAIN_MAX_SECONDS (default 5)
//     after a second of warm-up;
//  2. writes ORDERFLOW_DRAIN_EVENTS (default 20000) old, unpublished
//     order.created events straight into the outbox ring (what a Kafka
//     outage leaves);
//  3. offers new orders open loop at half the measured maximum until the
//     backlog is published and orderflow_outbox_oldest_age_seconds has
//     fallen below 1.
//
// It reports the maximum (max-orders/s), the drain rate (events/s), the
// new orders accepted per second meanwhile (new-orders/s) and their share
// of the maximum (intake-share, 0.5 when every offered order was taken),
// the new orders' p99 latency (new-p99-ms, from their scheduled send time,
// so a stalled server shows) and the seconds until the age gauge fell
// below 1 (s-to-age<1). The run:
//
//	ORDERFLOW_DRAIN_EVENTS=500000 go test -run '^$' -bench BacklogDrain -benchtime 1x -timeout 30m ./engine/
//
// Only meaningful on a quiet machine.
func BenchmarkBacklogDrain(b *testing.B) {
	events := envInt(b, "ORDERFLOW_DRAIN_EVENTS", 20000)
	maxConns := envInt(b, "ORDERFLOW_DRAIN_MAX_CONNS", 64)
	maxFor := time.Duration(envInt(b, "ORDERFLOW_DRAIN_MAX_SECONDS", 5)) * time.Second
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		in := enginetest.Start(b, enginetest.WithTimers(enginetest.Timers{}))
		hc := &http.Client{Timeout: 30 * time.Second}
		ctx := context.Background()

		// 1. The intake maximum on this engine, before any backlog.
		maxRes := runLoad(ctx, b, loadtest.Config{Target: in.URL, Mode: loadtest.ModeClosed, Conns: maxConns,
			Warmup: time.Second, Duration: maxFor, RunID: "max"})
		maxRate := maxRes.Report.Rates.OrdersPerSecond
		if maxRate < 2 {
			b.Fatalf("intake maximum %.1f orders/s: nothing to measure against (%+v)", maxRate, maxRes.Report.Counts)
		}

		// 2. The backlog; every seq up to last is the backlog's (nothing
		// else writes now).
		last := pgtest.Int64(b, in.DatabaseURL, backlogSQL, events)

		// 3. Half the maximum, open loop, while the backlog drains.
		b.StartTimer()
		start := time.Now()
		loadCtx, stopLoad := context.WithCancel(ctx)
		defer stopLoad()
		var newRes *loadtest.Result
		done := make(chan struct{})
		go func() {
			defer close(done)
			newRes = runLoad(loadCtx, b, loadtest.Config{Target: in.URL, Mode: loadtest.ModeOpen,
				Rate: max(int(maxRate/2), 1), Duration: time.Hour, RunID: "new"})
		}()
		// Drained: the ring's low watermark passed the backlog (a cheap
		// read; counting the outbox would scan it and slow the drain).
		// The gauge reads 0 until its first refresh: the clock for "age
		// below 1 s" runs only once it has shown the backlog's age.
		var took, ageBelow1 time.Duration
		sawOld := false
		for deadline := time.Now().Add(25 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if age, ok := metricValue(hc, in.AdminURL, "orderflow_outbox_oldest_age_seconds"); ok {
				switch {
				case age >= 1:
					sawOld, ageBelow1 = true, 0
				case sawOld && ageBelow1 == 0:
					ageBelow1 = time.Since(start)
				}
			}
			if took == 0 && pgtest.Int64(b, in.DatabaseURL, `SELECT low_seq FROM outbox_ring`) > last {
				took = time.Since(start)
			}
			if took != 0 && ageBelow1 != 0 {
				break
			}
			if took != 0 && time.Since(start) > took+10*time.Second {
				b.Errorf("orderflow_outbox_oldest_age_seconds did not fall below 1 within 10s of the drain's end")
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("backlog not drained after 25 minutes")
			}
		}
		stopLoad()
		<-done
		b.StopTimer()
		rep := newRes.Report
		b.ReportMetric(maxRate, "max-orders/s")
		b.ReportMetric(float64(events)/took.Seconds(), "events/s")
		b.ReportMetric(rep.Rates.OrdersPerSecond, "new-orders/s")
		b.ReportMetric(rep.Rates.OrdersPerSecond/maxRate, "intake-share")
		b.ReportMetric(float64(rep.Latency.P99Micros)/1e3, "new-p99-ms")
		b.ReportMetric(ageBelow1.Seconds(), "s-to-age<1")
		b.Logf("max %.0f orders/s (p99 %.1f ms); drain of %d events took %.1fs; new orders offered %d/s: %+v, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
			maxRate, float64(maxRes.Report.Latency.P99Micros)/1e3, events, took.Seconds(), max(int(maxRate/2), 1), rep.Counts.Orders,
			float64(rep.Latency.P50Micros)/1e3, float64(rep.Latency.P99Micros)/1e3, float64(rep.Latency.MaxMicros)/1e3)
		if n := rep.Counts.DroppedByGenerator; n > 0 {
			b.Logf("the generator dropped %d scheduled orders (in-flight bound reached)", n)
		}
		if err := in.Stop(); err != nil {
			b.Logf("stop: %v", err)
		}
	}
}

// backlogSQL writes $1 unpublished order.created events, enqueued an hour
// ago, straight into the outbox ring (what a Kafka outage leaves; keys
// ord_bl<seq>) and returns the last seq: with nothing else writing, every
// seq up to it is the backlog's.
const backlogSQL = `WITH ins AS (
  INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at)
  SELECT s, (s / r.gen_rows) % r.slots, 'ord_bl' || s, 1, 'order.created', now(), convert_to(repeat('x', 400), 'UTF8'), now() - interval '1 hour'
  FROM (SELECT nextval('outbox_seq') AS s FROM generate_series(1, $1)) q, outbox_ring r
  RETURNING seq)
SELECT max(seq) FROM ins`

// TestBacklogDrainsWhileTakingOrders is the recovery case at test size, with
// the production timers: a backlog of old events in the outbox while new
// orders arrive open loop. Every backlog event reaches the topic exactly
// once, every new order is acknowledged, and the gauges come back: backlog
// 0 and oldest age under a second. How fast is BenchmarkBacklogDrain's
// question (RESULTS.md), not this test's.
func TestBacklogDrainsWhileTakingOrders(t *testing.T) {
	const events, rate = 20000, 200
	in := enginetest.Start(t, enginetest.WithTimers(enginetest.Timers{}))
	last := pgtest.Int64(t, in.DatabaseURL, backlogSQL, events)
	ctx, stopLoad := context.WithCancel(t.Context())
	defer stopLoad()
	done := make(chan *loadtest.Result, 1)
	go func() {
		done <- runLoad(ctx, t, loadtest.Config{Target: in.URL, Mode: loadtest.ModeOpen, Rate: rate, Duration: time.Hour, RunID: "drain"})
	}()
	hc := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		backlog, ok1 := metricValue(hc, in.AdminURL, "orderflow_outbox_backlog")
		age, ok2 := metricValue(hc, in.AdminURL, "orderflow_outbox_oldest_age_seconds")
		drained := pgtest.Int64(t, in.DatabaseURL, `SELECT low_seq FROM outbox_ring`) > last
		// New orders keep arriving, so the backlog gauge counts their
		// events in flight too: under the open loop's second of orders.
		if drained && ok1 && ok2 && age < 1 && backlog < rate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes: drained %v, orderflow_outbox_backlog %v (%v), oldest age %vs (%v)", drained, backlog, ok1, age, ok2)
		}
	}
	stopLoad()
	c := (<-done).Report.Counts.Orders
	if c.Sent == 0 || c.Acked != c.Sent || c.Refused != 0 || c.Unknown != 0 {
		t.Fatalf("new orders during the drain: %+v; want every one sent acknowledged", c)
	}
	recs := enginetest.ConsumeRaw(t, in.Brokers, "ord_bl", events, time.Minute)
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Key)]++
	}
	if len(recs) != events || len(seen) != events {
		t.Fatalf("%d backlog records read, %d distinct keys; want each of the %d events once", len(recs), len(seen), events)
	}
	if err := in.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// runLoad runs the load generator with cfg (defaults filled in) and fails
// the benchmark if it cannot run.
func runLoad(ctx context.Context, b testing.TB, cfg loadtest.Config) *loadtest.Result {
	g, err := loadtest.New(cfg.WithDefaults())
	if err != nil {
		b.Errorf("loadtest.New: %v", err)
		return &loadtest.Result{Report: &loadtest.Report{}}
	}
	res, err := g.Run(ctx)
	if err != nil {
		b.Errorf("load run %s: %v", cfg.RunID, err)
		return &loadtest.Result{Report: &loadtest.Report{}}
	}
	return res
}

// metricValue reads one unlabelled series from a /metrics page.
func metricValue(hc *http.Client, admin, name string) (float64, bool) {
	resp, err := hc.Get(admin + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, false
	}
	for line := range bytes.SplitSeq(buf.Bytes(), []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			f, err := strconv.ParseFloat(string(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
