package store

import (
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

// stageSource is the [pgx.CopyFromSource] of the staging COPY. Values
// refills one reused row of pointers to pgtype fields kept in the source:
// pgx encodes a row before asking for the next, and pointers to
// pgtype.Text/Int4/Int8/Timestamptz encode without allocating, where boxing
// raw values would cost one allocation per value (see alloc_test.go).
type stageSource struct {
	orders                []*order.Order
	i                     int
	seq                   pgtype.Int4
	id, userID, currency  pgtype.Text
	key                   pgtype.Text
	total, hash           pgtype.Int8
	createdAt, receivedAt pgtype.Timestamptz
	row                   []any
}

func (s *stageSource) init() {
	s.row = []any{&s.seq, &s.id, &s.userID, &s.currency, &s.total, &s.createdAt, &s.receivedAt, &s.key, &s.hash}
}

func (s *stageSource) reset(orders []*order.Order) {
	s.orders, s.i = orders, -1
	s.id, s.userID, s.currency, s.key = pgtype.Text{}, pgtype.Text{}, pgtype.Text{}, pgtype.Text{}
}

// Next implements [pgx.CopyFromSource].
func (s *stageSource) Next() bool {
	s.i++
	return s.i < len(s.orders)
}

// Values implements [pgx.CopyFromSource]. The returned row is reused.
func (s *stageSource) Values() ([]any, error) {
	o := s.orders[s.i]
	s.seq = pgtype.Int4{Int32: int32(s.i), Valid: true}
	s.id = pgtype.Text{String: o.ID, Valid: true}
	s.userID = pgtype.Text{String: o.UserID, Valid: true}
	s.currency = pgtype.Text{String: o.Currency, Valid: true}
	s.total = pgtype.Int8{Int64: o.TotalCents, Valid: true}
	s.createdAt = pgtype.Timestamptz{Time: o.CreatedAt, Valid: true}
	s.receivedAt = pgtype.Timestamptz{Time: o.ReceivedAt, Valid: true}
	s.key = pgtype.Text{String: o.IdempotencyKey, Valid: o.IdempotencyKey != ""}
	s.hash = pgtype.Int8{Int64: int64(o.Hash), Valid: true}
	return s.row, nil
}

// Err implements [pgx.CopyFromSource].
func (s *stageSource) Err() error { return nil }

// itemSource is the [pgx.CopyFromSource] of order_items: every item of
// every created order, line = index in the order. Same reuse as stageSource.
type itemSource struct {
	orders     []*order.Order
	oi, ii     int
	orderID    pgtype.Text
	sku        pgtype.Text
	line, qty  pgtype.Int4
	priceCents pgtype.Int8
	row        []any
}

func (s *itemSource) init() {
	s.row = []any{&s.orderID, &s.line, &s.sku, &s.qty, &s.priceCents}
}

func (s *itemSource) reset(orders []*order.Order) {
	s.orders, s.oi, s.ii = orders, 0, -1
	s.orderID, s.sku = pgtype.Text{}, pgtype.Text{}
}

// Next implements [pgx.CopyFromSource].
func (s *itemSource) Next() bool {
	s.ii++
	for s.oi < len(s.orders) && s.ii >= len(s.orders[s.oi].Items) {
		s.oi++
		s.ii = 0
	}
	return s.oi < len(s.orders)
}

// Values implements [pgx.CopyFromSource].
func (s *itemSource) Values() ([]any, error) {
	o := s.orders[s.oi]
	it := &o.Items[s.ii]
	s.orderID = pgtype.Text{String: o.ID, Valid: true}
	s.line = pgtype.Int4{Int32: int32(s.ii), Valid: true}
	s.sku = pgtype.Text{String: it.SKU, Valid: true}
	s.qty = pgtype.Int4{Int32: qty32(it.Qty), Valid: true}
	s.priceCents = pgtype.Int8{Int64: it.PriceCents, Valid: true}
	return s.row, nil
}

// Err implements [pgx.CopyFromSource].
func (s *itemSource) Err() error { return nil }

// bytea lets a reused pointer carry a []byte to pgx without boxing the slice
// header (pgx encodes a [pgtype.BytesValuer]).
type bytea struct{ b []byte }

// BytesValue implements [pgtype.BytesValuer].
func (v *bytea) BytesValue() ([]byte, error) { return v.b, nil }

// outboxSource is the [pgx.CopyFromSource] of outbox_events rows, one per
// event: order.created rows of new orders and order.status_changed rows of
// applied status changes alike. Each event's Seq and slot come from
// allocSeqs. Same reuse as stageSource: one row of pgtype pointers, refilled.
// The trace context columns are NULL for an event without one.
type outboxSource struct {
	events      []order.Event
	slots       []int32 // slots[i] is events[i]'s ring slot
	i           int
	seq         pgtype.Int8
	slot        pgtype.Int4
	orderID     pgtype.Text
	version     pgtype.Int4
	ceType      pgtype.Text
	ceTime      pgtype.Timestamptz
	payload     bytea
	traceParent pgtype.Text
	traceState  pgtype.Text
	row         []any
}

func (s *outboxSource) init() {
	s.row = []any{&s.seq, &s.slot, &s.orderID, &s.version, &s.ceType, &s.ceTime, &s.payload, &s.traceParent, &s.traceState}
}

// reset points the source at events (nil to drop the views it holds).
func (s *outboxSource) reset(events []order.Event) {
	s.events, s.i = events, -1
	s.slots = s.slots[:0]
	s.orderID, s.ceType, s.payload = pgtype.Text{}, pgtype.Text{}, bytea{}
	s.traceParent, s.traceState = pgtype.Text{}, pgtype.Text{}
}

// Next implements [pgx.CopyFromSource].
func (s *outboxSource) Next() bool {
	s.i++
	return s.i < len(s.events)
}

// Values implements [pgx.CopyFromSource].
func (s *outboxSource) Values() ([]any, error) {
	e := &s.events[s.i]
	s.seq = pgtype.Int8{Int64: e.Seq, Valid: true}
	s.slot = pgtype.Int4{Int32: s.slots[s.i], Valid: true}
	s.orderID = pgtype.Text{String: e.OrderID, Valid: true}
	s.version = pgtype.Int4{Int32: e.Version, Valid: true}
	s.ceType = pgtype.Text{String: e.Type, Valid: true}
	s.ceTime = pgtype.Timestamptz{Time: e.Time, Valid: true}
	s.payload.b = e.Payload
	s.traceParent = pgtype.Text{}
	if e.TraceParent.Valid() {
		// A view of the event's array: events outlive the COPY.
		s.traceParent = pgtype.Text{String: bytesutil.String(e.TraceParent[:]), Valid: true}
	}
	s.traceState = pgtype.Text{String: e.TraceState, Valid: e.TraceState != ""}
	return s.row, nil
}

// Err implements [pgx.CopyFromSource].
func (s *outboxSource) Err() error { return nil }
