package order

import (
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
)

// UpdateOutcome is what applying one status change came to.
type UpdateOutcome uint8

// The outcomes of a status change. UpdatePending means not decided yet.
const (
	UpdatePending  UpdateOutcome = iota
	UpdateApplied                // a new version was committed: 200
	UpdateNoop                   // the order already had that status: 200, no new version, no event
	UpdateNotFound               // no such order: 404
	UpdateInvalid                // the status machine forbids it: 409 invalid_transition
	UpdateFailed                 // not committed, or not known to be: 503, retry
)

// Update is one requested status change. OrderID is a view into the owning
// UpdateBatch's arena, valid until the batch is reset or put back.
type Update struct {
	OrderID    string
	Status     Status    // the requested status
	ReceivedAt time.Time // truncated to microseconds: the change's updated_at and ce_time
	// TraceParent and TraceState are the request's trace context (see
	// Order), carried to the change's event; TraceState is a view into the
	// arena.
	TraceParent TraceParent
	TraceState  string

	// Set by the store.
	Outcome  UpdateOutcome
	Previous Status // the status before this change (for Applied, Noop, Invalid)
	Version  int32  // the order's version after this update (the current one for Noop/Invalid)
	Event    []byte // order.status_changed value for Applied, a view into the arena
	EventSeq int64  // Applied: the seq of that event's outbox row
	After    After  // Applied: what its event waits for before the fast path (see After)
	Err      error  // why, for UpdateFailed; for logs only
}

// UpdateBatch owns a group of status changes submitted together and the
// arena their strings and events live in. Like Batch it is the unit the
// status pipeline queues, with the same lifetime rules: UpdateBatch from
// GetUpdateBatch, submit, wait on Done, read, PutUpdateBatch — and never put
// back a batch whose wait was abandoned.
type UpdateBatch struct {
	Updates []Update
	arena   bytesutil.Arena
	completion
}

var updatePool = sync.Pool{New: func() any { return &UpdateBatch{completion: newCompletion()} }}

// GetUpdateBatch returns an empty UpdateBatch from the pool.
func GetUpdateBatch() *UpdateBatch { return updatePool.Get().(*UpdateBatch) }

// PutUpdateBatch resets b and returns it to the pool. Only after Done.
func PutUpdateBatch(b *UpdateBatch) {
	clear(b.Updates)
	b.Updates = b.Updates[:0]
	b.arena.Reset(MaxRetainedArena)
	b.drain()
	updatePool.Put(b)
}

// Add appends a status change for order id (copied into the arena) and
// returns its index. receivedAt is truncated to microseconds.
func (b *UpdateBatch) Add(id []byte, st Status, receivedAt time.Time) int {
	b.Updates = append(b.Updates, Update{
		OrderID:    b.arena.CopyString(id),
		Status:     st,
		ReceivedAt: receivedAt.Truncate(time.Microsecond),
	})
	return len(b.Updates) - 1
}

// Len reports the number of updates (the pipeline's row count).
func (b *UpdateBatch) Len() int { return len(b.Updates) }

// Bytes reports the arena bytes the batch holds.
func (b *UpdateBatch) Bytes() int { return b.arena.Len() + 64*len(b.Updates) }

// Arena exposes the batch arena to the store, which appends the events of
// applied changes there. Valid until the batch is reset.
func (b *UpdateBatch) Arena() *bytesutil.Arena { return &b.arena }

// ChangedEvent returns the order.status_changed outbox event of an applied
// change. Its strings and payload are views into the batch's arena.
func (u *Update) ChangedEvent() Event {
	return Event{Seq: u.EventSeq, OrderID: u.OrderID, Version: u.Version, Type: EventStatusChanged, Time: u.ReceivedAt, Payload: u.Event,
		TraceParent: u.TraceParent, TraceState: u.TraceState, After: u.After}
}
