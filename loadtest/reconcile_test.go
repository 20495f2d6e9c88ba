package loadtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// scratchDB creates a fresh database (pgtest) holding schema. A database
// that does not answer fails the test: a green run must mean
// reconciliation was really checked.
func scratchDB(t *testing.T, schema string) string {
	t.Helper()
	url := pgtest.New(t)
	pgtest.Exec(t, url, schema)
	return url
}

// fakeKafka starts an in-process Kafka-protocol broker with topic orders.
func fakeKafka(t *testing.T) []string {
	t.Helper()
	return enginetest.NewBroker(t).ListenAddrs()
}

// publish produces one record per ce_id ("<id>/<version>") to orders, keyed
// by the order id, as the server's outbox does.
func publish(t *testing.T, brokers []string, ceIDs ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(ceIDs))
	for i, ce := range ceIDs {
		id, _, _ := strings.Cut(ce, "/")
		recs[i] = &kgo.Record{Key: []byte(id), Value: []byte(`{"order":{"id":"` + id + `"}}`), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_type", Value: []byte("order.created")},
			{Key: "ce_id", Value: []byte(ce)},
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %v: %v", ceIDs, err)
	}
}

func TestReconcile(t *testing.T) {
	dbURL := scratchDB(t, `CREATE TABLE orders (id text PRIMARY KEY)`)
	brokers := fakeKafka(t)
	// Stored: a1–a4 (acked), p1 (refused only: a phantom), r5 (refused,
	// then acked on a resend). Not stored: l1 (acked: lost), r1 (refused).
	pgtest.Exec(t, dbURL, `INSERT INTO orders (id) SELECT unnest($1::text[])`, []string{"a1", "a2", "a3", "a4", "p1", "r5"})
	// Published: created events for a1, a2, a3, l1, r5 (some twice, at
	// least once), a status change of a4 only (a4/2 is not order.created).
	publish(t, brokers, "a1/1", "a2/1", "a1/1", "a3/1", "l1/1", "r5/1", "a4/2", "x9/1")

	type want struct{ lost, dup, phantom, unpublished []string }
	f := func(name string, acked, refused []string, timeout time.Duration, w want) {
		t.Helper()
		start := time.Now()
		res, err := Reconcile(context.Background(), dbURL, brokers, "orders", acked, refused, timeout)
		if err != nil {
			t.Fatalf("%s: Reconcile(acked %v, refused %v): %v", name, acked, refused, err)
		}
		got := want{res.Lost, res.Duplicated, res.Phantom, res.Unpublished}
		eq := func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
		if !eq(got.lost, w.lost) || !eq(got.dup, w.dup) || !eq(got.phantom, w.phantom) || !eq(got.unpublished, w.unpublished) ||
			res.LostCount != len(w.lost) || res.PhantomCount != len(w.phantom) || res.UnpublishedCount != len(w.unpublished) {
			t.Fatalf("%s: Reconcile(acked %v, refused %v): got %+v; want %+v", name, acked, refused, res, w)
		}
		ok := len(w.lost)+len(w.dup)+len(w.phantom)+len(w.unpublished) == 0
		if res.OK() != ok || (res.Err() == nil) != ok || !ok && !errors.Is(res.Err(), ErrReconcile) {
			t.Fatalf("%s: OK() = %v, Err() = %v; want ok = %v", name, res.OK(), res.Err(), ok)
		}
		if ok && time.Since(start) > timeout/2 {
			t.Fatalf("%s: took %v; want it to stop as soon as every event is seen", name, time.Since(start))
		}
	}
	// long bounds the waits that end once every event is seen: it is far
	// beyond what they take, so one that ran out (more than half of it)
	// did not stop on its own. The unpublished case always waits its whole
	// timeout, which must leave a busy machine time to read a1's event.
	const long = 2 * time.Minute
	f("all good", []string{"a1", "a2", "a3", "a2"}, []string{"r1", "r1"}, long, want{})
	f("refused then acked is not a phantom", []string{"a1", "r5"}, []string{"r5", "r1"}, long, want{})
	f("lost", []string{"a1", "l1"}, nil, long, want{lost: []string{"l1"}})
	f("phantom", []string{"a1"}, []string{"r1", "p1"}, long, want{phantom: []string{"p1"}})
	f("unpublished", []string{"a1", "a4"}, nil, 5*time.Second, want{unpublished: []string{"a4"}})
	f("nothing acked", nil, []string{"r1"}, long, want{})
}

func TestReconcileDuplicated(t *testing.T) {
	// orders has a primary key in the real schema, so a duplicate row is
	// impossible there; a table without one proves the check works.
	dbURL := scratchDB(t, `CREATE TABLE orders (id text)`)
	brokers := fakeKafka(t)
	pgtest.Exec(t, dbURL, `INSERT INTO orders (id) VALUES ('d1'), ('d1'), ('d2')`)
	publish(t, brokers, "d1/1", "d2/1")
	res, err := Reconcile(context.Background(), dbURL, brokers, "orders", []string{"d1", "d2"}, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if res.DuplicatedCount != 1 || len(res.Duplicated) != 1 || res.Duplicated[0] != "d1" || res.LostCount != 0 || res.OK() {
		t.Fatalf("Reconcile: got %+v; want d1 duplicated", res)
	}
}

func TestReconcileUnreachable(t *testing.T) {
	dbURL := scratchDB(t, `CREATE TABLE orders (id text PRIMARY KEY)`)
	brokers := fakeKafka(t)
	ctx := context.Background()
	if _, err := Reconcile(ctx, "postgres://127.0.0.1:1/x?sslmode=disable&connect_timeout=2", brokers, "orders", []string{"a"}, nil, time.Second); err == nil {
		t.Fatalf("Reconcile with a dead database: want an error")
	}
	pgtest.Exec(t, dbURL, `INSERT INTO orders (id) VALUES ('a')`)
	if _, err := Reconcile(ctx, dbURL, []string{"127.0.0.1:1"}, "orders", []string{"a"}, nil, 2*time.Second); err == nil {
		t.Fatalf("Reconcile with a dead broker: want an error, not 'unpublished'")
	}
}

// TestRunThenReconcile ties the generator to reconciliation: a fake server
// that stores and publishes what it acknowledges reconciles clean.
func TestRunThenReconcile(t *testing.T) {
	dbURL := scratchDB(t, `CREATE TABLE orders (id text PRIMARY KEY)`)
	brokers := fakeKafka(t)
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.Fail503Every = 7 })
	res, _ := mustRun(t, Config{Target: srv.URL, Conns: 2, Scenario: ScenarioDuplicates, MaxRequests: 300, Duration: untilMax})
	stored, _ := srv.Snapshot()
	pgtest.Exec(t, dbURL, `INSERT INTO orders (id) SELECT unnest($1::text[])`, stored)
	ce := make([]string, len(stored))
	for i, id := range stored {
		ce[i] = id + "/1"
	}
	publish(t, brokers, ce...)
	rc, err := Reconcile(context.Background(), dbURL, brokers, "orders", res.AckedIDs(), res.RefusedIDs(), 20*time.Second)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if !rc.OK() || rc.Acked != len(stored) || rc.Refused == 0 {
		t.Fatalf("Reconcile: got %+v; want OK over %d acked and some refused", rc, len(stored))
	}
}
