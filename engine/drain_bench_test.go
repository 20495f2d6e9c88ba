package engine_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// BenchmarkBacklogDrain measures how fast the sweeper drains an outbox
// backlog while the server keeps taking new orders. It writes
// ORDERFLOW_DRAIN_EVENTS (default 500000) old, unpublished order.created
// events straight into the outbox ring (what a Kafka outage leaves), then
// posts new orders from ORDERFLOW_DRAIN_POSTERS (default 8) clients until
// the backlog is gone, and reports drained events/s, the new orders
// acknowledged per second meanwhile, and the seconds until
// orderflow_outbox_oldest_age_seconds fell below 1. Only meaningful on a
// quiet machine:
//
//	ORDERFLOW_DRAIN_EVENTS=500000 go test -run '^$' -bench BacklogDrain -benchtime 1x -timeout 30m ./engine/
func BenchmarkBacklogDrain(b *testing.B) {
	events := envInt(b, "ORDERFLOW_DRAIN_EVENTS", 500000)
	posters := envInt(b, "ORDERFLOW_DRAIN_POSTERS", 8)
	for range b.N {
		b.StopTimer()
		in := enginetest.Start(b)
		pgtest.Exec(b, in.DatabaseURL, `INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at)
SELECT s, (s / r.gen_rows) % r.slots, 'ord_bl' || s, 1, 'order.created', now(), convert_to(repeat('x', 400), 'UTF8'), now() - interval '1 hour'
FROM (SELECT nextval('outbox_seq') AS s FROM generate_series(1, $1)) q, outbox_ring r`, events)
		hc := &http.Client{Timeout: 30 * time.Second}
		var acked atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		b.StartTimer()
		start := time.Now()
		for p := range posters {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := hc.Post(in.URL+"/v1/orders", "application/json", bytes.NewReader([]byte(orderJSON(fmt.Sprintf("ord_nw%d_%d", p, i)))))
					if err == nil {
						if resp.StatusCode == http.StatusCreated {
							acked.Add(1)
						}
						resp.Body.Close()
					}
				}
			})
		}
		// The gauge reads 0 until its first refresh: the clock for "age
		// below 1 s" runs only once it has shown the backlog's age. The
		// backlog is counted once a second (a scan of the outbox view,
		// which would slow the drain if run more often).
		var ageBelow1 time.Duration
		sawOld := false
		for {
			if ageBelow1 == 0 {
				if age, ok := metricValue(hc, in.AdminURL, "orderflow_outbox_oldest_age_seconds"); ok {
					if age >= 1 {
						sawOld = true
					} else if sawOld {
						ageBelow1 = time.Since(start)
					}
				}
			}
			if n := pgtest.Int64(b, in.DatabaseURL, `SELECT count(*) FROM outbox WHERE order_id LIKE 'ord_bl%'`); n == 0 {
				break
			}
			time.Sleep(time.Second)
		}
		took := time.Since(start)
		// The last events usually go out between two polls: give the gauge
		// its next refreshes to come down.
		for deadline := time.Now().Add(10 * time.Second); ageBelow1 == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if age, ok := metricValue(hc, in.AdminURL, "orderflow_outbox_oldest_age_seconds"); ok && age < 1 {
				ageBelow1 = time.Since(start)
			}
		}
		if ageBelow1 == 0 {
			b.Errorf("orderflow_outbox_oldest_age_seconds did not fall below 1 within 10s of the drain's end")
		}
		close(stop)
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(events)/took.Seconds(), "events/s")
		b.ReportMetric(float64(acked.Load())/took.Seconds(), "new-orders/s")
		b.ReportMetric(ageBelow1.Seconds(), "s-to-age<1")
		if err := in.Stop(); err != nil {
			b.Logf("stop: %v", err)
		}
	}
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
