package client_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
	"github.com/orderflow/orderflow/internal/privatepg"
)

// load runs callers goroutines that each create orders "<prefix><caller>_<n>"
// one after another until stop is closed, the odd callers through the
// Batcher, the even ones with CreateOrder. Every call has two minutes and
// no attempt limit: it must end acknowledged.
type load struct {
	acked  sync.Map // id → struct{}
	acks   atomic.Int64
	failed atomic.Int64
	errs   chan error
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startLoad(c *client.Client, b *client.Batcher, prefix string, callers, perCaller int) *load {
	l := &load{errs: make(chan error, 16), stop: make(chan struct{})}
	for i := range callers {
		l.wg.Go(func() {
			for n := 0; perCaller <= 0 || n < perCaller; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("%s%d_%d", prefix, i, n)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				var err error
				if i%2 == 1 {
					_, err = b.CreateOrder(ctx, order(id))
				} else {
					_, err = c.CreateOrder(ctx, order(id))
				}
				cancel()
				if err != nil {
					l.failed.Add(1)
					select {
					case l.errs <- fmt.Errorf("%s: %w", id, err):
					default:
					}
					continue
				}
				l.acked.Store(id, struct{}{})
				l.acks.Add(1)
			}
		})
	}
	return l
}

func (l *load) finish() { close(l.stop); l.wg.Wait() }

// verify checks that every call was acknowledged and that PostgreSQL holds
// exactly the acknowledged orders under prefix, each once.
func (l *load) verify(t *testing.T, dbURL, prefix string) {
	t.Helper()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d calls failed; first: %v", n, <-l.errs)
	}
	want := map[string]bool{}
	l.acked.Range(func(k, _ any) bool { want[k.(string)] = true; return true })
	if len(want) == 0 {
		t.Fatal("no order was acknowledged")
	}
	stored := pgtest.Int64(t, dbURL, `SELECT count(*) FROM orders WHERE id LIKE $1`, prefix+"%")
	distinct := pgtest.Int64(t, dbURL, `SELECT count(DISTINCT id) FROM orders WHERE id LIKE $1`, prefix+"%")
	if stored != int64(len(want)) || distinct != stored {
		t.Errorf("stored %d orders (%d distinct) under %q; want exactly the %d acknowledged", stored, distinct, prefix, len(want))
	}
	items := pgtest.Int64(t, dbURL, `SELECT count(*) FROM order_items WHERE order_id LIKE $1`, prefix+"%")
	if items != 2*stored {
		t.Errorf("stored %d items for %d orders; want 2 each", items, stored)
	}
}

// answered sums orderflow_http_requests_total for one status code, read
// from the admin listener.
func answered(t *testing.T, admin string, code int) float64 {
	t.Helper()
	res, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "orderflow_http_requests_total{") && strings.Contains(line, `code="`+strconv.Itoa(code)+`"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Through PostgreSQL stopped (-m immediate, a crash) and started again
// under load, every order sent through the client, alone or batched, ends
// up stored exactly once and acknowledged to its caller. The server
// answered 503 meanwhile (checked), so the client's retries did the work.
func TestEveryOrderStoredOnceThroughPostgresRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := privatepg.Start(ctx, privatepg.Options{Database: "orderflow", DirPrefix: "orderflow-client-pg-",
		Settings: map[string]string{"max_connections": "60", "shared_buffers": "32MB"}})
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(pg.Close)
	s := enginetest.Start(t, enginetest.WithDatabase(pg.URL("orderflow")), enginetest.WithCatalog(engine.DemoProducts), enginetest.WithConfig(func(c *engine.Config) {
		c.Store.TxTimeout = 2 * time.Second
		c.Store.MaxRetries = 3
		c.Store.RetryBackoff = 20 * time.Millisecond
		c.Pipeline.WriteTimeout = 6 * time.Second
		c.Ingest.AckTimeout = 10 * time.Second
	}))
	c := newClient(t, s, func(cfg *client.Config) { cfg.MaxAttempts = -1 })
	b := c.NewBatcher(client.BatcherConfig{MaxOrders: 32, Linger: 5 * time.Millisecond, BatchTimeout: 2 * time.Minute})
	l := startLoad(c, b, "pgr_", 16, 0)
	waitUntil(t, 60*time.Second, "first acknowledgements", func() bool { return l.acks.Load() >= 100 })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	// Down until the server has answered a 503 for it (not for a fixed 2s,
	// which a busy machine could pass without one): the client's retries
	// then have something to do.
	waitUntil(t, 90*time.Second, "a 503 while PostgreSQL is down", func() bool {
		return answered(t, s.AdminURL, http.StatusServiceUnavailable) > 0
	})
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	from := l.acks.Load()
	waitUntil(t, 90*time.Second, "acknowledgements after the restart", func() bool { return l.acks.Load() >= from+100 })
	l.finish()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.verify(t, s.DatabaseURL, "pgr_")
}

// Through overload (a tiny admission limit, a tiny queue and a per-key rate
// limit) 64 callers each get every order acknowledged, and every order is
// stored exactly once; the server refused many requests with 503 and 429
// on the way (checked).
func TestEveryOrderStoredOnceThroughOverload(t *testing.T) {
	const key = "client-test-key-0123456789"
	s := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Ingest.MaxInflight = 4
		c.Ingest.MaxQueueWait = time.Millisecond
		c.Ingest.APIKeys = []ingest.APIKey{{Name: "test", Key: key}}
		c.Ingest.PerKeyLimit = ingest.Limit{Rate: 100, Burst: 5}
		c.Pipeline.QueueRows = 8
		c.Pipeline.MaxBatchRows = 4
	}))
	c := newClient(t, s, func(cfg *client.Config) { cfg.APIKey = key; cfg.MaxAttempts = -1 })
	b := c.NewBatcher(client.BatcherConfig{MaxOrders: 16, Linger: 2 * time.Millisecond, MaxInflight: 2, BatchTimeout: 2 * time.Minute})
	l := startLoad(c, b, "ovl_", 64, 12)
	l.wg.Wait()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := l.acks.Load(); got != 64*12 {
		t.Errorf("%d orders acknowledged; want all %d", got, 64*12)
	}
	if n := answered(t, s.AdminURL, http.StatusServiceUnavailable); n == 0 {
		t.Errorf("no 503 under overload: the limits did not bite")
	}
	if n := answered(t, s.AdminURL, http.StatusTooManyRequests); n == 0 {
		t.Errorf("no 429 under overload: the rate limit did not bite")
	}
	l.verify(t, s.DatabaseURL, "ovl_")
}
