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
// or rolls back, and a concurrent sweep skips locked rows; fn's error rolls
// back (rows kept, unlocked); events are valid only during fn (the fake
// scribbles over them afterwards); an acknowledgement of a row a sweep holds
// wins either way. Rows are keyed by seq and swept in seq order, stopping
// at the first row younger than olderThan, as the store does. An
// acknowledged row is dropped (the store records it instead).
type fakeOutbox struct {
	mu   sync.Mutex
	rows map[int64]*fakeRow

	// oneSweep models the store taking a transaction-scoped advisory lock
	// (pg_try_advisory_xact_lock) before selecting: a sweep that finds
	// another one running returns 0 rows at once. Without it, two
	// concurrent sweeps may split one order's rows between them.
	oneSweep bool
	sweepMu  sync.Mutex
	sweeps   int
	acks     int // AckEvents calls
}

type fakeRow struct {
	ev       order.Event
	enqueued time.Time
	locked   bool
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{rows: make(map[int64]*fakeRow)}
}

// insert adds copies of evs enqueued at enq, as a commit does.
func (f *fakeOutbox) insert(enq time.Time, evs ...order.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range evs {
		ev.OrderID = strings.Clone(ev.OrderID)
		ev.Type = strings.Clone(ev.Type)
		ev.Payload = slices.Clone(ev.Payload)
		ev.TraceState = strings.Clone(ev.TraceState)
		f.rows[ev.Seq] = &fakeRow{ev: ev, enqueued: enq}
	}
}

func (f *fakeOutbox) AckEvents(ctx context.Context, seqs []int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks++
	for _, s := range seqs {
		delete(f.rows, s)
	}
	return nil
}

func (f *fakeOutbox) SweepEvents(ctx context.Context, olderThan time.Duration, limit int, fn func([]order.Event) error) (int, time.Time, error) {
	if f.oneSweep {
		if !f.sweepMu.TryLock() {
			return 0, time.Time{}, nil
		}
		defer f.sweepMu.Unlock()
	}
	f.mu.Lock()
	f.sweeps++
	now := time.Now()
	cutoff := now.Add(-olderThan)
	var unlocked []*fakeRow
	for _, r := range f.rows {
		if !r.locked {
			unlocked = append(unlocked, r)
		}
	}
	slices.SortFunc(unlocked, func(a, b *fakeRow) int { return int(a.ev.Seq - b.ev.Seq) })
	var picked []*fakeRow
	done := true
	for _, r := range unlocked {
		if !r.enqueued.Before(cutoff) {
			break // younger: the fast path may still be on it
		}
		if len(picked) == limit {
			done = false
			break
		}
		picked = append(picked, r)
	}
	// Hand out copies in scan buffers of our own, as pgx would.
	events := make([]order.Event, len(picked))
	for i, r := range picked {
		r.locked = true
		events[i] = r.ev
		events[i].OrderID = strings.Clone(r.ev.OrderID)
		events[i].Payload = slices.Clone(r.ev.Payload)
		events[i].TraceState = string([]byte(r.ev.TraceState))
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
		if f.rows[r.ev.Seq] != r {
			continue // acknowledged meanwhile
		}
		if err == nil {
			delete(f.rows, r.ev.Seq)
		} else {
			r.locked = false
		}
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	if !done {
		return len(picked), time.Time{}, nil
	}
	return len(picked), cutoff, nil
}

func (f *fakeOutbox) OutboxStats(ctx context.Context) (int64, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var oldest time.Time
	for _, r := range f.rows {
		if oldest.IsZero() || r.enqueued.Before(oldest) {
			oldest = r.enqueued
		}
	}
	if oldest.IsZero() {
		return 0, 0, nil
	}
	return int64(len(f.rows)), time.Since(oldest), nil
}

func (f *fakeOutbox) ReclaimOutbox(ctx context.Context) (int, error) { return 0, ctx.Err() }

func (f *fakeOutbox) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows)
}
