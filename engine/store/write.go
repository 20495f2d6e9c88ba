package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

var (
	stageTable    = pgx.Identifier{"orderflow_stage"}
	stageColumns  = []string{"seq", "id", "user_id", "currency", "total_cents", "created_at", "received_at", "idempotency_key", "content_hash"}
	itemsTable    = pgx.Identifier{"order_items"}
	itemsColumns  = []string{"order_id", "line", "sku", "qty", "price_cents"}
	outboxTable   = pgx.Identifier{"outbox"}
	outboxColumns = []string{"order_id", "version", "ce_type", "ce_time", "payload"}
)

// insertOrdersSQL moves the staged orders into orders. ORDER BY seq makes
// every transaction take its row locks in one global order (Go's byte order
// of ids, then arrival), so overlapping batches do not deadlock (40P01); seq
// is used rather than id because ORDER BY id would follow the database
// collation, not the order the batch was sorted in. With no conflict target,
// DO NOTHING skips rows that collide on the id or on the idempotency key,
// also with rows earlier in the same statement: RETURNING lists exactly the
// rows this transaction created.
const insertOrdersSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash)
SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash
FROM orderflow_stage ORDER BY seq
ON CONFLICT DO NOTHING
RETURNING id, content_hash, idempotency_key`

// insertArraysSQL is insertOrdersSQL for small batches: the orders come as
// arrays instead of through the staging table (see Config.CopyMinRows).
// Ordinality plays the role of seq.
const insertArraysSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, idempotency_key, content_hash)
SELECT id, user_id, 'created', currency, total_cents, 1, created_at, received_at, idempotency_key, content_hash
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
func (s *Store) WriteOrders(ctx context.Context, batches []*order.Batch) {
	start := time.Now()
	w := getWriteState()
	defer putWriteState(w)
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

// errData marks an error caused by the data of some row (bisect, then reject).
var errData = errors.New("postgres refused the data")

type errKind uint8

const (
	kindOther errKind = iota
	kindRetryable
	kindData
	kindCachedPlan
)

// retrying runs attempt until it succeeds, fails with an error that
// retrying cannot fix, or runs out of retries (Config.MaxRetries), sleeping
// a jittered exponential backoff between tries. reset runs after every
// failed attempt (to clear results it set). Retries after a lost connection
// ask the pool to ping before handing out a connection. The returned error
// wraps errData for data errors.
func (s *Store) retrying(ctx context.Context, m *opMetrics, attempt func(context.Context) error, reset func()) error {
	planRetried := false
	retries := 0
	attemptCtx := ctx
	for {
		err := attempt(attemptCtx)
		if err == nil {
			return nil
		}
		reset()
		kind := classify(err)
		if ctx.Err() != nil {
			// The caller gave up: whatever the error, don't try again.
			kind = kindOther
		}
		switch kind {
		case kindData:
			m.errData.Inc()
			return fmt.Errorf("%w: %w", errData, err)
		case kindCachedPlan:
			m.errRetryable.Inc()
			if planRetried {
				return err
			}
			planRetried = true // pgx dropped the stale statement: retry now
			m.retries.Inc()
			continue
		case kindRetryable:
			m.errRetryable.Inc()
			if retries >= s.cfg.MaxRetries {
				return fmt.Errorf("%d retries: %w", retries, err)
			}
		default:
			m.errOther.Inc()
			return err
		}
		s.log.Debug("retrying batch transaction", "retry", retries+1, "err", err)
		if serr := sleepCtx(ctx, s.backoff(retries)); serr != nil {
			return err
		}
		retries++
		m.retries.Inc()
		attemptCtx = context.WithValue(ctx, pingOnAcquire{}, true)
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

// backoff returns the sleep before retry n (0-based): full jitter over
// [0, RetryBackoff·2ⁿ).
func (s *Store) backoff(n int) time.Duration {
	max := s.cfg.RetryBackoff << min(n, 16)
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// txError is an error before COMMIT; connClosed records whether it left the
// connection closed (the server then rolled the transaction back).
type txError struct {
	step       string
	err        error
	connClosed bool
}

func (e *txError) Error() string { return e.step + ": " + e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

// commitError is an error at COMMIT: the transaction may or may not have
// committed.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit (outcome unknown): " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// classify decides what to do about an error of commitOnce, by behaviour and
// SQLSTATE, never by message text.
func classify(err error) errKind {
	var ce *commitError
	if errors.As(err, &ce) {
		// Never retried, whatever the error says: the transaction may have
		// committed. pgx v5.12 reports a connection lost while waiting for
		// COMMIT's answer as SafeToRetry (MultiResultReader.NextResult
		// drops the read error and closes the connection; the next read
		// returns a "conn closed" error that claims nothing was sent), and
		// a retry of a committed status batch re-applied its changes and
		// answered a committed change 409 (chaos.TestAmbiguousCommit).
		// The orders fail with 503; the client's retry with the same id
		// converges.
		return kindOther
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "40001", code == "40P01", // serialization failure, deadlock
			code == "57P01", code == "57P02", code == "57P03", // admin/crash shutdown, cannot connect now
			code == "57014",               // query canceled (statement timeout, TxTimeout)
			code == "23505",               // unique violation: a race our ON CONFLICT did not cover; converges on retry
			code == "55P03",               // lock not available
			strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"): // insufficient resources (too many connections, …)
			return kindRetryable
		case code == "0A000": // "cached plan must not change result type"
			return kindCachedPlan
		case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"):
			return kindData
		}
		return kindOther
	}
	var te *txError
	if errors.As(err, &te) && te.connClosed {
		// Nothing committed; a fresh connection may well succeed.
		return kindRetryable
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return kindRetryable
	}
	return kindOther
}

// commitOnce runs one attempt of the batch transaction for set (see doc.go
// for the sequence) and, on success, leaves every order's Result set.
func (s *Store) commitOnce(parent context.Context, w *writeState, set []*order.Order) (err error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.TxTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return &txError{step: "begin", err: err}
	}
	step := "copy orders to staging"
	defer func() {
		if err == nil {
			return
		}
		var ce *commitError
		if errors.As(err, &ce) {
			return // Commit already released the connection
		}
		closed := tx.Conn().IsClosed()
		_ = tx.Rollback(ctx)
		err = &txError{step: step, err: err, connClosed: closed}
	}()

	var inserted int
	if len(set) >= s.cfg.CopyMinRows {
		w.stage.reset(set)
		if _, err = tx.CopyFrom(ctx, stageTable, stageColumns, &w.stage); err != nil {
			return err
		}
		step = "insert orders"
		inserted, err = insertReturning(ctx, tx, set, insertOrdersSQL)
	} else {
		step = "insert orders"
		inserted, err = insertReturning(ctx, tx, set, insertArraysSQL, w.arrays.fill(set)...)
	}
	if err != nil {
		return err
	}
	if inserted < len(set) {
		step = "look up existing orders"
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
	if len(w.created) > 0 {
		step = "copy order items"
		w.items.reset(w.created)
		if _, err = tx.CopyFrom(ctx, itemsTable, itemsColumns, &w.items); err != nil {
			return err
		}
		step = "copy outbox"
		w.events = createdEvents(w.events[:0], w.created)
		w.outbox.reset(w.events)
		if _, err = tx.CopyFrom(ctx, outboxTable, outboxColumns, &w.outbox); err != nil {
			return err
		}
	}
	if err = tx.Commit(ctx); err != nil {
		return &commitError{err: err}
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

// writeState is the working memory of one WriteOrders call, pooled between
// calls. It holds views into the caller's batches only during the call:
// putWriteState clears them.
type writeState struct {
	all     []*order.Order // every order of the call, sorted by id then arrival
	created []*order.Order // created by the current attempt
	stage   stageSource
	arrays  orderArrays
	items   itemSource
	outbox  outboxSource
	events  []order.Event // outbox rows of the current attempt
	ids     []string
	keys    []string
	stored  []storedOrder
	arena   bytesutil.Arena
}

var writeStatePool = sync.Pool{New: func() any {
	w := &writeState{}
	w.stage.init()
	w.items.init()
	w.outbox.init()
	return w
}}

func getWriteState() *writeState { return writeStatePool.Get().(*writeState) }

// maxPooledOrders caps the slices a pooled writeState keeps.
const maxPooledOrders = 1 << 16

func putWriteState(w *writeState) {
	if cap(w.all) > maxPooledOrders || cap(w.stored) > maxPooledOrders {
		return
	}
	w.reset()
	writeStatePool.Put(w)
}

func (w *writeState) reset() {
	clear(w.all)
	w.all = w.all[:0]
	clear(w.created)
	w.created = w.created[:0]
	clear(w.ids)
	w.ids = w.ids[:0]
	clear(w.keys)
	w.keys = w.keys[:0]
	clear(w.stored)
	w.stored = w.stored[:0]
	w.stage.reset(nil)
	w.arrays.reset()
	w.items.reset(nil)
	w.outbox.reset(nil)
	clear(w.events)
	w.events = w.events[:0]
	w.arena.Reset(1 << 20)
}

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
	// A quantity outside int32 becomes 0, which the qty CHECK refuses: a data
	// error that rejects this order alone, never a silent truncation.
	q := int32(0)
	if it.Qty >= math.MinInt32 && it.Qty <= math.MaxInt32 {
		q = int32(it.Qty)
	}
	s.qty = pgtype.Int4{Int32: q, Valid: true}
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

// outboxSource is the [pgx.CopyFromSource] of outbox rows, one per event:
// order.created rows of new orders and order.status_changed rows of applied
// status changes alike (an order.Event carries exactly the outbox columns).
// Same reuse as stageSource: one row of pgtype pointers, refilled.
type outboxSource struct {
	events  []order.Event
	i       int
	orderID pgtype.Text
	version pgtype.Int4
	ceType  pgtype.Text
	ceTime  pgtype.Timestamptz
	payload bytea
	row     []any
}

func (s *outboxSource) init() {
	s.row = []any{&s.orderID, &s.version, &s.ceType, &s.ceTime, &s.payload}
}

// reset points the source at events (nil to drop the views it holds).
func (s *outboxSource) reset(events []order.Event) {
	s.events, s.i = events, -1
	s.orderID, s.ceType, s.payload = pgtype.Text{}, pgtype.Text{}, bytea{}
}

// Next implements [pgx.CopyFromSource].
func (s *outboxSource) Next() bool {
	s.i++
	return s.i < len(s.events)
}

// Values implements [pgx.CopyFromSource].
func (s *outboxSource) Values() ([]any, error) {
	e := &s.events[s.i]
	s.orderID = pgtype.Text{String: e.OrderID, Valid: true}
	s.version = pgtype.Int4{Int32: e.Version, Valid: true}
	s.ceType = pgtype.Text{String: e.Type, Valid: true}
	s.ceTime = pgtype.Timestamptz{Time: e.Time, Valid: true}
	s.payload.b = e.Payload
	return s.row, nil
}

// Err implements [pgx.CopyFromSource].
func (s *outboxSource) Err() error { return nil }

// createdEvents appends the order.created outbox event of each order.
func createdEvents(dst []order.Event, orders []*order.Order) []order.Event {
	for _, o := range orders {
		dst = append(dst, o.CreatedEvent())
	}
	return dst
}

// orderArrays holds the column arrays of insertArraysSQL, reused between
// calls. pgx encodes them as PostgreSQL arrays in one parameter each.
type orderArrays struct {
	ids, users, currencies []string
	keys                   []pgtype.Text
	totals, hashes         []int64
	created, received      []time.Time
	args                   []any
}

func (a *orderArrays) fill(set []*order.Order) []any {
	a.reset()
	for _, o := range set {
		a.ids = append(a.ids, o.ID)
		a.users = append(a.users, o.UserID)
		a.currencies = append(a.currencies, o.Currency)
		a.totals = append(a.totals, o.TotalCents)
		a.created = append(a.created, o.CreatedAt)
		a.received = append(a.received, o.ReceivedAt)
		a.keys = append(a.keys, pgtype.Text{String: o.IdempotencyKey, Valid: o.IdempotencyKey != ""})
		a.hashes = append(a.hashes, int64(o.Hash))
	}
	a.args = append(a.args[:0], a.ids, a.users, a.currencies, a.totals, a.created, a.received, a.keys, a.hashes)
	return a.args
}

func (a *orderArrays) reset() {
	clear(a.ids)
	clear(a.users)
	clear(a.currencies)
	clear(a.keys)
	clear(a.args)
	a.ids, a.users, a.currencies, a.keys = a.ids[:0], a.users[:0], a.currencies[:0], a.keys[:0]
	a.totals, a.hashes, a.created, a.received = a.totals[:0], a.hashes[:0], a.created[:0], a.received[:0]
	a.args = a.args[:0]
}
