package bench

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// Helpers of db_timing_test.go: databases, raw connections, seeding, the
// per-row metrics and the CopyFrom sources of the raw methods.

// dbBatchSizes are the rows committed per transaction in every DB sweep.
var dbBatchSizes = []int{1, 10, 100, 1000, 10000}

// minRowsPerOp is the least number of rows one benchmark op commits: an op
// runs txPerOp(rows) transactions of rows rows each. With a count-based
// -benchtime (3x) an op of rows=1 would otherwise be three commits, all
// noise; this way every op times at least 1000 rows whatever the batch size,
// and rows/s compares like with like. ns/op is therefore per op, not per
// transaction: read rows/s and ms/tx.
const minRowsPerOp = 1000

func txPerOp(rows int) int { return max(1, minRowsPerOp/rows) }

// newDB creates a fresh pgtest database, applies the production schema with
// store.New + Migrate (exactly what the engine runs at startup) and returns
// the store (closed in cleanup) and the database URL. copyMinRows is passed
// to store.Config (0: the default).
func newDB(b *testing.B, copyMinRows int) (*store.Store, string) {
	b.Helper()
	url := pgtest.New(b)
	s, err := store.New(context.Background(), store.Config{URL: url, CopyMinRows: copyMinRows}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s, url
}

// rawConn opens one pgx connection to url with synchronous_commit forced on,
// as store.New does for its pool (a startup parameter overrides role and
// database settings), so raw methods pay the same durable commit.
func rawConn(b *testing.B, url string) *pgx.Conn {
	b.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	var sc string
	if err := conn.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&sc); err != nil || sc != "on" {
		b.Fatalf("synchronous_commit = %q (%v); want on", sc, err)
	}
	return conn
}

// meter counts what the timed part of a DB benchmark did: rows and
// transactions committed, heap allocations (runtime.MemStats.Mallocs, the
// counter b.ReportAllocs reads) while the timer runs. pause/resume bracket
// untimed work inside the b.Loop (seeding) so it counts neither time nor
// allocations.
type meter struct {
	b         *testing.B
	rows, txs int
	mallocs   uint64
	base      uint64
}

func totalMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

func newMeter(b *testing.B) *meter {
	b.ReportAllocs()
	return &meter{b: b}
}

// start is called right before the b.Loop.
func (m *meter) start() { m.base = totalMallocs() }

func (m *meter) pause() {
	m.mallocs += totalMallocs() - m.base
	m.b.StopTimer()
}

func (m *meter) resume() {
	m.b.StartTimer()
	m.base = totalMallocs()
}

// report is called after the b.Loop: rows/s over the timed part,
// allocs/row (every allocation of the process while timed, pgx's goroutines
// included, divided by the rows committed) and ms/tx, the mean latency of
// one batch transaction.
func (m *meter) report() {
	m.mallocs += totalMallocs() - m.base
	if m.rows == 0 {
		m.b.Fatal("no rows committed")
	}
	sec := m.b.Elapsed().Seconds()
	m.b.ReportMetric(float64(m.rows)/sec, "rows/s")
	m.b.ReportMetric(float64(m.mallocs)/float64(m.rows), "allocs/row")
	m.b.ReportMetric(sec*1e3/float64(m.txs), "ms/tx")
}

// statusPool is the set of orders the status benchmarks move through the
// status machine. Each order takes one real transition per pass over the
// pool, created → paid → assembling → delivering → delivered; after the
// fourth pass every order is final and a fresh generation is seeded (timer
// paused). So every transaction of every method applies rows valid
// transitions to rows distinct orders, each a new version with one outbox
// row, and the work per transaction is the same all the time.
type statusPool struct {
	b       *testing.B
	conn    *pgx.Conn
	m       *meter
	size    int // a multiple of the batch size
	gen     int
	pass    int
	cur     int
	ids     []string // sorted (fixed-width names), like the store sorts its batch
	status  []order.Status
	version []int32
}

func newStatusPool(b *testing.B, conn *pgx.Conn, m *meter, size int) *statusPool {
	p := &statusPool{b: b, conn: conn, m: m, size: size}
	p.seed()
	return p
}

// seed inserts a new generation of size orders, status created, version 1,
// and analyzes orders so the planner sees the table as it is.
func (p *statusPool) seed() {
	p.gen++
	ids := make([]string, p.size)
	for i := range ids {
		ids[i] = fmt.Sprintf("st_%03d_%07d", p.gen, i)
	}
	now := time.Now().UTC()
	ctx := context.Background()
	_, err := p.conn.CopyFrom(ctx, pgx.Identifier{"orders"},
		[]string{"id", "user_id", "status", "currency", "total_cents", "version", "created_at", "updated_at", "content_hash"},
		pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) {
			return []any{ids[i], "u_42", "created", "EUR", int64(816), int32(1), now, now, int64(i)}, nil
		}))
	if err != nil {
		p.b.Fatalf("seed %d orders: %v", len(ids), err)
	}
	if _, err := p.conn.Exec(ctx, "ANALYZE orders"); err != nil {
		p.b.Fatal(err)
	}
	p.ids = ids
	p.status = p.status[:0]
	p.version = p.version[:0]
	for range ids {
		p.status = append(p.status, order.StatusCreated)
		p.version = append(p.version, 1)
	}
	p.pass, p.cur = 0, 0
}

// take returns the index range of the next n orders (n divides size),
// seeding a new generation, untimed, when the current one is final.
func (p *statusPool) take(n int) (lo, hi int) {
	if p.cur+n > p.size {
		p.cur = 0
		p.pass++
		if p.pass == 4 { // delivered: no transition left
			p.m.pause()
			p.seed()
			p.m.resume()
		}
	}
	lo, hi = p.cur, p.cur+n
	p.cur = hi
	return lo, hi
}

// commit records that orders [lo, hi) moved one step.
func (p *statusPool) commit(lo, hi int) {
	for i := lo; i < hi; i++ {
		p.status[i]++
		p.version[i]++
	}
}

// statusTx is one batch of status changes as the raw methods send it: the
// same ids, target statuses, versions, timestamp and order.status_changed
// payloads the store would write.
type statusTx struct {
	ids      []string
	statuses []string
	next     []order.Status
	versions []int32
	ats      []time.Time
	at       time.Time
	events   [][]byte // views into evBuf
	evBuf    []byte
	evEnd    []int
}

// fill loads orders [lo, hi) of p, each to its next status, payloads
// included when events (the store builds its own).
func (t *statusTx) fill(p *statusPool, lo, hi int, events bool) {
	t.at = time.Now().UTC().Truncate(time.Microsecond)
	t.ids = t.ids[:0]
	t.statuses = t.statuses[:0]
	t.next = t.next[:0]
	t.versions = t.versions[:0]
	t.ats = t.ats[:0]
	t.evBuf = t.evBuf[:0]
	t.evEnd = t.evEnd[:0]
	for i := lo; i < hi; i++ {
		next := p.status[i] + 1
		t.ids = append(t.ids, p.ids[i])
		t.statuses = append(t.statuses, next.String())
		t.next = append(t.next, next)
		t.versions = append(t.versions, p.version[i]+1)
		t.ats = append(t.ats, t.at)
		if events {
			t.evBuf = order.AppendStatusChangedEvent(t.evBuf, p.ids[i], next, p.status[i], p.version[i]+1, t.at)
			t.evEnd = append(t.evEnd, len(t.evBuf))
		}
	}
	t.events = t.events[:0]
	start := 0
	for _, end := range t.evEnd {
		t.events = append(t.events, t.evBuf[start:end:end])
		start = end
	}
}

// insertTx is one batch of new orders as the raw methods send it: fresh
// ids (views into one string per batch: one allocation per transaction, not
// per row) and content hashes.
type insertTx struct {
	ids    []string
	hashes []int64
	idBuf  []byte
	idEnd  []int
}

func (t *insertTx) fill(seq *uint64, n int) {
	t.idBuf, t.idEnd, t.hashes = t.idBuf[:0], t.idEnd[:0], t.hashes[:0]
	for range n {
		*seq++
		t.idBuf = strconv.AppendUint(append(t.idBuf, "ord_"...), *seq, 36)
		t.idEnd = append(t.idEnd, len(t.idBuf))
		t.hashes = append(t.hashes, int64(*seq))
	}
	s := string(t.idBuf)
	t.ids = t.ids[:0]
	start := 0
	for _, end := range t.idEnd {
		t.ids = append(t.ids, s[start:end])
		start = end
	}
}

// The fixed content of every benchmark order: the 3-item order and ~300-byte
// event of engine/store/store_timing_test.go.
var (
	benchItems = []order.Item{
		{SKU: "milk-1l", Qty: 2, PriceCents: 119},
		{SKU: "bread-rye", Qty: 1, PriceCents: 249},
		{SKU: "eggs-10", Qty: 1, PriceCents: 329},
	}
	benchEvent = func() []byte {
		e := make([]byte, 300)
		for i := range e {
			e[i] = 'a' + byte(i%26)
		}
		return e
	}()
)

const (
	benchUser     = "u_42"
	benchCurrency = "EUR"
	benchTotal    = int64(816)
)

var (
	ordersCopyColumns = []string{"id", "user_id", "status", "currency", "total_cents", "version", "created_at", "updated_at", "content_hash"}
	itemsCopyColumns  = []string{"order_id", "line", "sku", "qty", "price_cents"}
	outboxCopyColumns = []string{"order_id", "version", "ce_type", "ce_time", "payload"}
)

// ordersSource is the [pgx.CopyFromSource] of copy_from's orders: one reused
// row whose varying fields are pointers to pgtype values (no allocation per
// row, as in the store); constant fields are boxed once.
type ordersSource struct {
	t    *insertTx
	i    int
	id   pgtype.Text
	hash pgtype.Int8
	c    copyConsts
	row  []any
}

// copyConsts are the values every copied row shares, as pgtype values the
// rows point to. A time.Time boxed once in the row would still cost one
// allocation per value encoded (pgx re-boxes it in its own wrapper type to
// find the encode plan): copy_from measured 3 allocs/row (the orders' two
// timestamps and the outbox's) instead of 0. Boxed strings, ints and
// []byte cost nothing, but pointers keep all columns alike.
type copyConsts struct {
	user, created, currency, ceType pgtype.Text
	total                           pgtype.Int8
	version                         pgtype.Int4
	now                             pgtype.Timestamptz
	event                           bytea
}

func (c *copyConsts) init(now time.Time) {
	c.user = pgtype.Text{String: benchUser, Valid: true}
	c.created = pgtype.Text{String: "created", Valid: true}
	c.currency = pgtype.Text{String: benchCurrency, Valid: true}
	c.ceType = pgtype.Text{String: order.EventCreated, Valid: true}
	c.total = pgtype.Int8{Int64: benchTotal, Valid: true}
	c.version = pgtype.Int4{Int32: 1, Valid: true}
	c.now = pgtype.Timestamptz{Time: now, Valid: true}
	c.event = bytea{benchEvent}
}

// bytea hands a []byte to pgx through a pointer (pgx encodes a
// [pgtype.BytesValuer]) without boxing the slice header, as the store does.
type bytea struct{ b []byte }

// BytesValue implements [pgtype.BytesValuer].
func (v *bytea) BytesValue() ([]byte, error) { return v.b, nil }

func newOrdersSource(now time.Time) *ordersSource {
	s := &ordersSource{}
	s.c.init(now)
	s.row = []any{&s.id, &s.c.user, &s.c.created, &s.c.currency, &s.c.total, &s.c.version, &s.c.now, &s.c.now, &s.hash}
	return s
}

func (s *ordersSource) reset(t *insertTx) { s.t, s.i = t, -1 }
func (s *ordersSource) Next() bool        { s.i++; return s.i < len(s.t.ids) }
func (s *ordersSource) Err() error        { return nil }
func (s *ordersSource) Values() ([]any, error) {
	s.id = pgtype.Text{String: s.t.ids[s.i], Valid: true}
	s.hash = pgtype.Int8{Int64: s.t.hashes[s.i], Valid: true}
	return s.row, nil
}

// itemsSource is copy_from's order_items: 3 rows per order.
type itemsSource struct {
	t         *insertTx
	oi, ii    int
	id, sku   pgtype.Text
	line, qty pgtype.Int4
	price     pgtype.Int8
	row       []any
}

func newItemsSource() *itemsSource {
	s := &itemsSource{}
	s.row = []any{&s.id, &s.line, &s.sku, &s.qty, &s.price}
	return s
}

func (s *itemsSource) reset(t *insertTx) { s.t, s.oi, s.ii = t, 0, -1 }
func (s *itemsSource) Err() error        { return nil }
func (s *itemsSource) Next() bool {
	s.ii++
	if s.ii == len(benchItems) {
		s.ii = 0
		s.oi++
	}
	return s.oi < len(s.t.ids)
}

func (s *itemsSource) Values() ([]any, error) {
	it := &benchItems[s.ii]
	s.id = pgtype.Text{String: s.t.ids[s.oi], Valid: true}
	s.line = pgtype.Int4{Int32: int32(s.ii), Valid: true}
	s.sku = pgtype.Text{String: it.SKU, Valid: true}
	s.qty = pgtype.Int4{Int32: int32(it.Qty), Valid: true}
	s.price = pgtype.Int8{Int64: it.PriceCents, Valid: true}
	return s.row, nil
}

// outboxSource is copy_from's outbox: one order.created row per order.
type outboxSource struct {
	t   *insertTx
	i   int
	id  pgtype.Text
	c   copyConsts
	row []any
}

func newOutboxSource(now time.Time) *outboxSource {
	s := &outboxSource{}
	s.c.init(now)
	s.row = []any{&s.id, &s.c.version, &s.c.ceType, &s.c.now, &s.c.event}
	return s
}

func (s *outboxSource) reset(t *insertTx) { s.t, s.i = t, -1 }
func (s *outboxSource) Next() bool        { s.i++; return s.i < len(s.t.ids) }
func (s *outboxSource) Err() error        { return nil }
func (s *outboxSource) Values() ([]any, error) {
	s.id = pgtype.Text{String: s.t.ids[s.i], Valid: true}
	return s.row, nil
}

var (
	_ pgx.CopyFromSource = (*ordersSource)(nil)
	_ pgx.CopyFromSource = (*itemsSource)(nil)
	_ pgx.CopyFromSource = (*outboxSource)(nil)
)

// countRows returns count(*) of table (a fixed identifier) at url.
func countRows(b *testing.B, url, table string) int64 {
	b.Helper()
	return pgtest.Int64(b, url, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize())
}
