package engine_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/apitest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// A full pipeline queue answers 503 with Retry-After at once, and what was
// admitted still commits once the database moves again. "At once" is an
// order of events: the 503 arrives while the table lock that holds the
// writer is still held, and every engine timer is minutes long, so a
// request that waited for room in the queue could only be answered after
// the client's 30s timeout. The queue is filled on conditions (the writer
// blocked on the lock, the queue depth gauge at 2), not on sleeps.
func TestQueueFullAnswers503AtOnce(t *testing.T) {
	env := newEnv(t, func(c *engine.Config) {
		c.Pipeline.Writers = 1
		c.Pipeline.QueueRows = 2
		c.Pipeline.MaxBatchRows = 1
		c.Store.TxTimeout = 2 * time.Minute
		c.Pipeline.WriteTimeout = 3 * time.Minute
		c.Ingest.AckTimeout = 3 * time.Minute
	})
	release := lockOrders(t, env.DatabaseURL)
	u, _ := url.Parse(env.DatabaseURL)
	dbName := strings.TrimPrefix(u.Path, "/")
	// A starved machine can take seconds to serve /metrics.
	hc := &http.Client{Timeout: 30 * time.Second}
	queued := func() float64 {
		v, _ := metricValue(hc, env.AdminURL, `orderflow_pipeline_queue_depth{pipeline="orders"}`)
		return v
	}
	// The admitted orders wait for the lock while the queue is filled: their
	// client waits longer than the waits below may take.
	patient := &http.Client{Timeout: 5 * time.Minute, Transport: apitest.Default().Transport(nil)}
	results := make(chan reply, 3)
	send := func(id string) {
		resp, err := patient.Post(env.URL+"/v1/orders", "application/json", strings.NewReader(orderJSON(id)))
		if err != nil {
			results <- reply{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		results <- reply{code: resp.StatusCode, header: resp.Header, body: b}
	}
	go send("ord_q1") // taken by the only writer, which blocks on the lock
	waitFor(t, 2*time.Minute, "the writer to block on the lock with ord_q1", func() bool {
		return pgtest.Int64(t, pgtest.AdminURL(), `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, dbName) > 0 &&
			queued() == 0
	})
	go send("ord_q2") // queued
	go send("ord_q3") // queued: the queue is now full
	waitFor(t, 2*time.Minute, "ord_q2 and ord_q3 queued", func() bool { return queued() == 2 })
	start := time.Now()
	r := env.post(orderJSON("ord_q4"))
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"overloaded"`) {
		t.Fatalf("POST with a full queue, the writer held: got %s (Retry-After %q); want 503 overloaded with Retry-After, before the lock is released", r, r.header.Get("Retry-After"))
	}
	t.Logf("503 after %v", time.Since(start))
	release()
	for range 3 {
		if r := <-results; r.code != http.StatusCreated {
			t.Errorf("admitted order: got %s; want 201 once the lock is gone", r)
		}
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_q4'`); n != 0 {
		t.Errorf("the refused order was stored")
	}
	if n := env.count(`SELECT count(*) FROM orders`); n != 3 {
		t.Errorf("orders = %d; want 3", n)
	}
}

// lockOrders takes an ACCESS EXCLUSIVE lock on the orders table in a
// transaction of its own, so that every order commit waits, until release
// is called (at the latest when the test ends).
func lockOrders(t *testing.T, dbURL string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
	}
	if err != nil {
		conn.Close(ctx)
		t.Fatalf("lock orders: %v", err)
	}
	release = sync.OnceFunc(func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Errorf("release the orders lock: %v", err)
		}
		conn.Close(ctx)
	})
	t.Cleanup(release)
	return release
}

// With PostgreSQL refusing connections, orders get 503 quickly (never a
// 4xx), /readyz reports not ready, and both recover when it is back.
// "Quickly" is the store's own failure ("unavailable", bounded by its
// retries and WriteTimeout), not the request giving up on its commit:
// AckTimeout is beyond the client's 30s, so a request left waiting would
// get no answer at all.
func TestDatabaseDownAnswers503AndRecovers(t *testing.T) {
	env := newEnv(t, func(c *engine.Config) {
		c.Store.TxTimeout = time.Second
		c.Store.MaxRetries = 1
		c.Store.RetryBackoff = 10 * time.Millisecond
		c.Pipeline.WriteTimeout = 3 * time.Second
		c.Ingest.AckTimeout = 3 * time.Minute
	})
	if r := env.post(orderJSON("ord_d0")); r.code != http.StatusCreated {
		t.Fatalf("before outage: %s", r)
	}
	u, _ := url.Parse(env.DatabaseURL)
	name := strings.TrimPrefix(u.Path, "/")
	admin := pgtest.AdminURL()
	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS false`, name))
	pgtest.TerminateBackends(t, env.DatabaseURL)
	restored := false
	restore := func() {
		if !restored {
			restored = true
			pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS true`, name))
		}
	}
	defer restore()

	start := time.Now()
	r := env.post(orderJSON("ord_d1"))
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"unavailable"`) {
		t.Fatalf("POST with the database down: got %s; want 503 unavailable with Retry-After", r)
	}
	t.Logf("503 after %v", time.Since(start))
	if g := do(t, http.MethodGet, env.AdminURL+"/readyz", "", nil); g.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database down: %s; want 503", g)
	}
	if g := do(t, http.MethodGet, env.AdminURL+"/healthz", "", nil); g.code != http.StatusOK {
		t.Errorf("/healthz: %s; want 200 (the process is alive)", g)
	}
	restore()
	waitFor(t, 10*time.Second, "/readyz back to 200", func() bool {
		return do(t, http.MethodGet, env.AdminURL+"/readyz", "", nil).code == http.StatusOK
	})
	// The retry of the order that got 503 converges to one row and a 2xx.
	if r := env.post(orderJSON("ord_d1")); r.code != http.StatusCreated && r.code != http.StatusOK {
		t.Fatalf("retry after the outage: %s; want 201 or 200", r)
	}
	if n := env.count(`SELECT count(*) FROM orders WHERE id = 'ord_d1'`); n != 1 {
		t.Errorf("ord_d1 rows = %d; want 1", n)
	}
}

// Orders committed while Kafka is away are published later: by the same
// server once the broker is back, and — when that server dies before it
// could publish — by the sweeper of the next server on the same database.
func TestOutboxSurvivesKafkaOutageAndServerLoss(t *testing.T) {
	a := enginetest.Start(t)
	cluster, dbURL := a.Broker, a.DatabaseURL
	down := enginetest.KafkaSwitch(cluster)
	down.Store(true)
	const n = 20
	for i := range n {
		r := do(t, http.MethodPost, a.URL+"/v1/orders", "application/json", []byte(orderJSON(fmt.Sprintf("ord_k%02d", i))))
		if r.code != http.StatusCreated {
			t.Fatalf("POST while Kafka is down: %s; want 201 (Kafka is not on the ack path)", r)
		}
	}
	if got := pgtest.Int64(t, dbURL, `SELECT count(*) FROM outbox`); got != n {
		t.Fatalf("outbox rows while Kafka is down = %d; want %d", got, n)
	}
	// The server goes away before it could publish: its flush cannot finish.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = a.Engine.Shutdown(ctx)
	cancel()
	if got := pgtest.Int64(t, dbURL, `SELECT count(*) FROM outbox`); got == 0 {
		t.Fatalf("outbox emptied without a broker")
	}
	down.Store(false)
	b := enginetest.Start(t, enginetest.WithDatabase(dbURL), enginetest.WithBroker(cluster))
	recs := b.Consume(t, "ord_k", n, 30*time.Second)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[enginetest.Header(r, "ce_id")] = true
	}
	for i := range n {
		if id := fmt.Sprintf("ord_k%02d/1", i); !seen[id] {
			t.Errorf("%s never published", id)
		}
	}
	waitFor(t, 15*time.Second, "outbox drained by the sweeper", func() bool {
		return pgtest.Int64(t, dbURL, `SELECT count(*) FROM outbox`) == 0
	})
}

// Shutting down under load: every 2xx is committed, every committed order is
// published, and the outbox is empty when Shutdown returns.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	in := enginetest.Start(t)
	dbURL, base := in.DatabaseURL, in.URL
	var (
		mu    sync.Mutex
		acked []string
		seq   atomic.Int64
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	hc := &http.Client{Timeout: 20 * time.Second}
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				id := fmt.Sprintf("ord_s%05d", seq.Add(1))
				resp, err := hc.Post(base+"/v1/orders", "application/json", strings.NewReader(orderJSON(id)))
				if err != nil {
					if stop.Load() {
						return
					}
					continue // connection refused/closed during shutdown: indeterminate, not acked
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		})
	}
	// Shut down once the load has shown itself (a count, not a sleep: on a
	// busy machine 1.5s held fewer than 50 acknowledgements), with the
	// clients still sending.
	waitFor(t, time.Minute, "200 orders acknowledged under load", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := in.Engine.Shutdown(ctx)
	cancel()
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	stored := pgtest.Int64(t, dbURL, `SELECT count(*) FROM orders`)
	missing := pgtest.Int64(t, dbURL, `SELECT count(*) FROM unnest($1::text[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id)`, acked)
	if missing != 0 {
		t.Fatalf("%d of %d acknowledged orders are not in PostgreSQL", missing, len(acked))
	}
	if left := pgtest.Int64(t, dbURL, `SELECT count(*) FROM outbox`); left != 0 {
		t.Errorf("outbox rows left after a clean shutdown: %d", left)
	}
	recs := in.Consume(t, "ord_s", int(stored), time.Minute)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[string(r.Key)] = true
	}
	if int64(len(seen)) != stored {
		t.Errorf("published orders = %d; committed = %d", len(seen), stored)
	}
	t.Logf("acknowledged %d, committed %d, published %d", len(acked), stored, len(seen))
}

func TestMetricsAndPprof(t *testing.T) {
	env := newEnv(t, nil)
	env.post(orderJSON("ord_m1"))
	m := do(t, http.MethodGet, env.AdminURL+"/metrics", "", nil)
	if m.code != http.StatusOK {
		t.Fatalf("/metrics: %d", m.code)
	}
	for _, want := range []string{
		`orderflow_http_requests_total{code="201",route="create_order"} 1`,
		`orderflow_orders_total{result="created"} 1`,
		"orderflow_pipeline_batch_rows_bucket",
		"orderflow_store_commit_seconds_bucket",
		"orderflow_pipeline_queue_depth",
		"orderflow_outbox_backlog",
		"go_goroutines",
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if p := do(t, http.MethodGet, env.AdminURL+"/debug/pprof/heap?debug=1", "", nil); p.code != http.StatusOK {
		t.Errorf("pprof heap: %d", p.code)
	}
	if r := do(t, http.MethodGet, env.AdminURL+"/readyz", "", nil); r.code != http.StatusOK {
		t.Errorf("/readyz: %s", r)
	}
}
