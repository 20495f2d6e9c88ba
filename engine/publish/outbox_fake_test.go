package publish

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/order"
)

// fakeOutbox is an in-memory Outbox with the real store's semantics that the
// publisher relies on: a sweep locks the rows it hands out until it commits
// or rolls back, and a concurrent sweep skips locked rows (SKIP LOCKED); fn's
// error rolls back (rows kept, unlocked); events are valid only during fn
// (the fake scribbles over them afterwards); a delete of a row a sweep holds
// wins either way (as a DELETE waiting on the row lock would).
type fakeOutbox struct {
	mu   sync.Mutex
	rows map[order.EventKey]*fakeRow

	// oneSweep models the store taking a transaction-scoped advisory lock
	// (pg_try_advisory_xact_lock) before selecting: a sweep that finds
	// another one running returns 0 rows at once. Without it, two
	// concurrent sweeps may split one order's rows between them.
	oneSweep bool
	sweepMu  sync.Mutex
	sweeps   int
	deletes  int // DeleteEvents calls
}

type fakeRow struct {
	ev       order.Event
	enqueued time.Time
	locked   bool
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{rows: make(map[order.EventKey]*fakeRow)}
}

// insert adds copies of evs enqueued at enq, as a commit does.
func (f *fakeOutbox) insert(enq time.Time, evs ...order.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range evs {
		ev.OrderID = strings.Clone(ev.OrderID)
		ev.Type = strings.Clone(ev.Type)
		ev.Payload = slices.Clone(ev.Payload)
		f.rows[order.EventKey{OrderID: ev.OrderID, Version: ev.Version}] = &fakeRow{ev: ev, enqueued: enq}
	}
}

func (f *fakeOutbox) DeleteEvents(ctx context.Context, keys []order.EventKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	for _, k := range keys {
		delete(f.rows, k)
	}
	return nil
}

func (f *fakeOutbox) SweepEvents(ctx context.Context, olderThan time.Duration, limit int, fn func([]order.Event) error) (int, error) {
	if f.oneSweep {
		if !f.sweepMu.TryLock() {
			return 0, nil
		}
		defer f.sweepMu.Unlock()
	}
	f.mu.Lock()
	f.sweeps++
	cutoff := time.Now().Add(-olderThan)
	var picked []*fakeRow
	for _, r := range f.rows {
		if !r.locked && r.enqueued.Before(cutoff) {
			picked = append(picked, r)
		}
	}
	slices.SortFunc(picked, func(a, b *fakeRow) int {
		if c := strings.Compare(a.ev.OrderID, b.ev.OrderID); c != 0 {
			return c
		}
		return int(a.ev.Version - b.ev.Version)
	})
	picked = picked[:min(len(picked), limit)]
	// Hand out copies in scan buffers of our own, as pgx would.
	events := make([]order.Event, len(picked))
	for i, r := range picked {
		r.locked = true
		events[i] = r.ev
		events[i].OrderID = strings.Clone(r.ev.OrderID)
		events[i].Payload = slices.Clone(r.ev.Payload)
	}
	f.mu.Unlock()

	err := ctx.Err()
	if err == nil {
		err = fn(events)
	}
	for i := range events { // valid only during fn
		clear(events[i].Payload)
		events[i] = order.Event{}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range picked {
		k := order.EventKey{OrderID: r.ev.OrderID, Version: r.ev.Version}
		if f.rows[k] != r {
			continue // deleted meanwhile
		}
		if err == nil {
			delete(f.rows, k)
		} else {
			r.locked = false
		}
	}
	if err != nil {
		return 0, err
	}
	return len(picked), nil
}

func (f *fakeOutbox) OutboxBacklog(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.rows)), nil
}

func (f *fakeOutbox) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows)
}
