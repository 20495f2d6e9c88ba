package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

const (
	traceA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceB = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	stateA = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

func mustTraceParent(t testing.TB, s string) order.TraceParent {
	t.Helper()
	p, ok := order.ParseTraceParent([]byte(s))
	if !ok {
		t.Fatalf("ParseTraceParent(%q) refused", s)
	}
	return p
}

// traceRow is one outbox_events row's trace columns; "NULL" for NULL.
func traceRows(t *testing.T, url, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT order_id || '/' || version, coalesce(traceparent, 'NULL'), coalesce(tracestate, 'NULL') FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, tp, ts string
		if err := rows.Scan(&id, &tp, &ts); err != nil {
			t.Fatal(err)
		}
		out[id] = tp + " " + ts
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The trace context of orders and status changes reaches outbox_events
// (NULL when absent), comes back from SweepEvents, and survives parking and
// requeueing. Both order insert paths (arrays below CopyMinRows, COPY
// through the staging table above) write the same outbox rows.
func TestTraceContextThroughTheOutbox(t *testing.T) {
	for _, copyMin := range []int{0, 1} {
		t.Run(fmt.Sprintf("copy-min-rows=%d", copyMin), func(t *testing.T) {
			testCopyMinRows = copyMin
			defer func() { testCopyMinRows = 0 }()
			testTraceContextThroughTheOutbox(t)
		})
	}
}

func testTraceContextThroughTheOutbox(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	a, b, c := testOrder("ord_a", 1), testOrder("ord_b", 2), testOrder("ord_c", 3)
	a.TraceParent, a.TraceState = mustTraceParent(t, traceA), stateA
	b.TraceParent = mustTraceParent(t, traceB)
	s.WriteOrders(ctx, []*order.Batch{batchOf(a, b, c)})

	ub := updates(testReceived, "ord_a", "paid", "ord_c", "paid")
	ub.Updates[0].TraceParent, ub.Updates[0].TraceState = mustTraceParent(t, traceB), "x=1"
	s.WriteStatus(ctx, []*order.UpdateBatch{ub})
	for _, u := range ub.Updates {
		if u.Outcome != order.UpdateApplied {
			t.Fatalf("update %s: %v %v", u.OrderID, u.Outcome, u.Err)
		}
	}

	want := map[string]string{
		"ord_a/1": traceA + " " + stateA,
		"ord_b/1": traceB + " NULL",
		"ord_c/1": "NULL NULL",
		"ord_a/2": traceB + " x=1",
		"ord_c/2": "NULL NULL",
	}
	if got := traceRows(t, url, "outbox_events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outbox_events trace columns:\n got %v\nwant %v", got, want)
	}
	if got := traceRows(t, url, "outbox"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outbox view trace columns:\n got %v\nwant %v", got, want)
	}

	// The sweeper reads them back; park ord_a's events and c's first.
	var swept []order.Event
	_, _, err := s.SweepEvents(ctx, -time.Hour, 100, func(evs []order.Event) error {
		swept = copyEvents(evs)
		var park parkAll
		for _, e := range evs {
			if e.OrderID == "ord_a" || e.OrderID == "ord_c" && e.Version == 1 {
				park = append(park, order.ParkedEvent{Seq: e.Seq, Err: "test", Attempts: 1})
			}
		}
		return park
	})
	if err != nil {
		t.Fatalf("SweepEvents: %v", err)
	}
	if got := sweptTraces(swept); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("swept trace context:\n got %v\nwant %v", got, want)
	}
	wantDead := map[string]string{"ord_a/1": want["ord_a/1"], "ord_a/2": want["ord_a/2"], "ord_c/1": want["ord_c/1"]}
	if got := traceRows(t, url, "outbox_dead"); fmt.Sprint(got) != fmt.Sprint(wantDead) {
		t.Fatalf("outbox_dead trace columns:\n got %v\nwant %v", got, wantDead)
	}

	// Requeued, they come back with it.
	if n, err := s.RequeueDead(ctx, true, nil); err != nil || n != 3 {
		t.Fatalf("RequeueDead: %d, %v; want 3", n, err)
	}
	swept = nil
	_, _, err = s.SweepEvents(ctx, -time.Hour, 100, func(evs []order.Event) error {
		swept = copyEvents(evs)
		return nil
	})
	if err != nil {
		t.Fatalf("SweepEvents after requeue: %v", err)
	}
	if got := sweptTraces(swept); fmt.Sprint(got) != fmt.Sprint(wantDead) {
		t.Fatalf("requeued trace context:\n got %v\nwant %v", got, wantDead)
	}
}

// parkAll is a sweep callback's error that parks the events it lists.
type parkAll []order.ParkedEvent

func (p parkAll) Error() string                     { return "park" }
func (p parkAll) ParkedEvents() []order.ParkedEvent { return p }

func sweptTraces(evs []order.Event) map[string]string {
	out := map[string]string{}
	for _, e := range evs {
		tp, ts := "NULL", "NULL"
		if e.TraceParent.Valid() {
			tp = e.TraceParent.String()
		}
		if e.TraceState != "" {
			ts = e.TraceState
		}
		out[fmt.Sprintf("%s/%d", e.OrderID, e.Version)] = tp + " " + ts
	}
	return out
}

// A hand-written row whose traceparent is not one is published without
// it (the column is text; only the writers' values are trusted).
func TestSweepIgnoresMalformedTraceParent(t *testing.T) {
	s, url, _ := newTestStore(t)
	pgtest.Exec(t, url, `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload, enqueued_at, traceparent, tracestate)
VALUES ('ord_x', 1, 'order.created', now(), '\x7b7d', now() - interval '1 hour', 'not-a-traceparent', 'a=1'),
       ('ord_y', 1, 'order.created', now(), '\x7b7d', now() - interval '1 hour', $1, 'a=1')`, strings.ToUpper(traceA))
	var swept []order.Event
	if _, _, err := s.SweepEvents(context.Background(), time.Minute, 10, func(evs []order.Event) error {
		swept = copyEvents(evs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ord_x/1": "NULL NULL", "ord_y/1": "NULL NULL"}
	if got := sweptTraces(swept); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("swept: %v; want %v", got, want)
	}
}

// A database that had 0005 (outbox_dead) but not 0004 when the trace
// columns came: Migrate applies 0004 and 0006, events and parked rows
// already there keep NULL trace columns, and new writes fill them.
func TestMigrateAddsTraceColumnsAfter0005(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, `CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	applied := 0
	for _, m := range ms {
		if m.version != 1 && m.version != 2 && m.version != 3 && m.version != 5 {
			continue
		}
		pgtest.Exec(t, url, m.sql)
		pgtest.Exec(t, url, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
		applied++
	}
	if applied != 4 {
		t.Fatalf("applied %d of migrations 1, 2, 3, 5", applied)
	}
	pgtest.Exec(t, url, `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload, enqueued_at)
VALUES ('ord_old', 1, 'order.created', now(), '\x7b7d', now() - interval '1 hour')`)
	pgtest.Exec(t, url, `INSERT INTO outbox_dead (order_id, version, seq, ce_type, ce_time, payload, enqueued_at, error, attempts)
VALUES ('ord_dead', 1, 99, 'order.created', now(), '\x7b7d', now(), 'test', 2)`)

	s, err := New(ctx, Config{URL: url}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM schema_migrations`); n != int64(len(ms)) {
		t.Fatalf("schema_migrations rows = %d; want %d", n, len(ms))
	}
	if got := traceRows(t, url, "outbox_events"); fmt.Sprint(got) != "map[ord_old/1:NULL NULL]" {
		t.Fatalf("old event: %v", got)
	}
	if got := traceRows(t, url, "outbox_dead"); fmt.Sprint(got) != "map[ord_dead/1:NULL NULL]" {
		t.Fatalf("old parked event: %v", got)
	}
	o := testOrder("ord_new", 7)
	o.TraceParent, o.TraceState = mustTraceParent(t, traceA), stateA
	b := batchOf(o)
	s.WriteOrders(ctx, []*order.Batch{b})
	if b.Orders[0].Result.Outcome != order.OutcomeCreated {
		t.Fatalf("write after migration: %v %v", b.Orders[0].Result.Outcome, b.Orders[0].Result.Err)
	}
	if got := traceRows(t, url, "outbox")["ord_new/1"]; got != traceA+" "+stateA {
		t.Fatalf("new event through the view: %q", got)
	}
}
