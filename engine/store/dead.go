package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/order"
)

// behindErr is the error recorded for an event parked because an earlier
// version of its order is parked.
const behindErr = "waits behind a parked earlier version of its order"

// parkEventsSQL copies events, by seq, into outbox_dead with their error
// and attempts. The caller records their seqs as acknowledged in the same
// transaction, so the watermark passes them.
const parkEventsSQL = `INSERT INTO outbox_dead (order_id, version, seq, ce_type, ce_time, payload, enqueued_at, error, attempts, traceparent, tracestate)
SELECT e.order_id, e.version, e.seq, e.ce_type, e.ce_time, e.payload, e.enqueued_at, d.err, d.attempts, e.traceparent, e.tracestate
FROM unnest($1::int8[], $2::text[], $3::int4[]) AS d(seq, err, attempts)
JOIN outbox_events e ON e.seq = d.seq
ON CONFLICT (order_id, version) DO NOTHING`

func parkEvents(ctx context.Context, tx pgx.Tx, parked []order.ParkedEvent) error {
	if len(parked) == 0 {
		return nil
	}
	seqs := make([]int64, len(parked))
	errs := make([]string, len(parked))
	attempts := make([]int32, len(parked))
	for i, p := range parked {
		seqs[i], errs[i], attempts[i] = p.Seq, p.Err, p.Attempts
	}
	if _, err := tx.Exec(ctx, parkEventsSQL, seqs, errs, attempts); err != nil {
		return fmt.Errorf("park %d outbox events: %w", len(parked), err)
	}
	return nil
}

// DeadEvent is a parked event as operators see it.
type DeadEvent struct {
	OrderID  string
	Version  int32
	Type     string
	Bytes    int // payload size
	Err      string
	Attempts int32
	ParkedAt time.Time
}

// DeadEvents lists the parked events, by order id and version.
func (s *Store) DeadEvents(ctx context.Context) ([]DeadEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT order_id, version, ce_type, length(payload), error, attempts, parked_at
FROM outbox_dead ORDER BY order_id, version`)
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadEvent, error) {
		var d DeadEvent
		err := r.Scan(&d.OrderID, &d.Version, &d.Type, &d.Bytes, &d.Err, &d.Attempts, &d.ParkedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	return evs, nil
}

// DeadOrders returns the number of parked events and the ids of their
// orders (whose later events the publisher keeps off its fast path).
func (s *Store) DeadOrders(ctx context.Context) (int64, []string, error) {
	var n int64
	var ids []string
	if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(array_agg(DISTINCT order_id), '{}') FROM outbox_dead`).Scan(&n, &ids); err != nil {
		return 0, nil, fmt.Errorf("count parked events: %w", err)
	}
	return n, ids, nil
}

// DeadRef names a parked event to requeue: an order and the first version
// to put back (with every later parked version of that order).
type DeadRef struct {
	OrderID string
	Version int32
}

// requeueSQL moves the parked events of the orders in $1 (each from version
// $2 on) back into outbox_events with fresh seqs, in (order, version)
// order, and deletes them from outbox_dead. Events of those orders still
// unpublished in outbox_events (written after the parking, not swept yet)
// are first parked behind, so that they get their seqs after the requeued
// ones.
const requeueSQL = `WITH pick AS (
  DELETE FROM outbox_dead d USING unnest($1::text[], $2::int4[]) AS r(id, v)
  WHERE d.order_id = r.id AND d.version >= r.v
  RETURNING d.*),
numbered AS (
  SELECT nextval('outbox_seq') AS s, p.* FROM (SELECT * FROM pick ORDER BY order_id, version) p)
INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at, traceparent, tracestate)
SELECT n.s, (n.s / r.gen_rows) % r.slots, n.order_id, n.version, n.ce_type, n.ce_time, n.payload, n.enqueued_at, n.traceparent, n.tracestate
FROM numbered n, outbox_ring r`

// pendingOfSQL lists the seqs of unpublished events (above the watermark,
// not acknowledged) of the orders in $1.
const pendingOfSQL = `WITH acked AS MATERIALIZED (
  SELECT s FROM outbox_acks a, unnest(a.seqs) s
  WHERE a.max_seq >= (SELECT low_seq FROM outbox_ring) AND s >= (SELECT low_seq FROM outbox_ring))
SELECT e.seq FROM outbox_events e
WHERE e.seq >= (SELECT low_seq FROM outbox_ring) AND e.order_id = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM acked k WHERE k.s = e.seq)
ORDER BY e.seq`

// RequeueDead puts parked events back in the outbox for the sweeper: refs
// name an order and the first version to requeue (later parked versions of
// that order follow it); all requeues every parked event. It returns how
// many it requeued. It waits for the running sweep (the sweep lock) and
// locks the orders' rows, so that neither a sweep nor a status change of
// those orders interleaves with it, and holds the orders (outbox_held) until
// the sweeper has published what it requeued.
func (s *Store) RequeueDead(ctx context.Context, all bool, refs []DeadRef) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, sweepLockKey); err != nil {
			return err
		}
		var ids []string
		var vers []int32
		if all {
			if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(order_id), '{}'), coalesce(array_agg(min), '{}')
FROM (SELECT order_id, min(version) FROM outbox_dead GROUP BY 1) m`).Scan(&ids, &vers); err != nil {
				return err
			}
		} else {
			for _, r := range refs {
				ids, vers = append(ids, r.OrderID), append(vers, r.Version)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, pendingOfSQL, ids)
		if err != nil {
			return err
		}
		pending, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			parked := make([]order.ParkedEvent, len(pending))
			for i, seq := range pending {
				parked[i] = order.ParkedEvent{Seq: seq, Err: behindErr}
			}
			if err := parkEvents(ctx, tx, parked); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, ackEventsSQL, pending); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, requeueSQL, ids, vers)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		// Once they leave outbox_dead nothing else keeps the orders' later
		// events off the fast paths: hold them until the sweeper has
		// published the requeued events (seq 0: up to the sequence's
		// head, past every seq just taken).
		if _, err := tx.Exec(ctx, holdOrdersSQL, ids, make([]int64, len(ids))); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("requeue parked events: %w", err)
	}
	return n, nil
}
