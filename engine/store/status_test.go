package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

func updates(at time.Time, kv ...string) *order.UpdateBatch {
	b := order.GetUpdateBatch()
	for i := 0; i+1 < len(kv); i += 2 {
		st, ok := order.ParseStatus(kv[i+1])
		if !ok {
			panic("bad status " + kv[i+1])
		}
		b.Add([]byte(kv[i]), st, at)
	}
	return b
}

func TestWriteStatusAppliesInArrivalOrder(t *testing.T) {
	s, url, _ := newTestStore(t)
	writeN(t, s, 3) // ord_000, ord_001, ord_002 at version 1, status created
	at := time.Date(2026, 11, 25, 11, 0, 0, 123456000, time.UTC)
	b := updates(at,
		"ord_000", "paid", // applied: v2
		"ord_000", "paid", // noop: already paid by the previous update in this batch
		"ord_000", "assembling", // applied: v3, checked against paid
		"ord_001", "delivered", // invalid: created → delivered skips states
		"ord_002", "cancelled", // applied: v2
		"ord_002", "paid", // invalid: cancelled is final
		"ord_404", "paid", // not found
	)
	s.WriteStatus(context.Background(), []*order.UpdateBatch{b})
	type want struct {
		o        order.UpdateOutcome
		prev     order.Status
		version  int32
		hasEvent bool
	}
	wants := []want{
		{order.UpdateApplied, order.StatusCreated, 2, true},
		{order.UpdateNoop, order.StatusPaid, 2, false},
		{order.UpdateApplied, order.StatusPaid, 3, true},
		{order.UpdateInvalid, order.StatusCreated, 1, false},
		{order.UpdateApplied, order.StatusCreated, 2, true},
		{order.UpdateInvalid, order.StatusCancelled, 2, false},
		{order.UpdateNotFound, 0, 0, false},
	}
	for i, w := range wants {
		u := b.Updates[i]
		if u.Outcome != w.o || u.Previous != w.prev || u.Version != w.version || (u.Event != nil) != w.hasEvent {
			t.Errorf("update %d (%s→%s): got outcome=%d prev=%s v=%d event=%t; want %+v (err %v)",
				i, u.OrderID, u.Status, u.Outcome, u.Previous, u.Version, u.Event != nil, w, u.Err)
		}
	}
	var ev map[string]any
	if err := json.Unmarshal(b.Updates[2].Event, &ev); err != nil {
		t.Fatalf("event %s: %v", b.Updates[2].Event, err)
	}
	if ev["order_id"] != "ord_000" || ev["status"] != "assembling" || ev["previous_status"] != "paid" || ev["version"] != float64(3) || ev["at"] != "2026-11-25T11:00:00.123456Z" {
		t.Errorf("event = %s", b.Updates[2].Event)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM orders WHERE id = 'ord_000' AND status = 'assembling' AND version = 3 AND updated_at = $1`, at); n != 1 {
		t.Errorf("ord_000 not at assembling/v3 with updated_at %v", at)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM orders WHERE id = 'ord_001' AND status = 'created' AND version = 1`); n != 1 {
		t.Errorf("ord_001 changed by an invalid transition")
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox WHERE ce_type = 'order.status_changed'`); n != 3 {
		t.Errorf("status outbox rows = %d; want 3 (one per new version)", n)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox WHERE order_id = 'ord_000' AND version IN (2, 3)`); n != 2 {
		t.Errorf("ord_000 outbox versions 2 and 3: %d rows", n)
	}
	order.PutUpdateBatch(b)
}

// Concurrent writers changing the same orders serialise on the row locks:
// every applied change gets its own version, the chain has no gap or
// duplicate, and the outbox holds exactly one event per version.
func TestWriteStatusConcurrentVersionChain(t *testing.T) {
	s, url, _ := newTestStore(t)
	writeN(t, s, 2)
	steps := []string{"paid", "assembling", "delivering", "delivered"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := map[string][]int32{}
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("ord_%03d", (w+i)%2)
				b := updates(time.Now(), id, steps[(w+i)%len(steps)])
				s.WriteStatus(context.Background(), []*order.UpdateBatch{b})
				u := b.Updates[0]
				if u.Outcome == order.UpdateFailed {
					t.Errorf("update failed: %v", u.Err)
				}
				if u.Outcome == order.UpdateApplied {
					mu.Lock()
					applied[id] = append(applied[id], u.Version)
					mu.Unlock()
				}
				order.PutUpdateBatch(b)
			}
		})
	}
	wg.Wait()
	for id, vs := range applied {
		seen := map[int32]bool{}
		for _, v := range vs {
			if seen[v] {
				t.Errorf("%s: version %d applied twice", id, v)
			}
			seen[v] = true
		}
		final := pgtest.Int64(t, url, `SELECT version FROM orders WHERE id = $1`, id)
		if int(final) != 1+len(vs) {
			t.Errorf("%s: final version %d; want %d (1 + applied changes)", id, final, 1+len(vs))
		}
		if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox WHERE order_id = $1 AND version > 1`, id); int(n) != len(vs) {
			t.Errorf("%s: %d status events; want %d", id, n, len(vs))
		}
	}
}

func TestWriteStatusUnreachable(t *testing.T) {
	s, err := New(context.Background(), Config{URL: "postgres://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := updates(time.Now(), "ord_1", "paid")
	start := time.Now()
	s.WriteStatus(context.Background(), []*order.UpdateBatch{b})
	if b.Updates[0].Outcome != order.UpdateFailed {
		t.Fatalf("outcome = %d; want UpdateFailed", b.Updates[0].Outcome)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
