package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// writeOrders commits one order per id and returns their events' seqs, in
// the order of ids. It reports failures with Errorf: it runs in goroutines.
func writeOrders(t *testing.T, s *Store, ids ...string) []int64 {
	t.Helper()
	b := order.GetBatch()
	for i, id := range ids {
		b.Orders = append(b.Orders, testOrder(id, uint64(i)))
	}
	s.WriteOrders(context.Background(), []*order.Batch{b})
	seqs := make([]int64, len(ids))
	for i, o := range b.Orders {
		if o.Result.Outcome != order.OutcomeCreated || o.Result.EventSeq == 0 {
			t.Errorf("write %s: %v seq %d %v", o.ID, o.Result.Outcome, o.Result.EventSeq, o.Result.Err)
		}
		seqs[i] = o.Result.EventSeq
	}
	return seqs
}

// writeN commits n orders ord_000… and returns their events' seqs.
func writeN(t *testing.T, s *Store, n int) []int64 {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ord_%03d", i)
	}
	return writeOrders(t, s, ids...)
}

func backlog(t *testing.T, s *Store) int64 {
	t.Helper()
	n, _, err := s.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return n
}

// copyEvents deep-copies events (SweepEvents' are valid only during fn).
func copyEvents(evs []order.Event) []order.Event {
	out := make([]order.Event, len(evs))
	for i, e := range evs {
		e.OrderID, e.Type, e.Payload = strings.Clone(e.OrderID), strings.Clone(e.Type), slices.Clone(e.Payload)
		e.TraceState = strings.Clone(e.TraceState)
		out[i] = e
	}
	return out
}

// sweepSeqs sweeps until a sweep reaches the end and returns the seqs
// published, in order.
func sweepSeqs(t *testing.T, s *Store, olderThan time.Duration) []int64 {
	t.Helper()
	var got []int64
	for range 100 {
		_, before, err := s.SweepEvents(context.Background(), olderThan, 100, func(evs []order.Event) error {
			for _, e := range evs {
				got = append(got, e.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("SweepEvents: %v", err)
		}
		if !before.IsZero() {
			return got
		}
	}
	t.Fatalf("sweep never reached the end")
	return nil
}

func TestAckEventsAndStats(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	seqs := writeN(t, s, 5)
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != 5 {
		t.Fatalf("seqs of one batch = %v; want 5 increasing", seqs)
	}
	n, age, err := s.OutboxStats(ctx)
	if err != nil || n != 5 || age < 0 || age > time.Minute {
		t.Fatalf("OutboxStats = %d, %v, %v; want 5 and a small age", n, age, err)
	}
	if err := s.AckEvents(ctx, []int64{seqs[1], seqs[3], 1 << 40}); err != nil {
		t.Fatalf("AckEvents: %v", err)
	}
	if err := s.AckEvents(ctx, nil); err != nil {
		t.Fatalf("AckEvents(nil): %v", err)
	}
	if n := backlog(t, s); n != 3 {
		t.Fatalf("backlog after acknowledging 2 = %d; want 3", n)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox`); n != 3 {
		t.Fatalf("outbox view rows = %d; want 3", n)
	}
	// Acknowledged events are never handed to a sweep; the rest are, in seq order.
	if got, want := sweepSeqs(t, s, 0), []int64{seqs[0], seqs[2], seqs[4]}; !slices.Equal(got, want) {
		t.Fatalf("swept %v; want %v (the unacknowledged ones)", got, want)
	}
	if n, age, err := s.OutboxStats(ctx); n != 0 || age != 0 || err != nil {
		t.Fatalf("OutboxStats after the sweep = %d, %v, %v; want 0, 0", n, age, err)
	}
	if got := sweepSeqs(t, s, 0); len(got) != 0 {
		t.Fatalf("second sweep republished %v", got)
	}
	// No event row was deleted: acknowledgement is an insert.
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events`); n != 5 {
		t.Fatalf("outbox_events rows = %d; want 5 (nothing deleted)", n)
	}
}

func TestSweepEvents(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	writeN(t, s, 3)

	// Events younger than the threshold are left alone.
	n, before, err := s.SweepEvents(ctx, time.Hour, 10, func([]order.Event) error {
		t.Fatalf("fn called for events younger than the threshold")
		return nil
	})
	if err != nil || n != 0 || before.IsZero() {
		t.Fatalf("SweepEvents(1h) = %d, %v, %v; want 0, a time, nil", n, before, err)
	}

	// fn's error keeps the events.
	boom := errors.New("broker away")
	n, _, err = s.SweepEvents(ctx, 0, 10, func(evs []order.Event) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("SweepEvents with failing fn = %d, %v; want 0, %v", n, err, boom)
	}
	if n := backlog(t, s); n != 3 {
		t.Fatalf("backlog after a failed sweep = %d; want 3", n)
	}

	// Old enough: published in order, then recorded as acknowledged. The
	// sweep stops at the first younger event (ord_002).
	pgtest.Exec(t, url, "UPDATE outbox SET enqueued_at = now() - interval '1 minute' WHERE order_id <> 'ord_002'")
	var got []order.Event
	n, before, err = s.SweepEvents(ctx, 30*time.Second, 10, func(evs []order.Event) error {
		got = append(got, copyEvents(evs)...)
		return nil
	})
	if err != nil || n != 2 || before.IsZero() {
		t.Fatalf("SweepEvents(30s) = %d, %v, %v; want 2, a time, nil", n, before, err)
	}
	for i, e := range got {
		id := fmt.Sprintf("ord_%03d", i)
		if e.OrderID != id || e.Version != 1 || e.Type != order.EventCreated || !e.Time.Equal(testReceived) ||
			string(e.Payload) != fmt.Sprintf(`{"order":{"id":%q}}`, id) || e.Seq == 0 {
			t.Fatalf("event %d = %+v (payload %s); want %s v1 %s at %v", i, e, e.Payload, id, order.EventCreated, testReceived)
		}
	}
	if n := backlog(t, s); n != 1 {
		t.Fatalf("backlog after sweeping 2 = %d; want 1", n)
	}
}

func TestSweepEventsOneAtATime(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	writeN(t, s, 10)

	ids := func(evs []order.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, strings.Clone(e.OrderID))
		}
		return out
	}
	var first, second []string
	locked := make(chan struct{})
	secondDone := make(chan error, 1)
	go func() {
		<-locked
		_, _, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error {
			second = ids(evs)
			return nil
		})
		// Busy must be told apart from "nothing to sweep".
		var busy interface{ SweepBusy() bool }
		if !errors.As(err, &busy) || !busy.SweepBusy() {
			secondDone <- fmt.Errorf("concurrent sweep returned %v; want the SweepBusy error", err)
			return
		}
		secondDone <- nil
	}()
	n1, before, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error {
		first = ids(evs)
		close(locked)
		// Hold the sweep until the concurrent one has finished.
		return <-secondDone
	})
	if err != nil {
		t.Fatalf("first sweep: %v", err)
	}
	// One sweep at a time (advisory lock): the concurrent one gets nothing.
	if n1 != 6 || len(first) != 6 || len(second) != 0 || !before.IsZero() {
		t.Fatalf("sweeps got %v and %v (first caught up before %v); want 6, a full page, and none for the concurrent sweep", first, second, before)
	}
	if n := backlog(t, s); n != 4 {
		t.Fatalf("backlog = %d; want the 4 events left for the next sweep", n)
	}
	n2, _, err := s.SweepEvents(ctx, 0, 6, func(evs []order.Event) error { second = ids(evs); return nil })
	if err != nil || n2 != 4 {
		t.Fatalf("next sweep = %d, %v; want 4", n2, err)
	}
	for _, id := range second {
		if slices.Contains(first, id) {
			t.Fatalf("event %s handed to both sweeps: %v / %v", id, first, second)
		}
	}
}

// A writer that took its seq but has not committed yet holds the sweep back
// at that seq: a later event that committed first is not published before
// it, and the watermark never skips it.
func TestSweepWaitsForOpenWriter(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	a := writeN(t, s, 1)[0]

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b int64
	if err := tx.QueryRow(ctx, `SELECT nextval('outbox_seq')`).Scan(&b); err != nil {
		t.Fatal(err)
	}
	c := writeOrders(t, s, "ord_late")[0]
	if !(a < b && b < c) {
		t.Fatalf("seqs %d, %d, %d; want increasing", a, b, c)
	}
	// Seqs up to the head are settled only once every writer that held the
	// sequence then has ended: nothing is published past an open writer.
	for i := range 3 {
		if got := sweepSeqs(t, s, 0); len(got) != 0 {
			t.Fatalf("sweep %d with seq %d still open published %v; want nothing yet", i, b, got)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload)
SELECT $1, ($1 / gen_rows) % slots, 'ord_open', 1, 'order.created', now(), '\x7b7d' FROM outbox_ring`, b); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sweepSeqs(t, s, 0); !slices.Equal(got, []int64{a, b, c}) {
		t.Fatalf("after the open writer committed, swept %v; want [%d %d %d]", got, a, b, c)
	}
}

// setGenRows makes ring generations small, so that tests rotate through
// every slot with a few hundred events.
func setGenRows(t *testing.T, url string, n int) {
	t.Helper()
	pgtest.Exec(t, url, `UPDATE outbox_ring SET gen_rows = $1`, n)
}

// outboxBytes is the storage of every outbox partition, indexes and TOAST
// included.
func outboxBytes(t *testing.T, url string) int64 {
	t.Helper()
	return pgtest.Int64(t, url, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
WHERE c.relkind = 'r' AND (c.relname LIKE 'outbox_events_%' OR c.relname LIKE 'outbox_acks_%')`)
}

// Acknowledged events are truncated with their slot, so the outbox's size
// stays bounded however many events pass through it, without vacuum.
func TestOutboxSizeBoundedOverRotations(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	const gen, slots, batch = 40, 8, 50
	setGenRows(t, url, gen)
	var ring, peak int64
	rounds := 5 * gen * slots / batch // five times the ring's worth of events
	for r := range rounds {
		ids := make([]string, batch)
		for i := range ids {
			ids[i] = fmt.Sprintf("ord_r%03d_%02d", r, i)
		}
		seqs := writeOrders(t, s, ids...)
		if err := s.AckEvents(ctx, seqs); err != nil {
			t.Fatal(err)
		}
		if got := sweepSeqs(t, s, time.Hour); len(got) != 0 {
			t.Fatalf("round %d: swept acknowledged events %v", r, got)
		}
		if _, err := s.ReclaimOutbox(ctx); err != nil {
			t.Fatalf("ReclaimOutbox: %v", err)
		}
		size := outboxBytes(t, url)
		if r == gen*slots/batch {
			ring = peak // the peak over the first pass round the ring
		}
		peak = max(peak, size)
	}
	final := outboxBytes(t, url)
	rows := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events`)
	t.Logf("after %d events: %d event rows, %d bytes (peak %d, peak over the first ring %d)", rounds*batch, rows, final, peak, ring)
	if rows > 3*gen+batch {
		t.Errorf("%d event rows kept after %d events; want at most %d (the slots being written)", rows, rounds*batch, 3*gen+batch)
	}
	if peak > ring+64<<10 {
		t.Errorf("outbox storage peaked at %d bytes; want at most the first ring's %d + 64 KiB", peak, ring)
	}
	if n := backlog(t, s); n != 0 {
		t.Errorf("backlog = %d; want 0", n)
	}
}

// A writer whose slot is being truncated waits for the truncation and then
// commits into the emptied partition; when the wait outlives its
// transaction timeout, the error comes before COMMIT and the retry
// succeeds. Either way the order and its event are stored once.
func TestWriterMeetsTruncation(t *testing.T) {
	s, url, m := newTestStore(t)
	ctx := context.Background()
	setGenRows(t, url, 1_000_000) // every seq of this test in slot 0
	s.cfg.TxTimeout = 400 * time.Millisecond
	s.cfg.MaxRetries = 10
	writeN(t, s, 1)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE outbox_events_0, outbox_acks_0 IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `TRUNCATE outbox_events_0, outbox_acks_0`); err != nil {
		t.Fatal(err)
	}
	done := make(chan []int64, 1)
	go func() { done <- writeOrders(t, s, "ord_blocked") }()
	time.Sleep(time.Second)
	select {
	case <-done:
		t.Fatalf("the write committed while its slot was locked for truncation")
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var seq int64
	select {
	case seqs := <-done:
		seq = seqs[0]
	case <-time.After(30 * time.Second):
		t.Fatalf("the write did not finish after the truncation")
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM orders WHERE id = 'ord_blocked'`); n != 1 {
		t.Fatalf("ord_blocked rows = %d; want 1", n)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events WHERE order_id = 'ord_blocked' AND seq = $1`, seq); n != 1 {
		t.Fatalf("ord_blocked events = %d; want 1", n)
	}
	if got := counterValue(t, m.DBRetries.WithLabelValues("orders")); got == 0 {
		t.Errorf("no retry recorded; want the wait to outlive the 400ms transaction timeout")
	}
	if got := sweepSeqs(t, s, 0); !slices.Contains(got, seq) {
		t.Errorf("swept %v; want the blocked order's event %d among them", got, seq)
	}
}

// Writers, a fast path acknowledging half of what they commit, and a
// sweeper that truncates slots run at once over a ring of tiny generations:
// every committed event is published exactly once (acknowledged or swept),
// none acknowledged is swept, and each order's events are swept in version
// order.
func TestRotationUnderConcurrentWrites(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	setGenRows(t, url, 16)
	const grace = 3 * time.Second
	var (
		mu        sync.Mutex
		committed = map[int64]string{} // seq → ce_id
		acked     = map[int64]bool{}
		swept     = map[int64]int{}
		sweptSeq  []order.Event
	)
	record := func(ids []string, seqs []int64, version int32) {
		mu.Lock()
		defer mu.Unlock()
		for i, seq := range seqs {
			if _, dup := committed[seq]; dup {
				t.Errorf("seq %d given twice", seq)
			}
			committed[seq] = fmt.Sprintf("%s/%d", ids[i], version)
		}
	}
	ack := func(seqs []int64) {
		var half []int64
		for _, seq := range seqs {
			if rand.IntN(2) == 0 {
				half = append(half, seq)
			}
		}
		if err := s.AckEvents(ctx, half); err != nil {
			t.Errorf("AckEvents: %v", err)
			return
		}
		mu.Lock()
		for _, seq := range half {
			acked[seq] = true
		}
		mu.Unlock()
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for r := range 30 {
				ids := make([]string, 5)
				for i := range ids {
					ids[i] = fmt.Sprintf("ord_w%d_%02d_%d", w, r, i)
				}
				seqs := writeOrders(t, s, ids...)
				record(ids, seqs, 1)
				ack(seqs)
				if w == 0 {
					// A status change for each: a second version, in its own transaction.
					b := order.GetUpdateBatch()
					for _, id := range ids {
						b.Updates = append(b.Updates, order.Update{OrderID: id, Status: order.StatusPaid, ReceivedAt: testReceived})
					}
					s.WriteStatus(ctx, []*order.UpdateBatch{b})
					var upSeqs []int64
					for _, u := range b.Updates {
						if u.Outcome != order.UpdateApplied {
							t.Errorf("status of %s: %v %v", u.OrderID, u.Outcome, u.Err)
						}
						upSeqs = append(upSeqs, u.EventSeq)
					}
					record(ids, upSeqs, 2)
					ack(upSeqs)
				}
			}
		})
	}
	stop := make(chan struct{})
	truncated := 0
	var sweeper sync.WaitGroup
	sweep := func() (bool, error) {
		_, before, err := s.SweepEvents(ctx, grace, 40, func(evs []order.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range copyEvents(evs) {
				swept[e.Seq]++
				sweptSeq = append(sweptSeq, e)
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		n, err := s.ReclaimOutbox(ctx)
		truncated += n
		return !before.IsZero(), err
	}
	sweeper.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := sweep(); err != nil {
				t.Errorf("sweep: %v", err)
				return
			}
		}
	})
	writers.Wait()
	close(stop)
	sweeper.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for backlog(t, s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog %d left after 60s of sweeping", backlog(t, s))
		}
		if _, err := sweep(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 { // let the watermark pass the end, then truncate what it can
		if _, err := sweep(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for seq, id := range committed {
		switch {
		case acked[seq] && swept[seq] > 0:
			t.Errorf("%s (seq %d) acknowledged and swept too", id, seq)
		case !acked[seq] && swept[seq] != 1:
			t.Errorf("%s (seq %d) swept %d times; want once", id, seq, swept[seq])
		}
	}
	last := map[string]int32{}
	for _, e := range sweptSeq {
		if e.Version <= last[e.OrderID] {
			t.Errorf("order %s: version %d swept after %d", e.OrderID, e.Version, last[e.OrderID])
		}
		last[e.OrderID] = e.Version
	}
	if truncated == 0 {
		t.Errorf("no slot truncated over %d events in generations of 16", len(committed))
	}
	t.Logf("%d events, %d acknowledged, %d swept, %d slot truncations", len(committed), len(acked), len(sweptSeq), truncated)
}

// An old-layout database with events in its outbox table: several instances
// migrating at once move every row into the ring in (order id, version)
// order, and concurrent sweeps then publish each exactly once, in order.
func TestMigrateMovesOldOutbox(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, `CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	for _, m := range ms[:2] {
		pgtest.Exec(t, url, m.sql)
		pgtest.Exec(t, url, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
	}
	const orders = 150
	perm := rand.Perm(orders * 2)
	for _, p := range perm { // inserted in scrambled order
		id, v := fmt.Sprintf("ord_old%03d", p/2), p%2+1
		pgtest.Exec(t, url, `INSERT INTO outbox (order_id, version, ce_type, ce_time, payload, enqueued_at)
VALUES ($1, $2, 'order.created', now(), '\x7b7d', now() - interval '1 hour')`, id, v)
	}

	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		st, err := New(ctx, Config{URL: url, MaxConns: 2}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		stores[i] = st
		wg.Go(func() { errs[i] = st.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_events`); n != 2*orders {
		t.Fatalf("outbox_events rows = %d; want %d", n, 2*orders)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY order_id, version) AS prev FROM outbox_events) x WHERE prev >= seq`); n != 0 {
		t.Fatalf("%d events whose seq does not follow (order_id, version) order", n)
	}

	var (
		mu  sync.Mutex
		got = map[string]int{}
		seq []order.Event
	)
	for _, st := range stores {
		wg.Go(func() {
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				n, _, err := st.OutboxStats(ctx)
				if err != nil {
					t.Errorf("OutboxStats: %v", err)
					return
				}
				if n == 0 {
					return
				}
				_, _, err = st.SweepEvents(ctx, time.Minute, 25, func(evs []order.Event) error {
					mu.Lock()
					defer mu.Unlock()
					for _, e := range copyEvents(evs) {
						got[fmt.Sprintf("%s/%d", e.OrderID, e.Version)]++
						seq = append(seq, e)
					}
					return nil
				})
				var busy interface{ SweepBusy() bool }
				if err != nil && !errors.As(err, &busy) {
					t.Errorf("SweepEvents: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(got) != 2*orders {
		t.Fatalf("published %d distinct events; want %d", len(got), 2*orders)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s published %d times; want once", id, n)
		}
	}
	last := map[string]int32{}
	for _, e := range seq {
		if e.Version != last[e.OrderID]+1 {
			t.Errorf("order %s: version %d after %d", e.OrderID, e.Version, last[e.OrderID])
		}
		last[e.OrderID] = e.Version
	}
}

// TestOutboxStatsCostDoesNotFollowBacklog pins that the gauges do not read
// the unpublished events: with 50,000 of them (a Kafka outage) and some
// acknowledged past the oldest, OutboxStats is exact and its plan touches a
// handful of outbox_events rows (the first one at or above the watermark in
// each partition), not the backlog.
func TestOutboxStatsCostDoesNotFollowBacklog(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	const n = 50_000
	pgtest.Exec(t, url, `INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at)
SELECT q.s, (q.s / r.gen_rows) % r.slots, 'ord_' || q.s, 1, 'order.created', now(), '\x7b7d'::bytea, now() - interval '1 minute'
FROM (SELECT nextval('outbox_seq') AS s FROM generate_series(1, $1::int)) q, outbox_ring r`, n)
	// The fast path acknowledged every third event past the first.
	var acked []int64
	for seq := int64(2); seq <= n; seq += 3 {
		acked = append(acked, seq)
	}
	if err := s.AckEvents(ctx, acked); err != nil {
		t.Fatalf("AckEvents: %v", err)
	}
	// Repeated acknowledgements (the fast path and a sweep both acked) count once.
	if err := s.AckEvents(ctx, acked[:10]); err != nil {
		t.Fatalf("AckEvents: %v", err)
	}
	got, age, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	if want := int64(n - len(acked)); got != want {
		t.Fatalf("backlog = %d; want %d", got, want)
	}
	if age < 50*time.Second || age > 10*time.Minute {
		t.Fatalf("oldest age = %v; want about a minute", age)
	}

	if read, plan := statsPlanReads(t, s); read > 64 {
		t.Fatalf("OutboxStats read %.0f outbox_events rows with a backlog of %d; want a handful (plan: %v)", read, got, plan)
	}

	// Steady state: the fast path acknowledged everything but the newest
	// few, and the watermark has not moved yet (the sweep grace): the
	// oldest-age probe starts at the first unacknowledged seq, not at the
	// watermark, so it does not walk the acknowledged ones.
	var rest []int64
	for seq := int64(1); seq <= n-10; seq++ {
		if seq%3 != 2 {
			rest = append(rest, seq)
		}
	}
	if err := s.AckEvents(ctx, rest); err != nil {
		t.Fatalf("AckEvents: %v", err)
	}
	// Of the newest 10, those with seq%3 == 2 were acknowledged above.
	want := int64(0)
	for seq := int64(n - 9); seq <= n; seq++ {
		if seq%3 != 2 {
			want++
		}
	}
	if got, _, err := s.OutboxStats(ctx); err != nil || got != want {
		t.Fatalf("backlog with all but %d of the newest 10 acknowledged = %d, %v; want %d", want, got, err, want)
	}
	if read, plan := statsPlanReads(t, s); read > 64 {
		t.Fatalf("OutboxStats read %.0f outbox_events rows with all but 10 of %d acknowledged; want a handful (plan: %v)", read, n, plan)
	}
}

// statsPlanReads runs outboxStatsSQL under EXPLAIN ANALYZE and returns how
// many outbox_events rows its plan read, with the plan.
func statsPlanReads(t *testing.T, s *Store) (float64, []map[string]any) {
	t.Helper()
	var plan []map[string]any
	if err := s.pool.QueryRow(context.Background(), `EXPLAIN (ANALYZE, FORMAT JSON) `+outboxStatsSQL).Scan(&plan); err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	var read float64
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if rel, _ := node["Relation Name"].(string); strings.HasPrefix(rel, "outbox_events") {
			rows, _ := node["Actual Rows"].(float64)
			loops, _ := node["Actual Loops"].(float64)
			removed, _ := node["Rows Removed by Filter"].(float64)
			read += (rows + removed) * loops
		}
		kids, _ := node["Plans"].([]any)
		for _, k := range kids {
			walk(k.(map[string]any))
		}
	}
	walk(plan[0]["Plan"].(map[string]any))
	return read, plan
}

// rangeTx records the seq range of every sweepEventsSQL query run through it.
type rangeTx struct {
	pgx.Tx
	ranges [][2]int64
}

func (r *rangeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if sql == sweepEventsSQL {
		r.ranges = append(r.ranges, [2]int64{args[0].(int64), args[1].(int64)})
	}
	return r.Tx.Query(ctx, sql, args...)
}

// TestSweepPageReadsWindows pins that a sweep page reads the settled range
// in bounded windows: a backlog at the watermark with many events above it
// that the fast path published (new orders during a drain) costs a page
// what its window holds, not every acknowledgement up to the range's end;
// and that windows change nothing a page returns: the unacknowledged old
// events in seq order, up to limit, across long acknowledged runs, with
// the watermark past them.
func TestSweepPageReadsWindows(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	const backlogN, ackedN, tailN, limit = 300, 20_000, 30, 100
	total := backlogN + ackedN + tailN
	pgtest.Exec(t, url, `INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at)
SELECT q.s, (q.s / r.gen_rows) % r.slots, 'ord_' || q.s, 1, 'order.created', now(), '\x7b7d'::bytea, now() - interval '1 minute'
FROM (SELECT nextval('outbox_seq') AS s FROM generate_series(1, $1::int)) q, outbox_ring r`, total)
	// The fast path published everything between the backlog and the tail,
	// and every third event of the backlog past its first page.
	var acked []int64
	for seq := int64(backlogN + 1); seq <= backlogN+ackedN; seq++ {
		acked = append(acked, seq)
	}
	for seq := int64(limit + 1); seq <= backlogN; seq += 3 {
		acked = append(acked, seq)
	}
	if err := s.AckEvents(ctx, acked); err != nil {
		t.Fatalf("AckEvents: %v", err)
	}
	isAcked := make(map[int64]bool, len(acked))
	for _, seq := range acked {
		isAcked[seq] = true
	}

	page := func(low int64) (seqs []int64, next int64, done bool, ranges [][2]int64) {
		t.Helper()
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rt := &rangeTx{Tx: tx}
			var arena bytesutil.Arena
			events, behind, n, d, err := readSweepPage(ctx, rt, &arena, low, int64(total), 30*time.Second, limit)
			if len(behind) > 0 {
				t.Errorf("readSweepPage(%d): %d events behind a parked one; want none", low, len(behind))
			}
			for _, e := range events {
				seqs = append(seqs, e.Seq)
			}
			next, done, ranges = n, d, rt.ranges
			return err
		})
		if err != nil {
			t.Fatalf("readSweepPage(%d): %v", low, err)
		}
		return seqs, next, done, ranges
	}

	// The first page lies in the first window: one read of a few pages'
	// worth of seqs, not of the 20,000 acknowledged ones above.
	seqs, next, done, ranges := page(1)
	if len(seqs) != limit || seqs[0] != 1 || seqs[limit-1] != limit || next != limit+1 || done {
		t.Fatalf("first page: %d events %v…, next %d, done %v; want seqs 1..%d, next %d, not done", len(seqs), seqs[:min(3, len(seqs))], next, done, limit, limit+1)
	}
	if len(ranges) != 1 || ranges[0][1]-ranges[0][0]+1 > sweepWindowPages*limit {
		t.Fatalf("first page read ranges %v; want one window of at most %d seqs", ranges, sweepWindowPages*limit)
	}

	// Then page after page to the end: every unacknowledged event once, in
	// order, each read bounded, the last page crossing the acknowledged run
	// to the tail.
	var all []int64
	low, pages := int64(limit+1), 0
	for ; !done; pages++ {
		if pages > 10 {
			t.Fatalf("no end after %d pages (low %d)", pages, low)
		}
		seqs, next, done, ranges = page(low)
		for _, r := range ranges {
			if r[1]-r[0]+1 > sweepWindowMaxPages*limit {
				t.Fatalf("page at %d read range %v: %d seqs; want at most %d", low, r, r[1]-r[0]+1, sweepWindowMaxPages*limit)
			}
		}
		if next <= low {
			t.Fatalf("page at %d: watermark %d did not move", low, next)
		}
		all, low = append(all, seqs...), next
	}
	var want []int64
	for seq := int64(limit + 1); seq <= int64(total); seq++ {
		if !isAcked[seq] {
			want = append(want, seq)
		}
	}
	if !slices.Equal(all, want) {
		t.Fatalf("pages after the first returned %d events %v; want %d: %v", len(all), all, len(want), want)
	}
	if low != int64(total)+1 {
		t.Fatalf("watermark at the end = %d; want %d", low, total+1)
	}
}

// TestSweepHoldsNoWriterConnection pins that a sweep runs on a connection
// of its own: while its page is out (fn running, which is while the broker
// acknowledges it), the group commit still gets the pool's only connection.
func TestSweepHoldsNoWriterConnection(t *testing.T) {
	url := pgtest.New(t)
	s, err := New(context.Background(), Config{URL: url, MaxConns: 1, TxTimeout: 2 * time.Second, MaxRetries: -1}, nil, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	writeN(t, s, 3)
	var during []int64
	n, _, err := s.SweepEvents(context.Background(), 0, 10, func(evs []order.Event) error {
		during = writeOrders(t, s, "ord_during")
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("SweepEvents = %d, %v; want 3, nil", n, err)
	}
	if len(during) != 1 || during[0] == 0 {
		t.Fatalf("order written during the sweep: seqs %v; want one committed", during)
	}
}
