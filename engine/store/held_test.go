package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// setStatus applies one status change through publisher tk and returns the
// update (outcome, seq, After).
func setStatus(t *testing.T, s *Store, tk Ticket, id, status string) order.Update {
	t.Helper()
	b := updates(time.Now(), id, status)
	s.WriteStatusFor(context.Background(), tk, []*order.UpdateBatch{b})
	u := b.Updates[0]
	order.PutUpdateBatch(b)
	if u.Outcome != order.UpdateApplied {
		t.Fatalf("%s → %s: outcome %d (%v); want applied", id, status, u.Outcome, u.Err)
	}
	return u
}

func register(t *testing.T, s *Store) int32 {
	t.Helper()
	id, err := s.RegisterPublisher(context.Background())
	if err != nil || id == 0 {
		t.Fatalf("RegisterPublisher: %d, %v", id, err)
	}
	return id
}

// What a status transaction learns about the previous version's event, in
// the statement that locks the order: wait for its publisher's ticket while
// that one has not resolved it, nothing once it has, the sweeper while the
// order is held or parked, and the sweeper for a version written with no
// fast path.
func TestWriteStatusAfter(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	a, b := register(t, s), register(t, s)
	if a == b {
		t.Fatalf("two publishers got id %d", a)
	}
	ob := order.GetBatch()
	ob.Orders = append(ob.Orders, testOrder("ord_a", 1), testOrder("ord_b", 2))
	s.WriteOrdersFor(ctx, Ticket{Publisher: a, N: 7}, []*order.Batch{ob})
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM orders WHERE pub_id = $1 AND pub_ticket = 7`, a); n != 2 {
		t.Fatalf("orders written under ticket %d/7: %d; want 2", a, n)
	}
	order.PutBatch(ob)

	check := func(what string, u order.Update, want order.After) {
		t.Helper()
		if u.After != want {
			t.Errorf("%s: After = %+v; want %+v", what, u.After, want)
		}
	}
	// A's ticket 7 is not resolved: B waits for it.
	u := setStatus(t, s, Ticket{Publisher: b, N: 1}, "ord_a", "paid")
	check("v2 after A's unresolved v1", u, order.After{Kind: order.AfterTicket, Publisher: a, Ticket: 7})
	// B's own ticket: B knows its tickets itself, whatever the horizon.
	if err := s.RecordHorizon(ctx, b, 100); err != nil {
		t.Fatal(err)
	}
	u = setStatus(t, s, Ticket{Publisher: b, N: 2}, "ord_a", "assembling")
	check("v3 after B's own v2", u, order.After{Kind: order.AfterTicket, Publisher: b, Ticket: 1})
	// Another publisher's resolved ticket, no hold: published.
	u = setStatus(t, s, Ticket{Publisher: a, N: 8}, "ord_a", "delivering")
	check("v4 after B's resolved v3", u, order.After{Kind: order.AfterNothing})
	if err := s.RecordHorizon(ctx, a, 7); err != nil {
		t.Fatal(err)
	}
	u = setStatus(t, s, Ticket{Publisher: b, N: 3}, "ord_b", "paid")
	check("v2 after A's resolved v1", u, order.After{Kind: order.AfterNothing})
	// A horizon never goes back, also when recorded with acknowledgements.
	if err := s.RecordHorizon(ctx, a, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.AckEventsHorizon(ctx, []int64{u.EventSeq}, a, 5); err != nil {
		t.Fatal(err)
	}
	if n := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_acks WHERE $1 = ANY(seqs)`, u.EventSeq); n != 1 {
		t.Errorf("AckEventsHorizon recorded the acknowledgement %d times; want 1", n)
	}
	if h := pgtest.Int64(t, url, `SELECT horizon FROM outbox_publishers WHERE id = $1`, a); h != 7 {
		t.Errorf("horizon after recording 3 over 7: %d", h)
	}
	// Held: the sweeper, even with the ticket resolved.
	if err := s.HoldOrders(ctx, []string{"ord_b"}, []int64{u.EventSeq}); err != nil {
		t.Fatal(err)
	}
	u = setStatus(t, s, Ticket{Publisher: a, N: 9}, "ord_b", "assembling")
	check("v3 of a held order", u, order.After{Kind: order.AfterHeld})
	// Written with no fast path (the zero Ticket): the sweeper.
	pgtest.Exec(t, url, `DELETE FROM outbox_held`)
	s.WriteStatus(ctx, []*order.UpdateBatch{updates(time.Now(), "ord_b", "delivering")})
	u = setStatus(t, s, Ticket{Publisher: a, N: 10}, "ord_b", "delivered")
	check("v5 after a version with no fast path", u, order.After{Kind: order.AfterHeld})
	// Parked: the sweeper.
	writeOrders(t, s, "ord_c")
	pgtest.Exec(t, url, `UPDATE orders SET pub_id = NULL, pub_ticket = NULL WHERE id = 'ord_c'`)
	u = setStatus(t, s, Ticket{Publisher: a, N: 11}, "ord_c", "paid")
	check("v2 after a version written before migration 0007", u, order.After{Kind: order.AfterUnknown})
	pgtest.Exec(t, url, `INSERT INTO outbox_dead (order_id, version, seq, ce_type, ce_time, payload, enqueued_at, error, attempts)
VALUES ('ord_c', 2, 1, 'order.status_changed', now(), '\x7b7d', now(), 'test', 2)`)
	u = setStatus(t, s, Ticket{Publisher: b, N: 4}, "ord_c", "assembling")
	check("v3 of a parked order", u, order.After{Kind: order.AfterHeld})

	// Several changes of one order in one transaction: the first waits,
	// the others follow it.
	writeOrders(t, s, "ord_d")
	pgtest.Exec(t, url, `UPDATE orders SET pub_id = $1, pub_ticket = 99 WHERE id = 'ord_d'`, a)
	ub := updates(time.Now(), "ord_d", "paid", "ord_d", "assembling")
	s.WriteStatusFor(ctx, Ticket{Publisher: b, N: 5}, []*order.UpdateBatch{ub})
	check("first of two changes", ub.Updates[0], order.After{Kind: order.AfterTicket, Publisher: a, Ticket: 99})
	check("second of two changes", ub.Updates[1], order.After{Kind: order.AfterNothing})
	order.PutUpdateBatch(ub)
}

// The race the design turns on, interleaved by hand with explicit
// transactions: publisher A resolving a ticket by holding the order (hold,
// then horizon) against publisher B's status transaction of the next
// version. Whatever B's statement sees, it never sees the horizon without
// the hold, so it never takes the fast path for an order A left to the
// sweeper. Recording the horizon before the hold, as a counter-check, lets
// B through: the order of A's two commits is what makes it safe.
func TestHoldBeforeHorizonInterleaved(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	a, b := register(t, s), register(t, s)
	ob := order.GetBatch()
	ob.Orders = append(ob.Orders, testOrder("ord_x", 1), testOrder("ord_y", 2), testOrder("ord_z", 3))
	s.WriteOrdersFor(ctx, Ticket{Publisher: a, N: 1}, []*order.Batch{ob})
	seqX := ob.Orders[0].Result.EventSeq
	order.PutBatch(ob)

	hconn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer hconn.Close(ctx)

	// 1. A's hold is inserted but not committed: B sees neither it nor a
	// horizon that covers ticket 1, and waits for A.
	htx, err := hconn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := htx.Exec(ctx, holdOrdersSQL, []string{"ord_x"}, []int64{seqX}); err != nil {
		t.Fatal(err)
	}
	u := setStatus(t, s, Ticket{Publisher: b, N: 1}, "ord_x", "paid")
	if u.After.Kind != order.AfterTicket || u.After.Publisher != a || u.After.Ticket != 1 {
		t.Errorf("B during A's uncommitted hold: After %+v; want wait for %d/1", u.After, a)
	}
	// 2. The hold commits, the horizon not yet: held.
	if err := htx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	u = setStatus(t, s, Ticket{Publisher: b, N: 2}, "ord_x", "assembling")
	if u.After.Kind != order.AfterHeld {
		t.Errorf("B after A's hold committed: After %+v; want held", u.After)
	}

	// 3. B's status transaction locks ord_y first and is still open while
	// A holds ord_y and records its horizon: B's statement read before
	// both, so B waits for A's ticket (its publisher learns the rest from
	// PublisherHorizons, then BlockedOrders); it never reads the horizon
	// without the hold.
	btx, err := hconn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := btx.Exec(ctx, `SELECT 1 FROM orders WHERE id = 'ord_y' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	got := make(chan order.Update, 1)
	go func() {
		ub := updates(time.Now(), "ord_y", "paid")
		s.WriteStatusFor(context.Background(), Ticket{Publisher: b, N: 3}, []*order.UpdateBatch{ub})
		got <- ub.Updates[0]
		order.PutUpdateBatch(ub)
	}()
	waitLockWait(t, url, "ord_y")
	if err := s.HoldOrders(ctx, []string{"ord_y"}, []int64{0}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHorizon(ctx, a, 1); err != nil {
		t.Fatal(err)
	}
	if err := btx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	u = <-got
	if u.Outcome != order.UpdateApplied || (u.After.Kind != order.AfterTicket && u.After.Kind != order.AfterHeld) {
		t.Errorf("B whose lock waited across A's hold and horizon: outcome %d, After %+v; want wait or held", u.Outcome, u.After)
	}
	hs, err := s.PublisherHorizons(ctx, []int32{a, b, 999})
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := s.BlockedOrders(ctx, []string{"ord_x", "ord_y", "ord_z", "ord_x"})
	if err != nil {
		t.Fatal(err)
	}
	if hs[0] != 1 || hs[1] != 0 || hs[2] != -1 || len(blocked) != 2 || blocked[0] != "ord_x" || blocked[1] != "ord_y" {
		t.Errorf("PublisherHorizons %v, BlockedOrders %v; want [1 0 -1], [ord_x ord_y]", hs, blocked)
	}

	// 4. Counter-check on ord_z: A's ticket 2 covers it; had A recorded the
	// horizon before the hold, B would take the fast path in between.
	pgtest.Exec(t, url, `UPDATE orders SET pub_ticket = 2 WHERE id = 'ord_z'`)
	if err := s.RecordHorizon(ctx, a, 2); err != nil {
		t.Fatal(err)
	}
	u = setStatus(t, s, Ticket{Publisher: b, N: 4}, "ord_z", "paid")
	if u.After.Kind != order.AfterNothing {
		t.Errorf("counter-check: B after a horizon with no hold: After %+v; want nothing (fast path)", u.After)
	}
}

// waitLockWait waits until some backend waits for a row lock on orders.
func waitLockWait(t *testing.T, url, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pgtest.Int64(t, url, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM orders o%'`) > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no status transaction waits for the lock on %s", id)
}

// Holds: one row per order with the largest seq, 0 meaning the sequence's
// head, and a sweep releases the ones below its new watermark, leaving the
// others.
func TestHoldOrdersAndSweepRelease(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	seqs := writeN(t, s, 4)
	if err := s.HoldOrders(ctx, []string{"ord_000", "ord_001", "ord_001"}, []int64{seqs[0], seqs[1], seqs[0]}); err != nil {
		t.Fatal(err)
	}
	if err := s.HoldOrders(ctx, []string{"ord_001", "ord_003"}, []int64{seqs[0], 0}); err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, id := range []string{"ord_000", "ord_001", "ord_003"} {
		rows[id] = pgtest.Int64(t, url, `SELECT upto_seq FROM outbox_held WHERE order_id = $1`, id)
	}
	if rows["ord_000"] != seqs[0] || rows["ord_001"] != seqs[1] || rows["ord_003"] != seqs[3] {
		t.Errorf("holds %v; want ord_000 %d, ord_001 %d (never lowered), ord_003 %d (the head)", rows, seqs[0], seqs[1], seqs[3])
	}
	if n, err := s.HeldOrders(ctx); err != nil || n != 3 {
		t.Errorf("HeldOrders = %d, %v; want 3", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	n, _, err := s.SweepEvents(ctx, 0, 2, func([]order.Event) error { return nil })
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if left := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_held`); left != 1 {
		t.Errorf("holds after a sweep of the first two events: %d; want 1 (ord_003, up to the head)", left)
	}
	more := writeOrders(t, s, "ord_004")[0]
	if err := s.HoldOrders(ctx, []string{"ord_004"}, []int64{more}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SweepEvents(ctx, time.Hour, 10, func([]order.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if left := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_held`); left != 2 {
		t.Errorf("holds after a sweep that published nothing: %d; want 2", left)
	}
	if _, _, err := s.SweepEvents(ctx, 0, 10, func([]order.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if left := pgtest.Int64(t, url, `SELECT count(*) FROM outbox_held`); left != 0 {
		t.Errorf("holds after the sweeper published everything: %d; want 0", left)
	}
}

// A requeue holds the orders it puts back: nothing else keeps their later
// events off the fast paths once the parked rows are gone.
func TestRequeueDeadHolds(t *testing.T) {
	s, url, _ := newTestStore(t)
	ctx := context.Background()
	writeOrders(t, s, "ord_p")
	pgtest.Exec(t, url, `INSERT INTO outbox_dead (order_id, version, seq, ce_type, ce_time, payload, enqueued_at, error, attempts)
VALUES ('ord_p', 1, 1, 'order.created', now(), '\x7b7d', now(), 'test', 2)`)
	n, err := s.RequeueDead(ctx, true, nil)
	if err != nil || n != 1 {
		t.Fatalf("RequeueDead = %d, %v; want 1", n, err)
	}
	requeued := pgtest.Int64(t, url, `SELECT max(seq) FROM outbox_events WHERE order_id = 'ord_p'`)
	if held := pgtest.Int64(t, url, `SELECT coalesce(max(upto_seq), 0) FROM outbox_held WHERE order_id = 'ord_p'`); held < requeued {
		t.Errorf("ord_p held up to %d after its requeue to seq %d; want held at least that far", held, requeued)
	}
}

// A write whose earlier attempt committed without knowing it (the single
// statement's connection lost, then retried) finds its own orders stored
// under its own Ticket: they come back duplicates left to the sweeper, so
// that the engine holds them (nobody handed their event to a fast path).
// Stored under another ticket, or created by this call, they are not.
func TestWriteOrdersLeftToSweeper(t *testing.T) {
	for _, copyMin := range []int{0, 1} {
		t.Run(fmt.Sprintf("copyMinRows=%d", copyMin), func(t *testing.T) {
			testCopyMinRows = copyMin
			defer func() { testCopyMinRows = 0 }()
			s, _, _ := newTestStore(t)
			ctx := context.Background()
			a := register(t, s)
			write := func(tk Ticket, ids ...string) []order.Result {
				b := order.GetBatch()
				for _, id := range ids {
					b.Orders = append(b.Orders, testOrder(id, 42)) // one content per id: a repeat is a duplicate
				}
				s.WriteOrdersFor(ctx, tk, []*order.Batch{b})
				out := make([]order.Result, len(ids))
				for i := range b.Orders {
					out[i] = b.Orders[i].Result
				}
				order.PutBatch(b)
				return out
			}
			tk := Ticket{Publisher: a, N: 5}
			if r := write(tk, "ord_l1"); r[0].Outcome != order.OutcomeCreated || r[0].LeftToSweeper {
				t.Fatalf("first write: %+v", r[0])
			}
			if r := write(tk, "ord_l1"); r[0].Outcome != order.OutcomeDuplicate || !r[0].LeftToSweeper {
				t.Errorf("the same ticket again (a retried attempt): %+v; want a duplicate left to the sweeper", r[0])
			}
			if r := write(Ticket{Publisher: a, N: 6}, "ord_l1"); r[0].Outcome != order.OutcomeDuplicate || r[0].LeftToSweeper {
				t.Errorf("another ticket: %+v; want a plain duplicate", r[0])
			}
			if r := write(Ticket{}, "ord_l1"); r[0].Outcome != order.OutcomeDuplicate || r[0].LeftToSweeper {
				t.Errorf("no ticket: %+v; want a plain duplicate", r[0])
			}
			r := write(Ticket{Publisher: a, N: 7}, "ord_l2", "ord_l2")
			if r[0].Outcome != order.OutcomeCreated || r[1].Outcome != order.OutcomeDuplicate || r[1].LeftToSweeper {
				t.Errorf("an order twice in one write: %+v, %+v; want created, then a plain duplicate", r[0], r[1])
			}
		})
	}
}
