package store

import (
	"context"

	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/orderflow/orderflow/engine/order"
)

// lockOrdersSQL reads and locks the current state of every order a batch of
// status changes touches. ORDER BY id makes every status transaction lock
// rows in one order (the database collation's, the same for all of them), so
// two batches touching the same orders wait for each other instead of
// deadlocking.
//
// With each order it reads what the fast path needs to know about the
// event of its current version (doc.go, "Order across the fleet"): the
// Ticket it was written under, whether that ticket's publisher had resolved
// it (only for another publisher than $2, this transaction's), and whether
// the order is held or parked. No extra round trip: the subqueries are
// primary-key probes into small tables (outbox_held and outbox_dead are
// empty unless something is held or parked), and they read the statement's
// snapshot, so a horizon that covers the ticket comes with the hold its
// publisher committed before moving it.
const lockOrdersSQL = `SELECT o.id, o.status, o.version, o.pub_id, o.pub_ticket,
  CASE WHEN o.pub_id > 0 AND o.pub_id <> $2 THEN
    (SELECT p.horizon >= o.pub_ticket FROM outbox_publishers p WHERE p.id = o.pub_id) END,
  EXISTS (SELECT 1 FROM outbox_held h WHERE h.order_id = o.id)
    OR EXISTS (SELECT 1 FROM outbox_dead d WHERE d.order_id = o.id)
FROM orders o WHERE o.id = ANY($1) ORDER BY o.id FOR UPDATE OF o`

// applyStatusSQL writes each changed order's final state in one statement,
// with the transaction's Ticket ($5, $6).
const applyStatusSQL = `UPDATE orders AS o SET status = u.status, version = u.version, updated_at = u.at,
  pub_id = $5, pub_ticket = $6
FROM unnest($1::text[], $2::text[], $3::int4[], $4::timestamptz[]) AS u(id, status, version, at)
WHERE o.id = u.id`

// orderState is one order's state while a batch of changes is applied.
type orderState struct {
	found   bool
	changed bool
	status  order.Status
	version int32
	at      time.Time
	after   order.After // what the next applied change's event waits for
}

// statusState is the working memory of one WriteStatus call, pooled.
type statusState struct {
	ups     []*order.Update
	owner   []*order.UpdateBatch // owner[i] holds ups[i] (its arena receives the event)
	ids     []string
	states  map[string]*orderState
	slots   []orderState
	applied []*order.Update

	updIDs      []string
	updStatuses []string
	updVersions []int32
	updAts      []time.Time
	outbox      outboxSource
	events      []order.Event

	// The call's Ticket, passed by pointer (no boxing per statement), and
	// lockOrdersSQL's scan targets, reused.
	pubID, scPubID pgtype.Int4
	pubTicket      pgtype.Int8
	scStatus       pgtype.Text
	scVersion      pgtype.Int4
	scTicket       pgtype.Int8
	scResolved     pgtype.Bool
	scBlocked      pgtype.Bool
	scan           []any
}

var statusStatePool = sync.Pool{New: func() any {
	w := &statusState{states: make(map[string]*orderState)}
	w.outbox.init()
	w.scan = []any{nil, &w.scStatus, &w.scVersion, &w.scPubID, &w.scTicket, &w.scResolved, &w.scBlocked}
	return w
}}

func (w *statusState) reset() {
	clear(w.ups)
	w.ups = w.ups[:0]
	clear(w.owner)
	w.owner = w.owner[:0]
	clear(w.ids)
	w.ids = w.ids[:0]
	clear(w.states)
	w.slots = w.slots[:0]
	clear(w.applied)
	w.applied = w.applied[:0]
	clear(w.updIDs)
	w.updIDs = w.updIDs[:0]
	w.updStatuses = w.updStatuses[:0]
	w.updVersions = w.updVersions[:0]
	w.updAts = w.updAts[:0]
	w.outbox.reset(nil)
	clear(w.events)
	w.events = w.events[:0]
}

// WriteStatus applies the status changes of batches in one transaction
// (group commit) and sets every update's Outcome:
//
//   - UpdateApplied: committed with a new version, updated_at and one
//     order.status_changed outbox row (Event holds its value);
//   - UpdateNoop: the order already had that status (no new version);
//   - UpdateNotFound, UpdateInvalid (the status machine forbids it);
//   - UpdateFailed: not committed, or not known to be.
//
// Several changes to one order are applied in arrival order (batches in the
// order given, each batch's updates in order), each checked against the state
// the previous one left. The transaction locks the orders' rows (sorted),
// decides every change in memory, writes each changed order once and copies
// one outbox row per new version: one round trip per statement, whatever the
// batch size. Retryable errors are retried like WriteOrders'. Safe for
// concurrent use; retains nothing of the batches after it returns.
//
// WriteStatus writes with no fast path (the zero Ticket): for tools and
// tests that publish nothing. The engine uses WriteStatusFor.
func (s *Store) WriteStatus(ctx context.Context, batches []*order.UpdateBatch) {
	s.WriteStatusFor(ctx, Ticket{}, batches)
}

// WriteStatusFor is WriteStatus for the fast path named by tk: the changed
// orders' rows record it, and each applied update's After says what its
// event must wait for before the fast path may publish it (doc.go, "Order
// across the fleet").
func (s *Store) WriteStatusFor(ctx context.Context, tk Ticket, batches []*order.UpdateBatch) {
	start := time.Now()
	w := statusStatePool.Get().(*statusState)
	defer func() {
		if cap(w.ups) <= maxPooledOrders {
			w.reset()
			statusStatePool.Put(w)
		}
	}()
	w.pubID = pgtype.Int4{Int32: tk.Publisher, Valid: true}
	w.pubTicket = pgtype.Int8{Int64: tk.N, Valid: true}
	for _, b := range batches {
		for i := range b.Updates {
			w.ups = append(w.ups, &b.Updates[i])
			w.owner = append(w.owner, b)
		}
	}
	if len(w.ups) == 0 {
		return
	}
	for _, u := range w.ups {
		if _, ok := w.states[u.OrderID]; !ok {
			w.states[u.OrderID] = nil
			w.ids = append(w.ids, u.OrderID)
		}
	}
	slices.SortFunc(w.ids, strings.Compare)
	err := s.statusRetrying(ctx, w)
	if err != nil {
		s.log.Warn("status batch not committed", "updates", len(w.ups), "err", err)
		for _, u := range w.ups {
			*u = order.Update{OrderID: u.OrderID, Status: u.Status, ReceivedAt: u.ReceivedAt,
				TraceParent: u.TraceParent, TraceState: u.TraceState, Outcome: order.UpdateFailed, Err: err}
		}
	}
	s.status.commitSeconds.Observe(time.Since(start).Seconds())
}

func (s *Store) statusRetrying(ctx context.Context, w *statusState) error {
	// Outcomes are recomputed by every attempt: nothing to reset.
	return s.retrying(ctx, &s.status, func(ctx context.Context) error { return s.statusOnce(ctx, w) }, func() {})
}

// statusOnce runs one attempt: lock, decide, write, copy events, commit.
func (s *Store) statusOnce(parent context.Context, w *statusState) error {
	return s.inTx(parent, "lock orders", func(ctx context.Context, tx pgx.Tx, step *string) error {
		return w.apply(ctx, tx, step)
	})
}

// apply is the body of one status transaction attempt.
func (w *statusState) apply(ctx context.Context, tx pgx.Tx, step *string) error {
	// Fresh state for this attempt.
	if cap(w.slots) < len(w.ids) {
		w.slots = make([]orderState, len(w.ids))
	}
	w.slots = w.slots[:len(w.ids)]
	clear(w.slots)
	for i, id := range w.ids {
		w.states[id] = &w.slots[i]
	}
	rows, err := tx.Query(ctx, lockOrdersSQL, w.ids, &w.pubID)
	if err != nil {
		return err
	}
	for rows.Next() {
		raw := rows.RawValues()
		st := w.states[string(raw[0])] // map lookup by []byte: no allocation
		if st == nil {
			rows.Close()
			return fmt.Errorf("BUG: locked an order that was not asked for")
		}
		if err := rows.Scan(w.scan...); err != nil {
			rows.Close()
			return err
		}
		ps, ok := order.ParseStatus(w.scStatus.String)
		if !ok {
			rows.Close()
			return fmt.Errorf("order has unknown status %q", w.scStatus.String)
		}
		st.found, st.status, st.version = true, ps, w.scVersion.Int32
		st.after = w.after()
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return err
	}

	// Decide every change in arrival order.
	w.applied = w.applied[:0]
	for i, u := range w.ups {
		st := w.states[u.OrderID]
		u.Event, u.EventSeq, u.Err, u.After = nil, 0, nil, order.After{}
		switch {
		case !st.found:
			u.Outcome, u.Previous, u.Version = order.UpdateNotFound, 0, 0
		case u.Status == st.status:
			u.Outcome, u.Previous, u.Version = order.UpdateNoop, st.status, st.version
		case st.status.CanTransition(u.Status):
			u.Outcome, u.Previous, u.After = order.UpdateApplied, st.status, st.after
			if st.after.Kind != order.AfterHeld {
				// A later change in this transaction follows this one
				// through the same Publish call.
				st.after = order.After{Kind: order.AfterNothing}
			}
			st.status = u.Status
			st.version++
			st.at = u.ReceivedAt
			st.changed = true
			u.Version = st.version
			arena := w.owner[i].Arena()
			u.Event = arena.Append(func(dst []byte) []byte {
				return order.AppendStatusChangedEvent(dst, u.OrderID, u.Status, u.Previous, u.Version, u.ReceivedAt)
			})
			w.applied = append(w.applied, u)
		default:
			u.Outcome, u.Previous, u.Version = order.UpdateInvalid, st.status, st.version
		}
	}
	if len(w.applied) > 0 {
		*step = "update orders"
		w.updIDs, w.updStatuses, w.updVersions, w.updAts = w.updIDs[:0], w.updStatuses[:0], w.updVersions[:0], w.updAts[:0]
		for i, id := range w.ids {
			st := &w.slots[i]
			if !st.changed {
				continue
			}
			w.updIDs = append(w.updIDs, id)
			w.updStatuses = append(w.updStatuses, st.status.String())
			w.updVersions = append(w.updVersions, st.version)
			w.updAts = append(w.updAts, st.at)
		}
		if _, err = tx.Exec(ctx, applyStatusSQL, w.updIDs, w.updStatuses, w.updVersions, w.updAts, &w.pubID, &w.pubTicket); err != nil {
			return err
		}
		*step = "copy outbox"
		w.events = changedEvents(w.events[:0], w.applied)
		w.outbox.reset(w.events)
		if err = copyOutbox(ctx, tx, &w.outbox); err != nil {
			return err
		}
		for i, u := range w.applied {
			u.EventSeq = w.events[i].Seq
		}
	}
	return nil
}

// after classifies the row lockOrdersSQL just scanned: what the event of
// the order's next version must wait for.
func (w *statusState) after() order.After {
	switch {
	case w.scBlocked.Bool:
		return order.After{Kind: order.AfterHeld}
	case !w.scPubID.Valid:
		// Written before migration 0007, by the rules of the time.
		return order.After{Kind: order.AfterUnknown}
	case w.scPubID.Int32 == 0:
		// Written with no fast path: its event waits for the sweeper.
		return order.After{Kind: order.AfterHeld}
	case w.scResolved.Valid && w.scResolved.Bool:
		// Acknowledged: its publisher has resolved it with no hold.
		return order.After{Kind: order.AfterNothing}
	}
	// This transaction's own publisher (it knows its tickets), or another
	// one that had not resolved the ticket yet.
	return order.After{Kind: order.AfterTicket, Publisher: w.scPubID.Int32, Ticket: w.scTicket.Int64}
}

// changedEvents appends the order.status_changed outbox event of each
// applied change.
func changedEvents(dst []order.Event, ups []*order.Update) []order.Event {
	for _, u := range ups {
		dst = append(dst, u.ChangedEvent())
	}
	return dst
}
