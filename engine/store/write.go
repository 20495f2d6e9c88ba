package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

var (
	stageTable   = pgx.Identifier{"orderflow_stage"}
	stageColumns = []string{"seq", "id", "user_id", "currency", "total_cents", "created_at", "received_at", "idempotency_key", "content_hash"}
	itemsTable   = pgx.Identifier{"order_items"}
	itemsColumns = []string{"order_id", "line", "sku", "qty", "price_cents"}
)

// insertOrdersSQL moves the staged orders into orders. ORDER BY seq makes
// every transaction take its row locks in one global order (Go's byte order
// of ids, then arrival), so overlapping batches do not deadlock (40P01); seq
// is used rather than id because ORDER BY id would follow the database
// collation, not the order the batch was sorted in. With no conflict target,
// DO NOTHING skips rows that collide on the id or on the idempotency key,
// also with rows earlier in the same statement: RETURNING lists exactly the
// rows this transaction created.
// $1 and $2 are the transaction's Ticket (pub_id, pub_ticket).
const insertOrdersSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash, pub_id, pub_ticket)
SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash, $1::int4, $2::int8
FROM orderflow_stage ORDER BY seq
ON CONFLICT DO NOTHING
RETURNING id, content_hash, idempotency_key`

// insertArraysSQL is insertOrdersSQL for small batches: the orders come as
// arrays instead of through the staging table (see Config.CopyMinRows).
// Ordinality plays the role of seq; $9 and $10 are the Ticket.
const insertArraysSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash, pub_id, pub_ticket)
SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash, $9::int4, $10::int8
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::int8[])
  WITH ORDINALITY AS s(id, user_id, currency, total_cents, created_at, received_at, idempotency_key, content_hash, seq)
ORDER BY seq
ON CONFLICT DO NOTHING
RETURNING id, content_hash, idempotency_key`

// lookupOrdersSQL reads the stored orders that kept staged rows out.
const lookupOrdersSQL = `SELECT id, idempotency_key, content_hash, status, total_cents, version
FROM orders WHERE id = ANY($1) OR idempotency_key = ANY($2)`

// WriteOrders commits the orders of batches to PostgreSQL in one transaction
// (group commit) and sets the Result of every order in every batch:
//
//   - OutcomeCreated: inserted with its items and its order.created outbox
//     row, committed;
//   - OutcomeDuplicate: an order with the same id and content hash was
//     already stored (Result describes the stored order); nothing written;
//   - OutcomeConflict: the id, or the idempotency key, belongs to a different
//     order; nothing written;
//   - OutcomeRejected: PostgreSQL refused the order's data (found by
//     bisection: the other orders still commit);
//   - OutcomeFailed: not committed, or not known to be (an error at COMMIT,
//     ctx ended, database unreachable after the retries). A retry of the same
//     order converges to one row.
//
// Among equal orders (same id and hash) in one call, the first in arrival
// order is the created one; the others are duplicates. Retryable errors are
// retried with backoff (Config.MaxRetries); each attempt is bounded by
// Config.TxTimeout, and ctx bounds the whole call. WriteOrders blocks until
// every result is set. It is safe for concurrent use.
//
// The batches' strings are views into their arenas: WriteOrders reads them
// only during the call and retains nothing after it returns. The Result.Err
// values may be kept.
//
// WriteOrders writes the orders with no fast path (the zero Ticket): tools
// and tests that publish nothing themselves. The engine uses WriteOrdersFor.
func (s *Store) WriteOrders(ctx context.Context, batches []*order.Batch) {
	s.WriteOrdersFor(ctx, Ticket{}, batches)
}

// WriteOrdersFor is WriteOrders for the fast path named by tk: the orders'
// rows record it, so that a later version's transaction knows whose
// acknowledgement to wait for (see doc.go, "Order across the fleet").
func (s *Store) WriteOrdersFor(ctx context.Context, tk Ticket, batches []*order.Batch) {
	start := time.Now()
	w := getWriteState()
	defer putWriteState(w)
	w.pubID = pgtype.Int4{Int32: tk.Publisher, Valid: true}
	w.pubTicket = pgtype.Int8{Int64: tk.N, Valid: true}
	for _, b := range batches {
		for i := range b.Orders {
			o := &b.Orders[i]
			o.Result = order.Result{}
			w.all = append(w.all, o)
		}
	}
	if len(w.all) == 0 {
		return
	}
	// Stable: equal ids keep arrival order, so the first one wins.
	slices.SortStableFunc(w.all, func(a, b *order.Order) int { return strings.Compare(a.ID, b.ID) })
	s.writeSet(ctx, w, w.all)
	s.orders.commitSeconds.Observe(time.Since(start).Seconds())
}

// writeSet commits set (sorted) with retries; on a data error it bisects set
// until the poison orders are alone, and rejects them.
func (s *Store) writeSet(ctx context.Context, w *writeState, set []*order.Order) {
	err := s.commitRetrying(ctx, w, set)
	if err == nil {
		return
	}
	if errors.Is(err, errData) {
		if len(set) == 1 {
			s.log.Warn("order rejected by postgres", "err", err)
			set[0].Result = order.Result{Outcome: order.OutcomeRejected, Err: err}
			return
		}
		s.orders.bisections.Inc()
		mid := len(set) / 2
		s.writeSet(ctx, w, set[:mid])
		s.writeSet(ctx, w, set[mid:])
		return
	}
	s.log.Warn("order batch not committed", "orders", len(set), "err", err)
	for _, o := range set {
		o.Result = order.Result{Outcome: order.OutcomeFailed, Err: err}
	}
}

// commitRetrying commits set with retries (see retrying).
func (s *Store) commitRetrying(ctx context.Context, w *writeState, set []*order.Order) error {
	return s.retrying(ctx, &s.orders,
		func(ctx context.Context) error { return s.commitOnce(ctx, w, set) },
		func() {
			for _, o := range set {
				o.Result = order.Result{}
			}
		})
}

// commitOnce runs one attempt of the batch transaction for set (see doc.go
// for the sequence) and, on success, leaves every order's Result set.
func (s *Store) commitOnce(parent context.Context, w *writeState, set []*order.Order) error {
	return s.inTx(parent, "copy orders to staging", func(ctx context.Context, tx pgx.Tx, step *string) error {
		var (
			inserted int
			err      error
		)
		if len(set) >= s.cfg.CopyMinRows {
			w.stage.reset(set)
			if _, err = tx.CopyFrom(ctx, stageTable, stageColumns, &w.stage); err != nil {
				return err
			}
			*step = "insert orders"
			inserted, err = insertReturning(ctx, tx, set, insertOrdersSQL, w.ticketArgs...)
		} else {
			*step = "insert orders"
			inserted, err = insertReturning(ctx, tx, set, insertArraysSQL, w.arrays.fill(set, &w.pubID, &w.pubTicket)...)
		}
		if err != nil {
			return err
		}
		if inserted < len(set) {
			*step = "look up existing orders"
			if err = w.classifyExisting(ctx, tx, set); err != nil {
				return err
			}
		}

		w.created = w.created[:0]
		for _, o := range set {
			if o.Result.Outcome == order.OutcomeCreated {
				w.created = append(w.created, o)
			}
		}
		if len(w.created) == 0 {
			return nil
		}
		*step = "copy order items"
		w.items.reset(w.created)
		if _, err = tx.CopyFrom(ctx, itemsTable, itemsColumns, &w.items); err != nil {
			return err
		}
		*step = "copy outbox"
		w.events = createdEvents(w.events[:0], w.created)
		w.outbox.reset(w.events)
		if err = copyOutbox(ctx, tx, &w.outbox); err != nil {
			return err
		}
		for i, o := range w.created {
			o.Result.EventSeq = w.events[i].Seq
		}
		return nil
	})
}

// insertReturning runs one of the INSERT … RETURNING statements and marks
// the orders it created. The returned rows are read as raw bytes: no
// allocation per row.
func insertReturning(ctx context.Context, tx pgx.Tx, set []*order.Order, sql string, args ...any) (int, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	var bug error
	for rows.Next() {
		raw := rows.RawValues()
		fd := rows.FieldDescriptions()
		if len(raw) != 3 {
			bug = fmt.Errorf("%w: insert returned %d columns", errBug, len(raw))
			continue
		}
		hash, err := rawInt(raw[1], fd[1].Format)
		if err != nil {
			bug = err
			continue
		}
		// Views of pgx's row buffer: used only before the next rows.Next.
		id, key := bytesutil.String(raw[0]), bytesutil.String(raw[2])
		i, _ := slices.BinarySearchFunc(set, id, func(o *order.Order, id string) int { return strings.Compare(o.ID, id) })
		matched := false
		for ; i < len(set) && set[i].ID == id; i++ {
			o := set[i]
			if o.Result.Outcome == order.OutcomePending && int64(o.Hash) == hash && o.IdempotencyKey == key {
				o.Result = order.Result{Outcome: order.OutcomeCreated, Status: order.StatusCreated, TotalCents: o.TotalCents, Version: 1}
				matched = true
				n++
				break
			}
		}
		if !matched && bug == nil {
			bug = fmt.Errorf("%w: inserted order %q matches no staged order", errBug, id)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return n, bug
}

// storedOrder is a row of lookupOrdersSQL; id and key point into the
// writeState arena.
type storedOrder struct {
	id, key string
	hash    int64
	status  order.Status
	total   int64
	version int32
}

// classifyExisting sets the Result of every order of set that the INSERT
// skipped: Duplicate when the stored order under its id has its hash,
// Conflict when the id holds another order or the key belongs to another id.
func (w *writeState) classifyExisting(ctx context.Context, tx pgx.Tx, set []*order.Order) error {
	w.ids, w.keys = w.ids[:0], w.keys[:0]
	for _, o := range set {
		if o.Result.Outcome != order.OutcomePending {
			continue
		}
		w.ids = append(w.ids, o.ID)
		if o.IdempotencyKey != "" {
			w.keys = append(w.keys, o.IdempotencyKey)
		}
	}
	w.stored = w.stored[:0]
	rows, err := tx.Query(ctx, lookupOrdersSQL, w.ids, w.keys)
	if err != nil {
		return err
	}
	for rows.Next() {
		raw, fd := rows.RawValues(), rows.FieldDescriptions()
		if len(raw) != 6 {
			rows.Close()
			return fmt.Errorf("%w: lookup returned %d columns", errBug, len(raw))
		}
		var so storedOrder
		var ok bool
		var e1, e2, e3 error
		so.id = w.arena.CopyString(raw[0])
		so.key = w.arena.CopyString(raw[1])
		so.hash, e1 = rawInt(raw[2], fd[2].Format)
		so.status, ok = order.ParseStatus(bytesutil.String(raw[3]))
		so.total, e2 = rawInt(raw[4], fd[4].Format)
		v, e3 := rawInt(raw[5], fd[5].Format)
		so.version = int32(v)
		if err := errors.Join(e1, e2, e3); err != nil || !ok {
			rows.Close()
			return fmt.Errorf("%w: stored order %q: status %q: %v", errBug, so.id, raw[3], err)
		}
		w.stored = append(w.stored, so)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	slices.SortFunc(w.stored, func(a, b storedOrder) int { return strings.Compare(a.id, b.id) })

	for _, o := range set {
		if o.Result.Outcome != order.OutcomePending {
			continue
		}
		if i, found := slices.BinarySearchFunc(w.stored, o.ID, func(so storedOrder, id string) int { return strings.Compare(so.id, id) }); found {
			so := &w.stored[i]
			if so.hash == int64(o.Hash) {
				o.Result = order.Result{Outcome: order.OutcomeDuplicate, Status: so.status, TotalCents: so.total, Version: so.version}
			} else {
				o.Result = order.Result{Outcome: order.OutcomeConflict}
			}
			continue
		}
		if o.IdempotencyKey != "" && slices.ContainsFunc(w.stored, func(so storedOrder) bool { return so.key == o.IdempotencyKey }) {
			o.Result = order.Result{Outcome: order.OutcomeConflict}
			continue
		}
		return fmt.Errorf("%w: order %q was neither inserted nor found", errBug, o.ID)
	}
	return nil
}

// rawInt decodes an integer column from its wire bytes (binary int2/4/8 or
// text).
func rawInt(b []byte, format int16) (int64, error) {
	if format == pgtype.TextFormatCode {
		return strconv.ParseInt(bytesutil.String(b), 10, 64)
	}
	switch len(b) {
	case 8:
		return int64(binary.BigEndian.Uint64(b)), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	}
	return 0, fmt.Errorf("%w: integer of %d bytes", errBug, len(b))
}
