package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/store"
)

// The DB method sweeps: every way orderflow could write a batch of status
// changes (BenchmarkStatusUpdate) or new orders (BenchmarkOrderInsert) to
// PostgreSQL, side by side, each sub-benchmark in its own pgtest database
// migrated by store.Migrate (the production schema, indexes and checks
// included). One writer connection, synchronous_commit on everywhere.
//
// Metrics: rows/s (rows committed per second of timed work), allocs/row
// (heap allocations while timed / rows committed), ms/tx (mean latency of
// one batch transaction). An op runs txPerOp(rows) transactions (at least
// 1000 rows per op, see minRowsPerOp), so ns/op and allocs/op are per op.
// Before the loop every method runs one transaction of the same shape,
// untimed: pgx prepares its statements and the store opens its connection
// (and creates its staging table) there, not in the first timed op.
//
// Run (bench/out/db-methods.txt):
//
//	go test -run XXX -bench 'BenchmarkStatusUpdate|BenchmarkOrderInsert' -benchtime 3x -count 3 ./bench/

// ---------------------------------------------------------------------------
// Status changes

// Raw status SQL. Every raw method writes, per change, the order's new
// status, version and updated_at and its order.status_changed outbox row
// (same payload as the store's), in one transaction per batch, the outbox
// written the same way as the update (per row, batched or unnest). Unlike
// the store, the raw methods know each order's state beforehand (the
// benchmark tracks it), so they neither lock nor read the orders nor check
// the status machine: they are what the write alone costs.
const (
	updateStatusSQL = `UPDATE orders SET status = $2, version = $3, updated_at = $4 WHERE id = $1`
	outboxStatusSQL = `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload) VALUES ($1, $2, 'order.status_changed', $3, $4)`
	// The same UPDATE as the store's applyStatusSQL.
	updateStatusUnnestSQL = `UPDATE orders AS o SET status = u.status, version = u.version, updated_at = u.at
FROM unnest($1::text[], $2::text[], $3::int4[], $4::timestamptz[]) AS u(id, status, version, at)
WHERE o.id = u.id`
	outboxStatusUnnestSQL = `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload)
SELECT id, version, 'order.status_changed', at, payload
FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::bytea[]) AS u(id, version, at, payload)`

	stmtUpdateStatus = "bench_update_status"
	stmtOutboxStatus = "bench_outbox_status"
)

// statusEnv is what one status sub-benchmark works with.
type statusEnv struct {
	conn  *pgx.Conn    // raw methods and seeding
	store *store.Store // method=store
	tx    statusTx
	batch pgx.Batch
	ub    *order.UpdateBatch
	idBuf []byte

	// Boxed once: passing a status name or the timestamp as any would
	// otherwise allocate per row.
	statusArgs [order.StatusCancelled + 1]any
}

type statusMethod struct {
	name string
	// events: the method needs the payloads built by statusTx.fill (the
	// store builds its own).
	events bool
	// apply commits orders [lo, hi) of p, each moved to its next status.
	apply func(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error
}

var statusMethods = []statusMethod{
	{"exec_formatted", true, statusExecFormatted},
	{"prepared", true, statusPrepared},
	{"pgx_batch", true, statusPgxBatch},
	{"unnest", true, statusUnnest},
	{"store", false, statusStore},
}

// BenchmarkStatusUpdate compares the ways to commit rows status changes per
// transaction: per-row formatted Exec (the seed's "before"), per-row Exec of
// a prepared statement, one pgx.Batch (one round trip), one UPDATE … FROM
// unnest, and the production (*store.Store).WriteStatus. The raw methods
// write the update and its outbox row; method=store does more: it also locks
// and reads the orders (SELECT … FOR UPDATE), checks every change against the
// status machine, and copies the outbox rows with COPY. rows/s counts status
// changes (= outbox rows) committed.
func BenchmarkStatusUpdate(b *testing.B) {
	skipUnderTarget(b, "it measures PostgreSQL directly, on a scratch database of its own")
	for _, m := range statusMethods {
		for _, rows := range dbBatchSizes {
			b.Run(fmt.Sprintf("method=%s/rows=%d", m.name, rows), func(b *testing.B) {
				benchStatus(b, m, rows)
			})
		}
	}
}

func benchStatus(b *testing.B, m statusMethod, rows int) {
	s, url := newDB(b, 0)
	ctx := b.Context()
	e := &statusEnv{conn: rawConn(b, url), store: s, ub: order.GetUpdateBatch()}
	for st := order.StatusCreated; st <= order.StatusCancelled; st++ {
		e.statusArgs[st] = st.String()
	}
	if _, err := e.conn.Prepare(ctx, stmtUpdateStatus, updateStatusSQL); err != nil {
		b.Fatal(err)
	}
	if _, err := e.conn.Prepare(ctx, stmtOutboxStatus, outboxStatusSQL); err != nil {
		b.Fatal(err)
	}
	mt := newMeter(b)
	txs := txPerOp(rows)
	p := newStatusPool(b, e.conn, mt, rows*txs)
	changes := 0
	one := func() {
		lo, hi := p.take(rows)
		if err := m.apply(ctx, e, p, lo, hi); err != nil {
			b.Fatalf("%s: %d changes: %v", m.name, rows, err)
		}
		p.commit(lo, hi)
		changes += rows
	}
	one() // warm-up, untimed
	mt.start()
	for b.Loop() {
		for range txs {
			one()
		}
		mt.rows += rows * txs
		mt.txs += txs
	}
	mt.report()
	b.StopTimer()
	if n := countRows(b, url, "outbox"); n != int64(changes) {
		b.Fatalf("outbox has %d rows; want %d (one per committed change)", n, changes)
	}
}

// statusExecFormatted is the seed's "before": every statement formatted with
// fmt.Sprintf and sent by Exec without arguments (pgx then uses the simple
// protocol: parsed and planned anew every time). Formatting values into SQL
// is safe here only because every value is generated by the benchmark (ids
// like st_001_0000042, status names, a timestamp, hex of our own payload);
// never do this with client input.
func statusExecFormatted(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error {
	t := &e.tx
	t.fill(p, lo, hi, true)
	at := t.at.Format("2006-01-02 15:04:05.999999Z07:00")
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for i, id := range t.ids {
		tag, err := tx.Exec(ctx, fmt.Sprintf("UPDATE orders SET status = '%s', version = %d, updated_at = '%s' WHERE id = '%s'",
			t.statuses[i], t.versions[i], at, id))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("update %s: %d rows", id, tag.RowsAffected())
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO outbox (order_id, version, ce_type, ce_time, payload) VALUES ('%s', %d, 'order.status_changed', '%s', '\x%x')`,
			id, t.versions[i], at, t.events[i])); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// statusPrepared sends two Execs per change, of statements prepared by name
// (pgx's default QueryExecModeCacheStatement would prepare them implicitly
// too): one round trip per statement, no parsing or planning.
func statusPrepared(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error {
	t := &e.tx
	t.fill(p, lo, hi, true)
	var at any = t.at
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for i, id := range t.ids {
		tag, err := tx.Exec(ctx, stmtUpdateStatus, id, e.statusArgs[t.next[i]], t.versions[i], at)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("update %s: %d rows", id, tag.RowsAffected())
		}
		if _, err := tx.Exec(ctx, stmtOutboxStatus, id, t.versions[i], at, t.events[i]); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// statusPgxBatch queues the same two prepared statements per change in one
// pgx.Batch: one round trip for the whole batch. SendBatch pipelines them
// with a single Sync, so outside a transaction they run as one implicit
// transaction (all or nothing); no BEGIN/COMMIT round trips.
func statusPgxBatch(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error {
	t := &e.tx
	t.fill(p, lo, hi, true)
	var at any = t.at
	bt := &e.batch
	clear(bt.QueuedQueries)
	bt.QueuedQueries = bt.QueuedQueries[:0]
	for i, id := range t.ids {
		bt.Queue(stmtUpdateStatus, id, e.statusArgs[t.next[i]], t.versions[i], at)
		bt.Queue(stmtOutboxStatus, id, t.versions[i], at, t.events[i])
	}
	br := e.conn.SendBatch(ctx, bt)
	for i, id := range t.ids {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return err
		}
		if tag.RowsAffected() != 1 {
			_ = br.Close()
			return fmt.Errorf("update %s (#%d): %d rows", id, i, tag.RowsAffected())
		}
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

// statusUnnest sends the batch as arrays: one UPDATE … FROM unnest and one
// INSERT … SELECT FROM unnest for the outbox, in one transaction (BEGIN,
// two statements, COMMIT: four round trips whatever the batch size).
func statusUnnest(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error {
	t := &e.tx
	t.fill(p, lo, hi, true)
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, updateStatusUnnestSQL, t.ids, t.statuses, t.versions, t.ats)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != int64(len(t.ids)) {
		return fmt.Errorf("update: %d rows; want %d", tag.RowsAffected(), len(t.ids))
	}
	if _, err := tx.Exec(ctx, outboxStatusUnnestSQL, t.ids, t.versions, t.ats, t.events); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// statusStore is the production path: one UpdateBatch through
// (*store.Store).WriteStatus (BEGIN, SELECT … FOR UPDATE of the orders,
// status machine in memory, UPDATE … FROM unnest, COPY outbox, COMMIT).
func statusStore(ctx context.Context, e *statusEnv, p *statusPool, lo, hi int) error {
	ub := e.ub
	clear(ub.Updates)
	ub.Updates = ub.Updates[:0]
	ub.Arena().Reset(order.MaxRetainedArena)
	at := time.Now()
	for i := lo; i < hi; i++ {
		e.idBuf = append(e.idBuf[:0], p.ids[i]...)
		ub.Add(e.idBuf, p.status[i]+1, at)
	}
	e.store.WriteStatus(ctx, []*order.UpdateBatch{ub})
	for i := range ub.Updates {
		u := &ub.Updates[i]
		if u.Outcome != order.UpdateApplied || u.Version != p.version[lo+i]+1 {
			return fmt.Errorf("update %s → %s: outcome %d version %d: %v", u.OrderID, u.Status, u.Outcome, u.Version, u.Err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// New orders

// Raw insert SQL. The raw methods write an order, its 3 items and its
// order.created outbox row (the store's ~300-byte payload) with plain
// INSERTs: no conflict detection, a duplicate id would fail the batch. Only
// the store_* methods have production semantics (ON CONFLICT dedupe,
// RETURNING, duplicate/conflict classification).
const (
	insertOrderSQL = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, content_hash) VALUES ($1, $2, 'created', $3, $4, 1, $5, $6, $7)`
	insertItemSQL  = `INSERT INTO order_items (order_id, line, sku, qty, price_cents) VALUES ($1, $2, $3, $4, $5)`
	insertEventSQL = `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload) VALUES ($1, 1, 'order.created', $2, $3)`

	// PostgreSQL's wire protocol counts bind parameters in an int16: a
	// statement takes at most 65535, so multi_row_insert splits a table's
	// rows into statements of at most maxParams/params-per-row rows.
	maxParams = 65535

	multiOrderPrefix = `INSERT INTO orders (id, user_id, status, currency, total_cents, version, created_at, updated_at, content_hash) VALUES `
	multiOrderRow    = `(#, #, 'created', #, #, 1, #, #, #)` // 7 parameters
	multiItemPrefix  = `INSERT INTO order_items (order_id, line, sku, qty, price_cents) VALUES `
	multiItemRow     = `(#, #, #, #, #)` // 5
	multiEventPrefix = `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload) VALUES `
	multiEventRow    = `(#, 1, 'order.created', #, #)` // 3
)

// insertEnv is what one insert sub-benchmark works with.
type insertEnv struct {
	conn   *pgx.Conn
	store  *store.Store
	now    time.Time
	seq    uint64
	tx     insertTx
	batch  pgx.Batch
	args   []any
	idArgs []any

	// Boxed once, so that only the per-order values (id, hash) allocate
	// when passed as any (as typical pgx code does).
	user, currency, total, nowArg, event any
	itemArgs                             [][4]any // line, sku, qty, price

	multiSQL map[string]string // prefix|rows → statement text
	orders   *ordersSource
	items    *itemsSource
	outbox   *outboxSource
	ob       *order.Batch // store_* methods
}

type insertMethod struct {
	name        string
	copyMinRows int // store_*: Config.CopyMinRows
	apply       func(ctx context.Context, e *insertEnv, rows int) error
}

var insertMethods = []insertMethod{
	{"insert_per_row", 0, insertPerRow},
	{"multi_row_insert", 0, insertMultiRow},
	{"pgx_batch", 0, insertPgxBatch},
	{"copy_from", 0, insertCopyFrom},
	{"store_unnest", 1 << 30, insertStore},
	{"store_copy", 1, insertStore},
}

// BenchmarkOrderInsert compares the ways to commit rows new orders (each
// with 3 items and a ~300-byte order.created outbox row: 5 table rows) per
// transaction: per-row INSERTs, one multi-row INSERT per table (chunked at
// 65535 parameters), one pgx.Batch of the per-row INSERTs, CopyFrom straight
// into the three tables (no conflict detection: the upper bound), and the
// production WriteOrders with CopyMinRows huge (store_unnest: INSERT …
// SELECT FROM unnest ON CONFLICT DO NOTHING RETURNING, COPY items and
// outbox) or 1 (store_copy: COPY into the staging table, INSERT … SELECT
// ON CONFLICT …). rows/s counts orders.
func BenchmarkOrderInsert(b *testing.B) {
	skipUnderTarget(b, "it measures PostgreSQL directly, on a scratch database of its own")
	for _, m := range insertMethods {
		for _, rows := range dbBatchSizes {
			b.Run(fmt.Sprintf("method=%s/rows=%d", m.name, rows), func(b *testing.B) {
				benchInsert(b, m, rows)
			})
		}
	}
}

func benchInsert(b *testing.B, m insertMethod, rows int) {
	s, url := newDB(b, m.copyMinRows)
	ctx := b.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := &insertEnv{
		conn: rawConn(b, url), store: s, now: now,
		user: benchUser, currency: benchCurrency, total: benchTotal, nowArg: now, event: benchEvent,
		multiSQL: map[string]string{},
		orders:   newOrdersSource(now), items: newItemsSource(), outbox: newOutboxSource(now),
	}
	// Ids are "ord_" + base 36 of seq; starting at the wall clock in ns
	// makes them fixed-width, so every batch is in id order, as the store
	// sorts its own.
	e.seq = uint64(time.Now().UnixNano())
	for line, it := range benchItems {
		e.itemArgs = append(e.itemArgs, [4]any{int32(line), it.SKU, int32(it.Qty), it.PriceCents})
	}
	e.ob = order.GetBatch()
	for range rows {
		e.ob.Orders = append(e.ob.Orders, order.Order{
			UserID: benchUser, Currency: benchCurrency, Items: benchItems, CreatedAt: now, ReceivedAt: now,
			TotalCents: benchTotal, Event: benchEvent,
		})
	}
	mt := newMeter(b)
	txs := txPerOp(rows)
	done := 0
	one := func() {
		if err := m.apply(ctx, e, rows); err != nil {
			b.Fatalf("%s: %d orders: %v", m.name, rows, err)
		}
		done += rows
	}
	one() // warm-up, untimed
	mt.start()
	for b.Loop() {
		for range txs {
			one()
		}
		mt.rows += rows * txs
		mt.txs += txs
	}
	mt.report()
	b.StopTimer()
	for table, want := range map[string]int{"orders": done, "order_items": len(benchItems) * done, "outbox": done} {
		if n := countRows(b, url, table); n != int64(want) {
			b.Fatalf("%s has %d rows; want %d", table, n, want)
		}
	}
}

// insertPerRow sends 5 INSERTs per order (order, 3 items, outbox) in one
// transaction: 5 round trips per order plus BEGIN and COMMIT. pgx's default
// mode prepares each statement once and caches it.
func insertPerRow(ctx context.Context, e *insertEnv, rows int) error {
	t := &e.tx
	t.fill(&e.seq, rows)
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for i, id := range t.ids {
		var idArg any = id
		if _, err := tx.Exec(ctx, insertOrderSQL, idArg, e.user, e.currency, e.total, e.nowArg, e.nowArg, t.hashes[i]); err != nil {
			return err
		}
		for _, it := range e.itemArgs {
			if _, err := tx.Exec(ctx, insertItemSQL, idArg, it[0], it[1], it[2], it[3]); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, insertEventSQL, idArg, e.nowArg, e.event); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// insertPgxBatch queues the same 5 INSERTs per order in one pgx.Batch: one
// round trip, one implicit transaction.
func insertPgxBatch(ctx context.Context, e *insertEnv, rows int) error {
	t := &e.tx
	t.fill(&e.seq, rows)
	bt := &e.batch
	clear(bt.QueuedQueries)
	bt.QueuedQueries = bt.QueuedQueries[:0]
	for i, id := range t.ids {
		var idArg any = id
		bt.Queue(insertOrderSQL, idArg, e.user, e.currency, e.total, e.nowArg, e.nowArg, t.hashes[i])
		for _, it := range e.itemArgs {
			bt.Queue(insertItemSQL, idArg, it[0], it[1], it[2], it[3])
		}
		bt.Queue(insertEventSQL, idArg, e.nowArg, e.event)
	}
	return e.conn.SendBatch(ctx, bt).Close()
}

// insertMultiRow sends one INSERT … VALUES (…),(…),… per table (more when a
// table's rows need more than 65535 parameters) in one transaction. The
// statement text depends on the row count; it is built once per count and
// pgx prepares and caches each distinct text.
func insertMultiRow(ctx context.Context, e *insertEnv, rows int) error {
	t := &e.tx
	t.fill(&e.seq, rows)
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// One boxed id per order, shared by its 5 rows.
	idArgs := e.idArgs[:0]
	for _, id := range t.ids {
		idArgs = append(idArgs, id)
	}
	e.idArgs = idArgs
	// orders: 7 parameters per row
	for lo := 0; lo < rows; lo += maxParams / 7 {
		hi := min(rows, lo+maxParams/7)
		e.args = e.args[:0]
		for i := lo; i < hi; i++ {
			e.args = append(e.args, idArgs[i], e.user, e.currency, e.total, e.nowArg, e.nowArg, t.hashes[i])
		}
		if _, err := tx.Exec(ctx, e.multiRowSQL(multiOrderPrefix, multiOrderRow, hi-lo), e.args...); err != nil {
			return fmt.Errorf("orders: %w", err)
		}
	}
	// order_items: 5 parameters per row, 3 rows per order
	nItems := len(benchItems) * rows
	for lo := 0; lo < nItems; lo += maxParams / 5 {
		hi := min(nItems, lo+maxParams/5)
		e.args = e.args[:0]
		for k := lo; k < hi; k++ {
			it := &e.itemArgs[k%len(benchItems)]
			e.args = append(e.args, idArgs[k/len(benchItems)], it[0], it[1], it[2], it[3])
		}
		if _, err := tx.Exec(ctx, e.multiRowSQL(multiItemPrefix, multiItemRow, hi-lo), e.args...); err != nil {
			return fmt.Errorf("order_items: %w", err)
		}
	}
	// outbox: 3 parameters per row
	for lo := 0; lo < rows; lo += maxParams / 3 {
		hi := min(rows, lo+maxParams/3)
		e.args = e.args[:0]
		for i := lo; i < hi; i++ {
			e.args = append(e.args, idArgs[i], e.nowArg, e.event)
		}
		if _, err := tx.Exec(ctx, e.multiRowSQL(multiEventPrefix, multiEventRow, hi-lo), e.args...); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	clear(e.args)
	clear(e.idArgs)
	return tx.Commit(ctx)
}

// multiRowSQL returns prefix followed by n copies of row, each # replaced by
// the next $k.
func (e *insertEnv) multiRowSQL(prefix, row string, n int) string {
	key := prefix + "|" + strconv.Itoa(n)
	if s, ok := e.multiSQL[key]; ok {
		return s
	}
	var sb strings.Builder
	sb.WriteString(prefix)
	k := 0
	for r := range n {
		if r > 0 {
			sb.WriteByte(',')
		}
		for _, c := range []byte(row) {
			if c != '#' {
				sb.WriteByte(c)
				continue
			}
			k++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(k))
		}
	}
	s := sb.String()
	e.multiSQL[key] = s
	return s
}

// insertCopyFrom copies straight into the three tables in one transaction
// (BEGIN, 3 COPY, COMMIT), with 0-allocation sources: the upper bound, with
// no conflict detection at all. The events go to outbox_events (the outbox
// is a view of it since migration 0003), taking its column defaults: a seq
// from outbox_seq and ring slot 0.
func insertCopyFrom(ctx context.Context, e *insertEnv, rows int) error {
	t := &e.tx
	t.fill(&e.seq, rows)
	tx, err := e.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	e.orders.reset(t)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"orders"}, ordersCopyColumns, e.orders); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	e.items.reset(t)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"order_items"}, itemsCopyColumns, e.items); err != nil {
		return fmt.Errorf("order_items: %w", err)
	}
	e.outbox.reset(t)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox_events"}, outboxCopyColumns, e.outbox); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return tx.Commit(ctx)
}

// insertStore is the production path, (*store.Store).WriteOrders, as
// engine/store's BenchmarkWriteOrders drives it: ids copied into the batch
// arena, every order must come back created.
func insertStore(ctx context.Context, e *insertEnv, rows int) error {
	ob := e.ob
	arena := ob.Arena()
	arena.Reset(order.MaxRetainedArena)
	var buf [32]byte
	for i := range ob.Orders {
		e.seq++
		ob.Orders[i].ID = arena.CopyString(strconv.AppendUint(append(buf[:0], "ord_"...), e.seq, 36))
		ob.Orders[i].Hash = e.seq
	}
	e.store.WriteOrders(ctx, []*order.Batch{ob})
	for i := range ob.Orders {
		if r := ob.Orders[i].Result; r.Outcome != order.OutcomeCreated {
			return fmt.Errorf("order %s: outcome %d: %v", ob.Orders[i].ID, r.Outcome, r.Err)
		}
	}
	return nil
}
