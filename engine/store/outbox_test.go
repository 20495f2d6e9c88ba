package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// writeN commits n orders ord_000… and returns their event keys.
func writeN(t *testing.T, s *Store, n int) []order.EventKey {
	t.Helper()
	b := order.GetBatch()
	var keys []order.EventKey
	for i := range n {
		id := fmt.Sprintf("ord_%03d", i)
		b.Orders = append(b.Orders, testOrder(id, uint64(i)))
		keys = append(keys, order.EventKey{OrderID: id, Version: 1})
	}
	s.WriteOrders(context.Background(), []*order.Batch{b})
	for _, o := range b.Orders {
		if o.Result.Outcome != order.OutcomeCreated {
			t.Fatalf("write %s: %v %v", o.ID, o.Result.Outcome, o.Result.Err)
		}
	}
	return keys
}

func backlog(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.OutboxBacklog(context.Background())
	if err != nil {
		t.Fatalf("OutboxBacklog: %v", err)
	}
	return n
}

func TestDeleteEvents(t *testing.T) {
	s, _, _ := newTestStore(t)
	keys := writeN(t, s, 5)
	if n := backlog(t, s); n != 5 {
		t.Fatalf("backlog = %d; want 5", n)
	}
	del := []order.EventKey{keys[1], keys[3], {OrderID: "ord_000", Version: 2}, {OrderID: "nope", Version: 1}}
	if err := s.DeleteEvents(context.Background(), del); err != nil {
		t.Fatalf("DeleteEvents: %v", err)
	}
	if err := s.DeleteEvents(context.Background(), nil); err != nil {
		t.Fatalf("DeleteEvents(nil): %v", err)
	}
	if n := backlog(t, s); n != 3 {
		t.Fatalf("backlog after deleting 2 = %d; want 3", n)
	}
}

func TestSweepEvents(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	writeN(t, s, 3)

	// Rows younger than the threshold are left alone.
	n, err := s.SweepEvents(ctx, time.Hour, 10, func([]order.Event) error {
		t.Fatalf("fn called for rows younger than the threshold")
		return nil
	})
	if err != nil || n != 0 {
		t.Fatalf("SweepEvents(1h) = %d, %v; want 0, nil", n, err)
	}

	// fn's error keeps the rows.
	boom := errors.New("broker away")
	n, err = s.SweepEvents(ctx, 0, 10, func(evs []order.Event) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("SweepEvents with failing fn = %d, %v; want 0, %v", n, err, boom)
	}
	if n := backlog(t, s); n != 3 {
		t.Fatalf("backlog after a failed sweep = %d; want 3", n)
	}

	// Old enough: published in key order, then deleted.
	pgtest.Exec(t, url, "UPDATE outbox SET enqueued_at = now() - interval '1 minute' WHERE order_id <> 'ord_002'")
	var got []order.Event
	n, err = s.SweepEvents(ctx, 30*time.Second, 10, func(evs []order.Event) error {
		for _, e := range evs {
			e.OrderID, e.Type, e.Payload = string([]byte(e.OrderID)), string([]byte(e.Type)), slices.Clone(e.Payload)
			got = append(got, e)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("SweepEvents(30s) = %d, %v; want 2, nil", n, err)
	}
	for i, e := range got {
		id := fmt.Sprintf("ord_%03d", i)
		if e.OrderID != id || e.Version != 1 || e.Type != order.EventCreated || !e.Time.Equal(testReceived) ||
			string(e.Payload) != fmt.Sprintf(`{"order":{"id":%q}}`, id) {
			t.Fatalf("event %d = %+v (payload %s); want %s v1 %s at %v", i, e, e.Payload, id, order.EventCreated, testReceived)
		}
	}
	if n := backlog(t, s); n != 1 {
		t.Fatalf("backlog after sweeping 2 = %d; want 1", n)
	}
}

func TestSweepEventsOneAtATime(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	writeN(t, s, 10)
	time.Sleep(5 * time.Millisecond) // enqueued_at < now() - 0 needs a later now()

	ids := func(evs []order.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, string([]byte(e.OrderID)))
		}
		return out
	}
	var first, second []string
	locked := make(chan struct{})
	secondDone := make(chan error, 1)
	go func() {
		<-locked
		_, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error {
			second = ids(evs)
			return nil
		})
		// Busy must be told apart from "nothing to sweep".
		var busy interface{ SweepBusy() bool }
		if !errors.As(err, &busy) || !busy.SweepBusy() {
			secondDone <- fmt.Errorf("concurrent sweep returned %v; want the SweepBusy error", err)
			return
		}
		secondDone <- nil
	}()
	n1, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error {
		first = ids(evs)
		close(locked)
		// Hold the row locks until the concurrent sweep has finished.
		return <-secondDone
	})
	if err != nil {
		t.Fatalf("first sweep: %v", err)
	}
	// One sweep at a time (advisory lock): the concurrent one gets nothing.
	if n1 != 6 || len(first) != 6 || len(second) != 0 {
		t.Fatalf("sweeps got %v and %v; want 6 and none for the concurrent sweep", first, second)
	}
	for _, id := range second {
		if slices.Contains(first, id) {
			t.Fatalf("row %s handed to both sweeps: %v / %v", id, first, second)
		}
	}
	if n := backlog(t, s); n != 4 {
		t.Fatalf("backlog = %d; want the 4 rows left for the next sweep", n)
	}
	n2, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error { second = ids(evs); return nil })
	if err != nil || n2 != 4 {
		t.Fatalf("next sweep = %d, %v; want 4", n2, err)
	}
	for _, id := range second {
		if slices.Contains(first, id) {
			t.Fatalf("row %s handed to both sweeps: %v / %v", id, first, second)
		}
	}
}
