package order

import (
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
)

// Status is an order's place in the grocery-delivery status machine:
// created → paid → assembling → delivering → delivered; cancelled from any
// state but delivered; delivered and cancelled are final.
type Status uint8

// The statuses, in machine order. The zero value is not a status.
const (
	StatusCreated Status = iota + 1
	StatusPaid
	StatusAssembling
	StatusDelivering
	StatusDelivered
	StatusCancelled
)

var statusNames = [...]string{
	StatusCreated:    "created",
	StatusPaid:       "paid",
	StatusAssembling: "assembling",
	StatusDelivering: "delivering",
	StatusDelivered:  "delivered",
	StatusCancelled:  "cancelled",
}

// String returns the status as it appears in the API, the database and events.
func (s Status) String() string {
	if s == 0 || int(s) >= len(statusNames) {
		return ""
	}
	return statusNames[s]
}

// ParseStatus maps an API status name to a Status. It does not allocate.
func ParseStatus(s string) (Status, bool) {
	for i := StatusCreated; i <= StatusCancelled; i++ {
		if statusNames[i] == s {
			return i, true
		}
	}
	return 0, false
}

// CanTransition reports whether an order in status s may move to next.
// Setting the current status again is not a transition (callers treat it as
// a no-op before asking).
// Either side not being a valid status is never a transition.
func (s Status) CanTransition(next Status) bool {
	switch {
	case !s.Valid() || !next.Valid():
		return false
	case s == StatusDelivered || s == StatusCancelled:
		return false
	case next == StatusCancelled:
		return true
	default:
		return next == s+1 && next <= StatusDelivered
	}
}

// Valid reports whether s is one of the six statuses.
func (s Status) Valid() bool { return s >= StatusCreated && s <= StatusCancelled }

// Item is one line of an order. SKU is a view into the owning Batch's arena.
type Item struct {
	SKU string
	Qty int64
	// PriceCents is the catalog unit price in minor units, set by Order.Price.
	PriceCents int64
	// ClientPriceCents is price_cents as the client sent it; valid only when
	// HasClientPrice is true.
	ClientPriceCents int64
	HasClientPrice   bool
}

// Order is one order as decoded from a request or read from the store.
//
// String fields and Event are views into the arena of the Batch that owns the
// order (or, for orders read by the store, into memory the store allocated):
// they are valid until the Batch is reset or returned to its pool.
type Order struct {
	ID             string
	UserID         string
	Currency       string // 3 upper-case letters; "EUR" when the client sent none
	IdempotencyKey string // "" when the request had none
	Items          []Item // capped sub-slice of the batch's item storage

	// CreatedAt is the client's created_at, or ReceivedAt when absent;
	// truncated to microseconds (PostgreSQL's precision).
	CreatedAt    time.Time
	HasCreatedAt bool
	// ReceivedAt is the server's receive time, truncated to microseconds. It
	// is the order's first updated_at, the event's ce_time and its Kafka
	// record timestamp.
	ReceivedAt time.Time

	// Set by Price and Seal before the order is submitted.
	TotalCents int64
	Hash       uint64 // content hash: same hash under one id = same order
	Event      []byte // order.created event value (JSON), view into the arena

	// TraceParent and TraceState are the W3C trace context of the request
	// that carried the order (ParseTraceParent, AppendTraceState), stored
	// with its event and sent as that event's Kafka headers. The zero
	// TraceParent and "" mean none. TraceState is a view into the arena.
	// Neither is part of the content hash: a retry with another trace
	// context is the same order.
	TraceParent TraceParent
	TraceState  string

	// Filled by the store for orders it reads back (GET).
	Status    Status
	Version   int32
	UpdatedAt time.Time

	// Result is written by the pipeline's sink before the batch completes.
	Result Result
}

// Outcome is what committing one order came to.
type Outcome uint8

// The outcomes. OutcomePending means the sink has not decided yet.
const (
	OutcomePending   Outcome = iota
	OutcomeCreated           // committed now: 201
	OutcomeDuplicate         // the same order was already committed: 200
	OutcomeConflict          // id or idempotency key taken by a different order: 409
	OutcomeRejected          // PostgreSQL refused the row's data: 400, nothing stored
	OutcomeFailed            // not committed, or not known to be: 503, retry with the same id
)

// Result is the sink's verdict on one order. For OutcomeDuplicate, Status,
// TotalCents and Version describe the stored order.
type Result struct {
	Outcome    Outcome
	Status     Status
	TotalCents int64
	Version    int32
	EventSeq   int64 // OutcomeCreated: the seq of its order.created outbox event
	Err        error // why, for OutcomeRejected and OutcomeFailed; for logs only
	// LeftToSweeper (OutcomeDuplicate): an earlier attempt of the same write,
	// whose outcome was unknown, stored the order; its order.created event
	// was handed to no fast path, and waits for the sweeper.
	LeftToSweeper bool
}

// Batch owns a group of orders submitted together (one HTTP request, or one
// transaction's share of a bulk request), their items and the arena every
// string of theirs points into. A Batch is the unit the pipeline queues: it
// counts as Len() rows and Bytes() bytes against the batcher's limits.
//
// Lifetime: get a Batch with GetBatch, fill it, submit it, wait on Done,
// read the results, then PutBatch. If the wait is abandoned (timeout) the
// batch's fate is unknown: do not Put it; let the GC have it.
//
// A Batch is not safe for concurrent use; ownership passes from the handler
// to the pipeline on submit and back when Done delivers its value.
type Batch struct {
	Orders []Order
	items  []Item
	arena  bytesutil.Arena
	completion
}

// MaxRetainedArena is the largest arena a pooled batch keeps (1 MiB); larger
// ones are dropped on Put so a rare huge request does not pin memory.
const MaxRetainedArena = 1 << 20

var batchPool = sync.Pool{New: func() any { return &Batch{completion: newCompletion()} }}

// GetBatch returns an empty Batch from the pool. Follow with PutBatch.
func GetBatch() *Batch {
	return batchPool.Get().(*Batch)
}

// PutBatch resets b and returns it to the pool. Only call it once the
// pipeline has signalled Done (or b was never submitted).
func PutBatch(b *Batch) {
	b.reset()
	batchPool.Put(b)
}

func (b *Batch) reset() {
	clear(b.Orders)
	b.Orders = b.Orders[:0]
	clear(b.items)
	b.items = b.items[:0]
	b.arena.Reset(MaxRetainedArena)
	b.drain()
}

// Len reports the number of orders in the batch (the pipeline's row count).
func (b *Batch) Len() int { return len(b.Orders) }

// Bytes reports the arena bytes the batch holds (the pipeline's byte count).
func (b *Batch) Bytes() int { return b.arena.Len() }

// completion is how a queued batch (Batch, UpdateBatch) tells its waiting
// handler that every result is final: one buffered slot, so the pipeline's
// Complete never blocks.
type completion struct{ done chan struct{} }

func newCompletion() completion { return completion{done: make(chan struct{}, 1)} }

// Complete signals that every result in the batch is final. The pipeline
// calls it exactly once per submit; it never blocks.
func (c completion) Complete() {
	select {
	case c.done <- struct{}{}:
	default:
	}
}

// Done returns the channel that receives one value when Complete is called.
func (c completion) Done() <-chan struct{} { return c.done }

// drain drops a completion left unread, before the batch is pooled.
func (c completion) drain() {
	select {
	case <-c.done:
	default:
	}
}

// Arena exposes the batch arena to code that must place bytes in it (the
// store, when reading orders back). Valid until the batch is reset.
func (b *Batch) Arena() *bytesutil.Arena { return &b.arena }

// Event types (CloudEvents ce_type).
const (
	EventCreated       = "order.created"
	EventStatusChanged = "order.status_changed"
)

// Event is one outbox row: a committed change waiting to be published to
// Kafka. Its CloudEvents id is "<OrderID>/<Version>". OrderID, Type and
// Payload are views into memory owned by whoever filled the Event (a batch
// arena, or the store's scan buffers): consumers that keep them past the
// call they received them in must copy.
//
// TraceParent and TraceState are the trace context of the request whose
// change produced the event (zero and "" for none): the outbox stores them
// and the publisher sends them as the record's traceparent and tracestate
// headers. TraceState is a view like OrderID.
type Event struct {
	Seq         int64 // position in the outbox's publishing order, set by the store
	OrderID     string
	Version     int32
	Type        string    // EventCreated or EventStatusChanged
	Time        time.Time // ingest time: ce_time and the Kafka record timestamp
	Payload     []byte    // the record value, JSON
	TraceParent TraceParent
	TraceState  string
	After       After // what the fast path must wait for first (status changes)
}

// After is what the store found, in the transaction that wrote an event,
// about the event of its order's previous version: whether the fast path
// may publish the new one now, must wait for a publisher's ticket, or must
// leave it to the sweeper (engine/store/doc.go, "Order across the fleet").
type After struct {
	Kind      AfterKind
	Publisher int32 // AfterTicket: the publisher that holds the previous version's event
	Ticket    int64 // AfterTicket: the ticket it holds it under
}

// AfterKind says what an event waits for before the fast path may publish it.
type AfterKind uint8

const (
	// AfterUnknown (the zero value): the store knows nothing about the
	// previous version's event (version 1 has none; a row last written
	// before migration 0007 has no ticket). The publisher's own rules
	// apply, its start-up hold included.
	AfterUnknown AfterKind = iota
	// AfterNothing: the previous version is on the topic, or follows
	// through the same Publish call (an earlier change of the same order
	// in one transaction).
	AfterNothing
	// AfterTicket: the previous version's event belongs to ticket Ticket
	// of publisher Publisher, which had not resolved it (acknowledged, or
	// its order held) when the store looked: the fast path waits until it
	// has, or leaves the event to the sweeper.
	AfterTicket
	// AfterHeld: the order is held (outbox_held) or parked (outbox_dead),
	// or its previous version was written with no fast path: only the
	// sweeper may publish this event, in seq order behind the others.
	AfterHeld
)

// ParkedEvent is an outbox event the relay parks instead of publishing
// (the broker refused it for good, or an earlier version of its order is
// parked): its seq, the error, and how many times it was produced (0 for
// one parked behind an earlier version). A sweep's callback parks events by
// returning an error with a method ParkedEvents() []ParkedEvent; every
// other event of the page then counts as published.
type ParkedEvent struct {
	Seq      int64
	Err      string
	Attempts int32
}

// CreatedEvent returns o's order.created outbox event (version 1). Its
// strings and payload are o's: views into the owning batch's arena.
func (o *Order) CreatedEvent() Event {
	return Event{Seq: o.Result.EventSeq, OrderID: o.ID, Version: 1, Type: EventCreated, Time: o.ReceivedAt, Payload: o.Event,
		TraceParent: o.TraceParent, TraceState: o.TraceState}
}
