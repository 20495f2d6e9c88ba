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
	"github.com/jackc/pgx/v5/pgconn"
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
//
// $1 and $2 are the transaction's Ticket (pub_id, pub_ticket).
const insertOrdersSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash, pub_id, pub_ticket)
SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash, $1::int4, $2::int8
FROM orderflow_stage ORDER BY seq
ON CONFLICT DO NOTHING
RETURNING id, content_hash, idempotency_key`

// writeOrdersSQL is the whole group commit of a small batch in one
// statement, and so in one round trip and one implicit transaction (no
// BEGIN, no COMMIT): the orders come as arrays ($1–$8, ids unique), INSERT …
// ON CONFLICT DO NOTHING RETURNING says which ones this statement created,
// and the items ($9–$13) and order.created events ($1, $6 as ce_time, $14)
// of exactly those are inserted by two more data-modifying CTEs, which
// PostgreSQL runs to completion whether or not the result reads them.
// Ordinality plays the role of the staging table's seq (lock order, see
// insertOrdersSQL). Each created order's event takes its seq from
// outbox_seq after its row is written, as copyOutbox does; the order of
// seqs among different orders is free (each has one event here). The
// result is one row per created order with its event's seq.
//
// $17 and $18 are the Ticket (pub_id, pub_ticket).
//
// The staged path (insertOrdersSQL, COPY of items and outbox) costs 8
// round trips per group commit (BEGIN, INSERT, 2 per COPY, the seqs,
// COMMIT); this one costs 1 (BenchmarkWriteOrders, method=unnest).
const writeOrdersSQL = `WITH ins AS (
  INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash, pub_id, pub_ticket)
  SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash, $17::int4, $18::int8
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::int8[])
    WITH ORDINALITY AS s(id, user_id, currency, total_cents, created_at, received_at, idempotency_key, content_hash, seq)
  ORDER BY seq
  ON CONFLICT DO NOTHING
  RETURNING id, content_hash, idempotency_key),
items AS (
  INSERT INTO order_items (order_id, line, sku, qty, price_cents)
  SELECT i.order_id, i.line, i.sku, i.qty, i.price_cents
  FROM unnest($9::text[], $10::int4[], $11::text[], $12::int4[], $13::int8[]) AS i(order_id, line, sku, qty, price_cents)
  WHERE i.order_id IN (SELECT id FROM ins)),
ev AS (
  INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, traceparent, tracestate)
  SELECT q.s, (q.s / r.gen_rows) % r.slots, q.order_id, 1, 'order.created', q.ce_time, q.payload, q.traceparent, q.tracestate
  FROM (SELECT nextval('outbox_seq') AS s, e.order_id, e.ce_time, e.payload, e.traceparent, e.tracestate
        FROM unnest($1::text[], $6::timestamptz[], $14::bytea[], $15::text[], $16::text[]) AS e(order_id, ce_time, payload, traceparent, tracestate)
        WHERE e.order_id IN (SELECT id FROM ins)) q, outbox_ring r
  RETURNING order_id, seq)
SELECT ins.id, ins.content_hash, ins.idempotency_key, ev.seq FROM ins JOIN ev ON ev.order_id = ins.id`

// lookupOrdersSQL reads the stored orders that kept staged rows out, with
// the Ticket each was written under (0, 0 for none).
const lookupOrdersSQL = `SELECT id, idempotency_key, content_hash, status, total_cents, version,
  coalesce(pub_id, 0), coalesce(pub_ticket, 0)
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
// acknowledgement to wait for (see doc.go, "Order across the fleet"). An
// order an earlier attempt of this same call may have committed (the single
// statement's connection was lost, see commitStatement) comes back as a
// duplicate with Result.LeftToSweeper set: its event was handed to nobody.
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

// commitOnce runs one attempt of the group commit for set and, on success,
// leaves every order's Result set: below Config.CopyMinRows one statement
// (commitStatement), from there the staged transaction (commitStaged).
func (s *Store) commitOnce(parent context.Context, w *writeState, set []*order.Order) error {
	if len(set) < s.cfg.CopyMinRows {
		return s.commitStatement(parent, w, set)
	}
	return s.commitStaged(parent, w, set)
}

// commitStatement writes set with writeOrdersSQL: one round trip, committed
// when it returns without error. Equal ids after the first go to the lookup
// (they are duplicates or conflicts of the first), so the statement's ids
// are unique and its joins on id exact.
//
// An error that is not PostgreSQL's own (a lost connection, the attempt's
// timeout) leaves the outcome unknown, as an error at COMMIT does; unlike
// COMMIT's, it is retried when the connection is gone, because a write of
// orders is idempotent: if the statement did commit, the retry finds each
// order stored under its id with its own hash and answers it as a duplicate
// (the stored order, 200), and the outbox holds its one order.created
// event, which the sweeper publishes (the retry has no seq to hand the fast
// path; the order comes back with Result.LeftToSweeper, so that the engine
// holds it and no instance publishes a later version ahead of it). Nothing
// is lost or doubled; the client sees a replay.
func (s *Store) commitStatement(parent context.Context, w *writeState, set []*order.Order) error {
	ctx, cancel := context.WithTimeout(parent, s.cfg.TxTimeout)
	defer cancel()
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return &txError{step: "acquire a connection", err: err, connClosed: true}
	}
	defer c.Release()
	// Prepared once per connection (a map lookup after that): the
	// parameters go in binary from wireParams, not through pgx's encoders.
	sd, err := c.Conn().Prepare(ctx, writeOrdersStmt, writeOrdersSQL)
	if err != nil {
		return s.statementError(c.Conn(), err)
	}
	rr := c.Conn().PgConn().ExecPrepared(ctx, sd.Name, w.wire.fill(set, w.pubID.Int32, w.pubTicket.Int64), writeOrdersFormats, writeOrdersFormats)
	inserted, err := readCreated(rr, set)
	if err != nil {
		return s.statementError(c.Conn(), err)
	}
	if inserted < len(set) {
		// Committed already: the lookup reads what kept the others out.
		if err := w.classifyExisting(ctx, c.Conn(), set); err != nil {
			return &txError{step: "look up existing orders", err: err, connClosed: true}
		}
	}
	return nil
}

// writeOrdersStmt names writeOrdersSQL's prepared statement on each
// connection.
const writeOrdersStmt = "orderflow_write_orders"

// statementError wraps an error of writeOrdersSQL for classify: PostgreSQL's
// own errors roll the statement back (a *txError like any error before
// COMMIT); any other error counts as a lost connection, retried because the
// write is idempotent (see commitStatement). After "cached plan must not
// change result type" the statement is prepared afresh on the retry.
func (s *Store) statementError(c *pgx.Conn, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "0A000" && !c.IsClosed() {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.Deallocate(dctx, writeOrdersStmt)
			cancel()
		}
		return &txError{step: "write orders", err: err}
	}
	return &txError{step: "write orders", err: err, connClosed: c.IsClosed()}
}

// commitStaged runs one attempt of the staged batch transaction for set
// (see doc.go for the sequence) and, on success, leaves every order's
// Result set.
func (s *Store) commitStaged(parent context.Context, w *writeState, set []*order.Order) error {
	return s.inTx(parent, "copy orders to staging", func(ctx context.Context, tx pgx.Tx, step *string) error {
		w.stage.reset(set)
		if _, err := tx.CopyFrom(ctx, stageTable, stageColumns, &w.stage); err != nil {
			return err
		}
		*step = "insert orders"
		inserted, err := insertReturning(ctx, tx, set, insertOrdersSQL, w.ticketArgs...)
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

// readCreated reads writeOrdersSQL's rows (id, hash, key, seq of each
// created order, binary), marks those orders created with their event's
// seq, and returns how many. It closes rr; its error is the statement's.
func readCreated(rr *pgconn.ResultReader, set []*order.Order) (int, error) {
	n := 0
	var bug error
	for rr.NextRow() {
		raw := rr.Values()
		if len(raw) != 4 {
			bug = fmt.Errorf("%w: write returned %d columns", errBug, len(raw))
			continue
		}
		hash, err1 := rawInt(raw[1], pgtype.BinaryFormatCode)
		seq, err2 := rawInt(raw[3], pgtype.BinaryFormatCode)
		if err := errors.Join(err1, err2); err != nil {
			bug = err
			continue
		}
		// Views of pgx's row buffer: used only before the next NextRow.
		if o := markCreated(set, bytesutil.String(raw[0]), hash, bytesutil.String(raw[2])); o != nil {
			o.Result.EventSeq = seq
			n++
		} else if bug == nil {
			bug = fmt.Errorf("%w: written order %q matches no order of the batch", errBug, raw[0])
		}
	}
	if _, err := rr.Close(); err != nil {
		return 0, err
	}
	return n, bug
}

// markCreated marks created the first pending order of set (sorted by id)
// with this id, hash and key, and returns it (nil if none). id and key may
// be views of a row buffer: they are not kept.
func markCreated(set []*order.Order, id string, hash int64, key string) *order.Order {
	i, _ := slices.BinarySearchFunc(set, id, func(o *order.Order, id string) int { return strings.Compare(o.ID, id) })
	for ; i < len(set) && set[i].ID == id; i++ {
		o := set[i]
		if o.Result.Outcome == order.OutcomePending && int64(o.Hash) == hash && o.IdempotencyKey == key {
			o.Result = order.Result{Outcome: order.OutcomeCreated, Status: order.StatusCreated, TotalCents: o.TotalCents, Version: 1}
			return o
		}
	}
	return nil
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
		if markCreated(set, bytesutil.String(raw[0]), hash, bytesutil.String(raw[2])) != nil {
			n++
		} else if bug == nil {
			bug = fmt.Errorf("%w: inserted order %q matches no staged order", errBug, raw[0])
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return n, bug
}

// querier is what classifyExisting reads through: the staged transaction,
// or the pool after writeOrdersSQL committed.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// storedOrder is a row of lookupOrdersSQL; id and key point into the
// writeState arena.
type storedOrder struct {
	id, key   string
	hash      int64
	status    order.Status
	total     int64
	version   int32
	pubID     int32
	pubTicket int64
}

// classifyExisting sets the Result of every order of set that the INSERT
// skipped: Duplicate when the stored order under its id has its hash,
// Conflict when the id holds another order or the key belongs to another id.
func (w *writeState) classifyExisting(ctx context.Context, q querier, set []*order.Order) error {
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
	rows, err := q.Query(ctx, lookupOrdersSQL, w.ids, w.keys)
	if err != nil {
		return err
	}
	for rows.Next() {
		raw, fd := rows.RawValues(), rows.FieldDescriptions()
		if len(raw) != 8 {
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
		pub, e4 := rawInt(raw[6], fd[6].Format)
		so.pubID = int32(pub)
		tk, e5 := rawInt(raw[7], fd[7].Format)
		so.pubTicket = tk
		if err := errors.Join(e1, e2, e3, e4, e5); err != nil || !ok {
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
				o.Result = order.Result{Outcome: order.OutcomeDuplicate, Status: so.status, TotalCents: so.total, Version: so.version,
					LeftToSweeper: w.leftToSweeper(so)}
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

// leftToSweeper reports whether stored order so was written by an earlier
// attempt of this very call (its Ticket) and no order of the call is
// created under its id: an attempt whose outcome was unknown committed it,
// and nobody handed its event to the fast path.
func (w *writeState) leftToSweeper(so *storedOrder) bool {
	if so.pubID == 0 || so.pubID != w.pubID.Int32 || so.pubTicket != w.pubTicket.Int64 {
		return false
	}
	i, _ := slices.BinarySearchFunc(w.all, so.id, func(o *order.Order, id string) int { return strings.Compare(o.ID, id) })
	for ; i < len(w.all) && w.all[i].ID == so.id; i++ {
		if w.all[i].Result.Outcome == order.OutcomeCreated {
			return false
		}
	}
	return true
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
