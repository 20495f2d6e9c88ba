package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

const (
	created   = order.OutcomeCreated
	duplicate = order.OutcomeDuplicate
	conflict  = order.OutcomeConflict
	rejected  = order.OutcomeRejected
	failed    = order.OutcomeFailed
)

func TestWriteOrdersCreatedThenDuplicate(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	keyed := testOrder("ord_b", 2)
	keyed.IdempotencyKey = "key-b"
	single := testOrder("ord_c", 3)
	single.Items = single.Items[:1]
	single.TotalCents = 238
	bs := []*order.Batch{batchOf(testOrder("ord_a", 1), keyed), batchOf(single)}
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "first write", bs, created, created, created)
	for _, b := range bs {
		for _, o := range b.Orders {
			// EventSeq: the order.created event's place in the outbox.
			want := order.Result{Outcome: created, Status: order.StatusCreated, TotalCents: o.TotalCents, Version: 1, EventSeq: o.Result.EventSeq}
			if o.Result != want || o.Result.EventSeq <= 0 ||
				pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events WHERE seq = $1 AND order_id = $2`, o.Result.EventSeq, o.ID) != 1 {
				t.Fatalf("result of %s = %+v; want %+v", o.ID, o.Result, want)
			}
		}
	}

	f := func(query string, want int64, args ...any) {
		t.Helper()
		if got := pgtest.Int64(t, url, query, args...); got != want {
			t.Fatalf("%s %v = %d; want %d", query, args, got, want)
		}
	}
	f("SELECT count(*) FROM orders", 3)
	f("SELECT count(*) FROM order_items", 5)
	f("SELECT count(*) FROM outbox", 3)
	f(`SELECT count(*) FROM orders WHERE id = 'ord_b' AND user_id = 'u_42' AND status = 'created' AND currency = 'EUR'
	   AND total_cents = 487 AND version = 1 AND created_at = $1 AND updated_at = $2 AND idempotency_key = 'key-b'
	   AND content_hash = 2`, 1, testCreated, testReceived)
	f("SELECT count(*) FROM orders WHERE id = 'ord_a' AND idempotency_key IS NULL", 1)
	f(`SELECT count(*) FROM order_items WHERE order_id = 'ord_a' AND (line, sku, qty, price_cents) IN
	   ((0, 'milk-1l', 2, 119), (1, 'bread-rye', 1, 249))`, 2)
	f(`SELECT count(*) FROM outbox WHERE order_id = 'ord_c' AND version = 1 AND ce_type = 'order.created'
	   AND ce_time = $1 AND payload = $2`, 1, testReceived, []byte(`{"order":{"id":"ord_c"}}`))
	f("SELECT count(*) FROM orders WHERE content_hash = -1", 0)

	// A hash above MaxInt64 round-trips through bigint.
	big := testOrder("ord_big", 1<<63+5)
	bb := []*order.Batch{batchOf(big)}
	s.WriteOrders(ctx, bb)
	wantOutcomes(t, "big hash", bb, created)
	s.WriteOrders(ctx, bb)
	wantOutcomes(t, "big hash again", bb, duplicate)

	// The same batches again: all duplicates, nothing new written.
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "second write", bs, duplicate, duplicate, duplicate)
	for _, b := range bs {
		for _, o := range b.Orders {
			want := order.Result{Outcome: duplicate, Status: order.StatusCreated, TotalCents: o.TotalCents, Version: 1}
			if o.Result != want {
				t.Fatalf("duplicate result of %s = %+v; want %+v", o.ID, o.Result, want)
			}
		}
	}
	f("SELECT count(*) FROM orders", 4)
	f("SELECT count(*) FROM order_items", 7)
	f("SELECT count(*) FROM outbox", 4)

	// A duplicate reports the stored status and version, not the request's.
	pgtest.Exec(t, url, "UPDATE orders SET status = 'paid', version = 2 WHERE id = 'ord_a'")
	again := []*order.Batch{batchOf(testOrder("ord_a", 1))}
	s.WriteOrders(ctx, again)
	want := order.Result{Outcome: duplicate, Status: order.StatusPaid, TotalCents: 487, Version: 2}
	if got := again[0].Orders[0].Result; got != want {
		t.Fatalf("duplicate of a paid order: %+v; want %+v", got, want)
	}
}

func TestWriteOrdersConflict(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	a := testOrder("ord_a", 1)
	a.IdempotencyKey = "key-a"
	s.WriteOrders(ctx, []*order.Batch{batchOf(a)})

	// Same id, different content.
	other := testOrder("ord_a", 99)
	other.UserID = "u_other"
	bs := []*order.Batch{batchOf(other)}
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "same id, other hash", bs, conflict)
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders WHERE id = 'ord_a' AND content_hash = 1 AND user_id = 'u_42'"); n != 1 {
		t.Fatalf("stored order changed by a conflicting write")
	}

	// Same idempotency key, different id.
	b := testOrder("ord_b", 1)
	b.IdempotencyKey = "key-a"
	bs = []*order.Batch{batchOf(b, testOrder("ord_c", 3))}
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "same key, other id", bs, conflict, created)
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders WHERE id = 'ord_b'"); n != 0 {
		t.Fatalf("ord_b stored despite its key conflict")
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM outbox"); n != 2 {
		t.Fatalf("outbox rows = %d; want 2", n)
	}
}

func TestWriteOrdersWithinOneBatch(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	k1 := testOrder("ord_k1", 7)
	k1.IdempotencyKey = "k"
	k2 := testOrder("ord_k2", 8)
	k2.IdempotencyKey = "k"
	// Arrival order: x, y(same id, other content), x again, k2, k1.
	bs := []*order.Batch{
		batchOf(testOrder("ord_x", 1), testOrder("ord_x", 2)),
		batchOf(testOrder("ord_x", 1), k2, k1),
	}
	s.WriteOrders(ctx, bs)
	// k1 sorts first, so it takes the key although k2 arrived first.
	wantOutcomes(t, "one batch", bs, created, conflict, duplicate, conflict, created)
	if got := bs[1].Orders[0].Result; got.Status != order.StatusCreated || got.Version != 1 || got.TotalCents != 487 {
		t.Fatalf("in-batch duplicate result %+v; want the stored order", got)
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders"); n != 2 {
		t.Fatalf("orders = %d; want 2", n)
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM order_items"); n != 4 {
		t.Fatalf("order_items = %d; want 4", n)
	}
}

func TestWriteOrdersBisectsPoisonRows(t *testing.T) {
	f := func(name string, poison func(o *order.Order)) {
		t.Run(name, func(t *testing.T) {
			s, url, m := newTestStore(t)
			var orders []order.Order
			for i := range 21 {
				orders = append(orders, testOrder(fmt.Sprintf("ord_%02d", i), uint64(i)))
			}
			poison(&orders[13])
			bs := []*order.Batch{batchOf(orders[:10]...), batchOf(orders[10:]...)}
			s.WriteOrders(context.Background(), bs)
			for _, b := range bs {
				for _, o := range b.Orders {
					want := created
					if o.ID == "ord_13" {
						want = rejected
					}
					if o.Result.Outcome != want {
						t.Fatalf("%s: outcome %v (err %v); want %v", o.ID, o.Result.Outcome, o.Result.Err, want)
					}
				}
			}
			if err := bs[1].Orders[3].Result.Err; err == nil {
				t.Fatalf("rejected order has no Err")
			}
			if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders"); n != 20 {
				t.Fatalf("orders = %d; want 20", n)
			}
			if n := pgtest.Int64(t, url, "SELECT count(*) FROM outbox WHERE order_id = 'ord_13'"); n != 0 {
				t.Fatalf("rejected order has an outbox row")
			}
			if v := counterValue(t, m.DBBisections.WithLabelValues("orders")); v < 1 {
				t.Fatalf("bisections = %v; want ≥ 1", v)
			}
			if v := counterValue(t, m.CommitErrors.WithLabelValues("orders", "data")); v < 1 {
				t.Fatalf("data errors = %v; want ≥ 1", v)
			}
		})
	}
	f("nul-in-user-id", func(o *order.Order) { o.UserID = "u\x00x" })
	f("invalid-utf8-sku", func(o *order.Order) { o.Items = []order.Item{{SKU: "\xff\xfe", Qty: 1}} })
	f("qty-zero", func(o *order.Order) { o.Items = []order.Item{{SKU: "milk-1l", Qty: 0}} })
	f("qty-overflows-int32", func(o *order.Order) { o.Items = []order.Item{{SKU: "milk-1l", Qty: 1 << 40}} })
	f("bad-currency", func(o *order.Order) { o.Currency = "EURO" })
}

func TestWriteOrdersConcurrentOverlapping(t *testing.T) {
	s, url, _ := newTestStore(t)
	const (
		writers = 4
		rounds  = 6
		ids     = 80
		perCall = 40
	)
	var (
		mu       sync.Mutex
		createdN = map[string]int{}
		bad      []string
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				perm := r.Perm(ids)[:perCall]
				var os []order.Order
				for _, i := range perm {
					os = append(os, testOrder(fmt.Sprintf("ord_%03d", i), uint64(i)))
				}
				// Two batches per call, like the pipeline's group commit.
				bs := []*order.Batch{batchOf(os[:perCall/2]...), batchOf(os[perCall/2:]...)}
				s.WriteOrders(context.Background(), bs)
				mu.Lock()
				for _, b := range bs {
					for _, o := range b.Orders {
						switch o.Result.Outcome {
						case created:
							createdN[o.ID]++
						case duplicate:
						default:
							bad = append(bad, fmt.Sprintf("%s: %v %v", o.ID, o.Result.Outcome, o.Result.Err))
						}
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("unexpected outcomes: %v", bad)
	}
	for id, n := range createdN {
		if n != 1 {
			t.Fatalf("%s created %d times", id, n)
		}
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders"); n != int64(len(createdN)) {
		t.Fatalf("orders = %d; created outcomes for %d ids", n, len(createdN))
	}
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM outbox"); n != int64(len(createdN)) {
		t.Fatalf("outbox = %d; want %d", n, len(createdN))
	}
}

func TestWriteOrdersAfterBackendsTerminated(t *testing.T) {
	s, url, m := newTestStore(t)
	ctx := context.Background()
	// Open several pooled connections.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			s.WriteOrders(ctx, []*order.Batch{batchOf(testOrder(fmt.Sprintf("warm_%d", i), 1))})
		})
	}
	wg.Wait()
	if n := pgtest.TerminateBackends(t, url); n == 0 {
		t.Fatalf("no backend to terminate")
	}
	for i := range 4 {
		bs := []*order.Batch{batchOf(testOrder(fmt.Sprintf("after_%d", i), 1))}
		s.WriteOrders(ctx, bs)
		wantOutcomes(t, "after terminate", bs, created)
	}
	if v := counterValue(t, m.DBRetries.WithLabelValues("orders")); v < 1 {
		t.Fatalf("retries = %v; want ≥ 1 (no connection was broken?)", v)
	}
}

// A refused connection fails the batch at once: with the connect and
// transaction timeouts a minute long, waiting on either would take that
// minute, while failing fast takes milliseconds (30s leaves a busy machine
// room without blurring the two).
func TestWriteOrdersUnreachable(t *testing.T) {
	s, err := New(context.Background(), Config{URL: "postgres://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=60", TxTimeout: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bs := []*order.Batch{batchOf(testOrder("a", 1), testOrder("b", 2))}
	start := time.Now()
	s.WriteOrders(context.Background(), bs)
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("WriteOrders took %s against a closed port; want it to fail without waiting for a timeout", d)
	}
	wantOutcomes(t, "unreachable", bs, failed, failed)
	if bs[0].Orders[0].Result.Err == nil {
		t.Fatalf("failed order has no Err")
	}
}

func TestWriteOrdersContextDone(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	bs := []*order.Batch{batchOf(testOrder("a", 1))}
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "cancelled ctx", bs, failed)
	if n := pgtest.Int64(t, url, "SELECT count(*) FROM orders"); n != 0 {
		t.Fatalf("orders = %d after a cancelled write", n)
	}
	s.WriteOrders(context.Background(), bs)
	wantOutcomes(t, "retry", bs, created)
}

func TestWriteOrdersEmpty(t *testing.T) {
	s, _, _ := newTestStore(t)
	s.WriteOrders(context.Background(), nil)
	s.WriteOrders(context.Background(), []*order.Batch{batchOf()})
}

func TestClassify(t *testing.T) {
	f := func(err error, want errKind) {
		t.Helper()
		if got := classify(err); got != want {
			t.Fatalf("classify(%v) = %d; want %d", err, got, want)
		}
	}
	pg := func(code string) error { return &pgconnPgError{Code: code} }
	f(pg("40001"), kindRetryable)
	f(pg("40P01"), kindRetryable)
	f(pg("57P01"), kindRetryable)
	f(pg("57P03"), kindRetryable)
	f(pg("08006"), kindRetryable)
	f(pg("0A000"), kindCachedPlan)
	f(pg("22021"), kindData)
	f(pg("23514"), kindData)
	f(pg("23502"), kindData)
	f(pg("23505"), kindRetryable)
	f(pg("42P01"), kindOther)
	f(&txError{step: "x", err: fmt.Errorf("eof"), connClosed: true}, kindRetryable)
	f(&txError{step: "x", err: fmt.Errorf("eof")}, kindOther)
	f(&commitError{err: pg("40001")}, kindOther) // at COMMIT: ambiguous
	f(&commitError{err: fmt.Errorf("unexpected EOF")}, kindOther)
	// pgx reports a connection lost while waiting for COMMIT's answer as
	// safe to retry; it is not (the commit may have happened). This case
	// returned kindRetryable before the fix.
	f(&commitError{err: safeToRetryErr{}}, kindOther)
}

type safeToRetryErr struct{}

func (safeToRetryErr) Error() string     { return "conn closed" }
func (safeToRetryErr) SafeToRetry() bool { return true }

type pgconnPgError = pgconn.PgError

func TestWriteOrdersAfterSchemaChange(t *testing.T) {
	url := pgtest.New(t)
	m := metrics.New()
	s, err := New(context.Background(), Config{URL: url, MaxConns: 1}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.WriteOrders(ctx, []*order.Batch{batchOf(testOrder("a", 1))}) // caches the statements
	// Changes the type of a RETURNING column under the cached statement:
	// PostgreSQL answers 0A000 "cached plan must not change result type".
	pgtest.Exec(t, url, "ALTER TABLE orders ALTER COLUMN idempotency_key TYPE varchar(200)")
	bs := []*order.Batch{batchOf(testOrder("b", 2), testOrder("a", 1))}
	s.WriteOrders(ctx, bs)
	wantOutcomes(t, "after schema change", bs, created, duplicate)
	if v := counterValue(t, m.DBRetries.WithLabelValues("orders")); v != 1 {
		t.Fatalf("retries = %v; want 1", v)
	}
}
