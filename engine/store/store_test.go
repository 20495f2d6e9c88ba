package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// newTestStore returns a migrated Store on a fresh database, its URL and its
// metrics.
func newTestStore(t testing.TB) (*Store, string, *metrics.Metrics) {
	t.Helper()
	url := pgtest.New(t)
	m := metrics.New()
	s, err := New(context.Background(), Config{URL: url, CopyMinRows: testCopyMinRows}, m, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, url, m
}

// testCopyMinRows is the Config.CopyMinRows of newTestStore: 0 (the
// default) sends the small test batches through the array insert;
// TestWriteOrdersThroughCopy reruns the write tests with 1, through COPY
// and the staging table. Tests in this package do not run in parallel.
var testCopyMinRows int

func TestWriteOrdersThroughCopy(t *testing.T) {
	testCopyMinRows = 1
	defer func() { testCopyMinRows = 0 }()
	for name, fn := range map[string]func(*testing.T){
		"CreatedThenDuplicate":    TestWriteOrdersCreatedThenDuplicate,
		"Conflict":                TestWriteOrdersConflict,
		"WithinOneBatch":          TestWriteOrdersWithinOneBatch,
		"BisectsPoisonRows":       TestWriteOrdersBisectsPoisonRows,
		"ConcurrentOverlapping":   TestWriteOrdersConcurrentOverlapping,
		"AfterBackendsTerminated": TestWriteOrdersAfterBackendsTerminated,
		"AfterSchemaChange":       TestWriteOrdersAfterSchemaChange,
	} {
		t.Run(name, fn)
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return d.GetCounter().GetValue()
}

var (
	testCreated  = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	testReceived = time.Date(2026, 11, 25, 10, 0, 1, 654321000, time.UTC)
)

// testOrder builds a valid order with two items; hash is its content hash.
func testOrder(id string, hash uint64) order.Order {
	items := []order.Item{
		{SKU: "milk-1l", Qty: 2, PriceCents: 119},
		{SKU: "bread-rye", Qty: 1, PriceCents: 249},
	}
	return order.Order{
		ID:         id,
		UserID:     "u_42",
		Currency:   "EUR",
		Items:      items,
		CreatedAt:  testCreated,
		ReceivedAt: testReceived,
		TotalCents: 2*119 + 249,
		Hash:       hash,
		Event:      fmt.Appendf(nil, `{"order":{"id":%q}}`, id),
	}
}

func batchOf(orders ...order.Order) *order.Batch {
	b := order.GetBatch()
	b.Orders = append(b.Orders, orders...)
	return b
}

func outcomes(bs ...*order.Batch) []order.Outcome {
	var out []order.Outcome
	for _, b := range bs {
		for _, o := range b.Orders {
			out = append(out, o.Result.Outcome)
		}
	}
	return out
}

func wantOutcomes(t *testing.T, what string, bs []*order.Batch, want ...order.Outcome) {
	t.Helper()
	got := outcomes(bs...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var errs []string
		for _, b := range bs {
			for _, o := range b.Orders {
				if o.Result.Err != nil {
					errs = append(errs, o.ID+": "+o.Result.Err.Error())
				}
			}
		}
		t.Fatalf("%s: outcomes %v; want %v (errors: %s)", what, got, want, strings.Join(errs, "; "))
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(cfg Config, wantErr string) {
		t.Helper()
		err := cfg.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("Validate(%+v): %v; want nil", cfg, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("Validate(%+v): %v; want error containing %q", cfg, err, wantErr)
		}
	}
	f(Config{}, "")
	f(DefaultConfig(), "")
	f(Config{MaxRetries: -1}, "")
	f(Config{MaxConns: -1}, "-store.max-conns must be ≥ 1")
	f(Config{TxTimeout: -time.Second}, "-store.tx-timeout")
	f(Config{RetryBackoff: -time.Second}, "-store.retry-backoff")
	f(Config{MaxRetries: 1000}, "-store.max-retries")
	f(Config{TxTimeout: 10 * time.Millisecond, RetryBackoff: time.Second}, "-store.retry-backoff")

	d := Config{}.WithDefaults()
	if d != DefaultConfig() {
		t.Fatalf("zero Config with defaults = %+v; want %+v", d, DefaultConfig())
	}
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	s, url, _ := newTestStore(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM schema_migrations"); n != int64(len(ms)) {
		t.Fatalf("schema_migrations rows = %d; want %d", n, len(ms))
	}

	// A fresh database, three instances starting together.
	url2 := pgtest.New(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			st, err := New(context.Background(), Config{URL: url2, MaxConns: 1}, nil, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer st.Close()
			errs[i] = st.Migrate(context.Background())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	if n := pgtest.Int64(t, url2, "SELECT count(*) FROM schema_migrations"); n != int64(len(ms)) {
		t.Fatalf("after concurrent migrations: schema_migrations rows = %d; want %d", n, len(ms))
	}
	for _, table := range []string{"orders", "order_items", "outbox_events", "outbox_acks", "outbox_ring", "products"} {
		if n := pgtest.Int64(t, url2, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", table); n != 1 {
			t.Fatalf("table %s present %d times; want 1", table, n)
		}
	}
	// The outbox is now the view of unpublished events.
	if n := pgtest.Int64(t, url2, "SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewname = 'outbox'"); n != 1 {
		t.Fatalf("view outbox present %d times; want 1", n)
	}
	// The advisory lock went back with its connection: another Migrate does not wait.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after concurrent run: %v", err)
	}
}

func TestSessionSettings(t *testing.T) {
	url := pgtest.New(t)
	// Even when the URL asks for synchronous_commit=off, the store forces it on.
	s, err := New(context.Background(), Config{URL: url + "&options=-c%20synchronous_commit%3Doff"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v string
	if err := s.pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "on" {
		t.Fatalf("synchronous_commit = %q; want on", v)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestPingUnreachable(t *testing.T) {
	s, err := New(context.Background(), Config{URL: "postgres://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping of a closed port: nil error")
	}
}
