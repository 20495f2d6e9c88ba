package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

// ackEventsSQL records acknowledged seqs: one outbox_acks row per slot and
// per 200 seqs (small enough to stay inline, uncompressed), in the slot the
// seqs' events live in, so that truncating a slot frees its acks too.
const ackEventsSQL = `INSERT INTO outbox_acks (slot, min_seq, max_seq, seqs)
SELECT (a.s / r.gen_rows) % r.slots, min(a.s), max(a.s), array_agg(a.s ORDER BY a.s)
FROM unnest($1::int8[]) WITH ORDINALITY AS a(s, i), outbox_ring r
GROUP BY 1, (a.i - 1) / 200`

// AckEvents records that the broker acknowledged the events with these seqs
// (one INSERT; no row is updated or deleted). Seqs already acknowledged, or
// of events gone with their slot, are harmless. Safe for concurrent use.
func (s *Store) AckEvents(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, ackEventsSQL, seqs); err != nil {
		return fmt.Errorf("record %d outbox acknowledgements: %w", len(seqs), err)
	}
	return nil
}

// ackHorizonSQL is ackEventsSQL that also moves publisher $2's horizon to
// $3 (RecordHorizon), in the same statement: no round trip of its own.
const ackHorizonSQL = `WITH h AS (
  UPDATE outbox_publishers SET horizon = greatest(horizon, $3), seen_at = now() WHERE id = $2)
` + ackEventsSQL

// AckEventsHorizon is AckEvents and RecordHorizon(ctx, pub, horizon) in one
// statement.
func (s *Store) AckEventsHorizon(ctx context.Context, seqs []int64, pub int32, horizon int64) error {
	if len(seqs) == 0 {
		return s.RecordHorizon(ctx, pub, horizon)
	}
	if _, err := s.pool.Exec(ctx, ackHorizonSQL, seqs, pub, horizon); err != nil {
		return fmt.Errorf("record %d outbox acknowledgements and horizon %d: %w", len(seqs), horizon, err)
	}
	return nil
}

// sweepLockKey is the advisory lock that serialises sweeps and slot
// truncations ("orderflow outbox sweep" in ASCII, truncated to 64 bits).
const sweepLockKey int64 = 0x6f75_7462_6f78_7377

// ringStateSQL reads the relay's progress and whether every writer
// transaction that could hold a seq up to pend_seq has ended (each holds a
// lock on outbox_seq from its nextval until it ends; see settle).
const ringStateSQL = `SELECT low_seq, settled_seq, settled_at, pend_seq, pend_at, now(),
  NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'virtualxid' AND l.virtualxid = ANY (r.pend_vxids))
FROM outbox_ring r`

// seqHeadSQL reads the last seq handed out, and when.
const seqHeadSQL = `SELECT CASE WHEN is_called THEN last_value ELSE 0 END, clock_timestamp() FROM outbox_seq`

// seqHoldersSQL lists the transactions (other than this one) holding a lock
// on outbox_seq in this database: the writers that may still commit a seq
// taken so far.
const seqHoldersSQL = `SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}')
FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = 'outbox_seq'::regclass
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()`

// sweepEventsSQL returns the unacknowledged events with seq in [$1, $2] in
// seq order, with whether each is older than $3 µs and whether its order
// has a parked event (one primary-key probe into outbox_dead, which is
// empty unless something was parked). The acknowledgements are
// read for that range only, so the cost follows the range, not history.
const sweepEventsSQL = `WITH acked AS MATERIALIZED (
  SELECT s FROM outbox_acks a, unnest(a.seqs) s
  WHERE a.max_seq >= $1 AND a.min_seq <= $2 AND s BETWEEN $1 AND $2)
SELECT e.seq, e.order_id, e.version, e.ce_type, e.ce_time, e.payload,
  e.enqueued_at < now() - $3::bigint * interval '1 microsecond',
  EXISTS (SELECT 1 FROM outbox_dead d WHERE d.order_id = e.order_id),
  e.traceparent, e.tracestate
FROM outbox_events e
WHERE e.seq BETWEEN $1 AND $2 AND NOT EXISTS (SELECT 1 FROM acked k WHERE k.s = e.seq)
ORDER BY e.seq
LIMIT $4`

// SweepEvents hands the oldest unpublished events to fn, in seq order
// (which is version order within each order), in one transaction: at most
// limit of them, and only a prefix of events enqueued more than olderThan
// ago: it stops at the first younger one, which the fast path may still be
// publishing. If fn returns nil, the events are recorded as acknowledged
// and the ring's low watermark moves past them; otherwise the transaction
// rolls back and fn's error is returned. fn is not called when nothing
// qualifies.
//
// fn may instead park events (refused by the broker for good): its error
// then has a method ParkedEvents() []order.ParkedEvent, the events it lists
// move to outbox_dead, every other one counts as published, and the sweep
// commits. Events of an order that has a parked event are not handed to fn:
// they are parked behind it (see doc.go).
//
// A sweep also releases the held orders (outbox_held) whose events up to
// their hold are all below the new watermark.
//
// It returns the number of events fn published (0 when fn failed) and,
// when the sweep reached the end of what it may publish, a time before
// which every committed event is published or acknowledged ("caught up
// before"); the zero time when the page was full and another sweep should
// follow at once.
//
// Only one sweep runs at a time across all instances (a transaction-level
// advisory lock), so each order's events are published in version order; a
// sweep that finds another one running returns at once, without calling fn,
// with an error whose SweepBusy method reports true (not to be taken for a
// caught-up outbox).
//
// A sweep only considers seqs that are settled: every writer transaction
// that took a seq up to there has ended. It learns that by noting, one pass,
// the last seq handed out and the transactions holding a lock on the
// sequence, and checking, at a later pass, that they are gone. A seq taken
// by a transaction still running is never skipped, and unrelated long
// transactions never hold the sweep back.
//
// The events' strings and payloads are valid only during fn. fn runs while
// a connection is held: keep it bounded (ctx). Safe for concurrent use.
func (s *Store) SweepEvents(ctx context.Context, olderThan time.Duration, limit int, fn func(events []order.Event) error) (int, time.Time, error) {
	var (
		published int
		before    time.Time
		arena     bytesutil.Arena
		fnErr     error
		busy      bool
	)
	if limit <= 0 {
		return 0, time.Time{}, nil
	}
	err := pgx.BeginFunc(ctx, s.sweep, func(tx pgx.Tx) error {
		published, before = 0, time.Time{}
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLockKey).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			busy = true // another sweep holds the lock; try again next interval
			return nil
		}
		low, high, settledAt, now, err := settle(ctx, tx)
		if err != nil {
			return err
		}
		events, behind, next, done, err := readSweepPage(ctx, tx, &arena, low, high, olderThan, limit)
		if err != nil {
			return err
		}
		var parked []order.ParkedEvent
		if len(events) > 0 {
			if fnErr = fn(events); fnErr != nil {
				var pe interface{ ParkedEvents() []order.ParkedEvent }
				if !errors.As(fnErr, &pe) {
					return fnErr
				}
				parked, fnErr = pe.ParkedEvents(), nil
			}
		}
		for _, seq := range behind {
			parked = append(parked, order.ParkedEvent{Seq: seq, Err: behindErr})
		}
		if err := parkEvents(ctx, tx, parked); err != nil {
			return err
		}
		if len(events)+len(behind) > 0 {
			seqs := make([]int64, 0, len(events)+len(behind))
			for _, e := range events {
				seqs = append(seqs, e.Seq)
			}
			seqs = append(seqs, behind...)
			if _, err := tx.Exec(ctx, ackEventsSQL, seqs); err != nil {
				return err
			}
		}
		if next > low {
			if _, err := tx.Exec(ctx, `UPDATE outbox_ring SET low_seq = $1`, next); err != nil {
				return err
			}
			low = next
		}
		// Every event below the watermark is published or parked: the
		// holds up to there are done.
		if _, err := tx.Exec(ctx, releaseHeldSQL, low); err != nil {
			return err
		}
		published = len(events) + len(behind) - len(parked)
		if done {
			before = now.Add(-olderThan)
			if settledAt.Before(before) {
				before = settledAt
			}
		}
		return nil
	})
	if fnErr != nil {
		return 0, time.Time{}, fnErr
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sweep outbox: %w", err)
	}
	if busy {
		return 0, time.Time{}, errSweepBusy
	}
	return published, before, nil
}

// settle advances the ring's settled horizon if the writers it waited for
// have ended, and notes the next candidate. It returns the range of seqs a
// sweep may consider, [low, high], the time before which every committed
// event has a seq ≤ high, and the database's now(). Call it under the sweep
// lock.
func settle(ctx context.Context, tx pgx.Tx) (low, high int64, settledAt, now time.Time, err error) {
	var (
		pendSeq int64
		pendAt  time.Time
		ended   bool
	)
	if err = tx.QueryRow(ctx, ringStateSQL).Scan(&low, &high, &settledAt, &pendSeq, &pendAt, &now, &ended); err != nil {
		return 0, 0, time.Time{}, time.Time{}, fmt.Errorf("read outbox ring: %w", err)
	}
	if !ended {
		return low, high, settledAt, now, nil
	}
	high, settledAt = pendSeq, pendAt
	// The head first, then its holders: a writer that took a seq up to the
	// head took its lock on the sequence before, so it is either listed or
	// already ended.
	var head int64
	var headAt time.Time
	if err = tx.QueryRow(ctx, seqHeadSQL).Scan(&head, &headAt); err != nil {
		return 0, 0, time.Time{}, time.Time{}, fmt.Errorf("read outbox seq: %w", err)
	}
	var holders []string
	if err = tx.QueryRow(ctx, seqHoldersSQL).Scan(&holders); err != nil {
		return 0, 0, time.Time{}, time.Time{}, fmt.Errorf("list outbox writers: %w", err)
	}
	if len(holders) == 0 {
		// No writer is between its nextval and its end: the head is settled
		// already (an idle or lightly loaded outbox needs no second pass).
		high, settledAt = head, headAt
	}
	if _, err = tx.Exec(ctx, `UPDATE outbox_ring SET settled_seq = $1, settled_at = $2, pend_seq = $3, pend_at = $4, pend_vxids = $5`,
		high, settledAt, head, headAt, holders); err != nil {
		return 0, 0, time.Time{}, time.Time{}, fmt.Errorf("update outbox ring: %w", err)
	}
	return low, high, settledAt, now, nil
}

// sweepWindowPages sizes the seq windows a sweep page is read in: the
// first covers sweepWindowPages×limit seqs, each further one twice the one
// before, up to sweepWindowMaxPages×limit. A page read over the whole
// settled range at once materialised every acknowledgement in it; while a
// backlog holds the watermark down and new orders keep coming, that is
// every new order's acknowledgement since the backlog began, once per page:
// the drain slowed as it went (1,500 events/s after a few minutes of intake
// at half the maximum, BenchmarkBacklogDrain) and its PostgreSQL CPU was
// taken from the writers. A window bounds a page's cost by the window, not
// by how far the range reaches; the doubling crosses a long run of events
// the fast path already published in a few reads.
const (
	sweepWindowPages    = 2
	sweepWindowMaxPages = 64
)

// readSweepPage reads the page of a sweep over [low, high]: the events to
// publish (copied into arena), the seqs of the events whose order has a
// parked event (they are parked behind it, not published), the new low
// watermark, and whether the sweep reached the end (a younger event, or the
// end of the range). It reads the range in windows (sweepWindowPages) until
// the page is full or the range ends.
func readSweepPage(ctx context.Context, tx pgx.Tx, arena *bytesutil.Arena, low, high int64, olderThan time.Duration, limit int) (events []order.Event, behind []int64, next int64, done bool, err error) {
	next = low
	window := int64(limit) * sweepWindowPages
	for lo := low; lo <= high; {
		hi := high
		if window <= high-lo {
			hi = lo + window - 1
		}
		want := limit - len(events) - len(behind)
		var read int
		var cut bool
		events, behind, read, next, cut, err = readSweepWindow(ctx, tx, arena, events, behind, lo, hi, olderThan, want)
		switch {
		case err != nil:
			return nil, nil, 0, false, err
		case cut:
			return events, behind, next, true, nil
		case read == want:
			return events, behind, next, false, nil
		}
		lo = hi + 1
		if window < int64(limit)*sweepWindowMaxPages {
			window *= 2
		}
	}
	return events, behind, max(next, high+1), true, nil
}

// readSweepWindow appends to events and behind the unacknowledged events
// with seq in [lo, hi], at most limit of them (see readSweepPage), and
// returns how many it read, the watermark past them and whether it stopped
// at an event younger than olderThan (cut; next is then that event's seq).
func readSweepWindow(ctx context.Context, tx pgx.Tx, arena *bytesutil.Arena, events []order.Event, behind []int64, lo, hi int64, olderThan time.Duration, limit int) (_ []order.Event, _ []int64, read int, next int64, cut bool, err error) {
	rows, err := tx.Query(ctx, sweepEventsSQL, lo, hi, olderThan.Microseconds(), limit)
	if err != nil {
		return nil, nil, 0, 0, false, err
	}
	defer rows.Close()
	var (
		ev   order.Event
		old  bool
		wait bool
	)
	for rows.Next() {
		read++
		if err := rows.Scan(&ev.Seq, nil, &ev.Version, nil, &ev.Time, nil, &old, &wait, nil, nil); err != nil {
			return nil, nil, 0, 0, false, err
		}
		if !old {
			// The fast path may still be on it: stop here, and come back
			// to it once it is older (or acknowledged).
			next, cut = ev.Seq, true
			break
		}
		next = ev.Seq + 1
		if wait {
			behind = append(behind, ev.Seq) // parked behind its order's parked event
			continue
		}
		raw := rows.RawValues()
		ev.OrderID = arena.CopyString(raw[1])
		ev.Type = arena.CopyString(raw[3])
		ev.Payload = arena.Copy(raw[5])
		// The trace context as the writer stored it (NULL: none). A value
		// that is not a traceparent (written by hand) is left out.
		ev.TraceParent = order.TraceParent{}
		if len(raw[8]) == order.TraceParentLen {
			if p, ok := order.ParseTraceParent(raw[8]); ok {
				ev.TraceParent = p
			}
		}
		ev.TraceState = ""
		if ev.TraceParent.Valid() && len(raw[9]) <= order.MaxTraceStateLen {
			ev.TraceState = arena.CopyString(raw[9])
		}
		events = append(events, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, 0, 0, false, err
	}
	if !cut && read < limit {
		next = hi + 1
	}
	return events, behind, read, next, cut, nil
}

// errSweepBusy is SweepEvents' answer when another sweep holds the lock: it
// swept nothing, which must not be read as "the outbox is caught up" (the
// publisher lets an order's later events take the fast path again once a
// sweep has caught up; a busy sweep proves nothing). Callers recognise it by
// behaviour: it has a SweepBusy method that reports true.
var errSweepBusy error = sweepBusyError{}

type sweepBusyError struct{}

func (sweepBusyError) Error() string   { return "another outbox sweep is running" }
func (sweepBusyError) SweepBusy() bool { return true }

// outboxStatsSQL reads the backlog without reading the backlog: it is the
// seqs handed out above the low watermark (head - low_seq + 1) less the
// distinct ones acknowledged there, and the oldest age is the first
// unacknowledged event, found by walking each partition's primary key
// from the first seq at or above the watermark that is not acknowledged
// (gap: computed from the acknowledgements alone), with a hashed NOT IN
// against them, LIMIT 1. (A NOT EXISTS against the CTE there was planned
// as a CTE scan per row walked: quadratic in the acknowledgements above
// the watermark, and the soak's PostgreSQL CPU per order rose by ~70%.)
// Its cost follows the
// acknowledgements above the watermark (the events the fast path published
// past the oldest unpublished one), never the unpublished events nor
// history: a backlog of a million events left by a Kafka outage costs what
// an empty one does, so the relay's gauge refresh does not slow the drain.
//
// What it counts beyond committed events: seqs of writer transactions still
// running (they commit in a moment) and seqs of transactions that rolled
// back (a retried or bisected group commit), until the relay passes them
// (the next sweep after they settle). So it can read a little high for one
// sweep interval, never low; 0 means nothing is left to publish.
const outboxStatsSQL = `WITH r AS (
  SELECT low_seq, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM outbox_seq) AS head FROM outbox_ring),
acked AS MATERIALIZED (
  SELECT DISTINCT s FROM r, outbox_acks a, unnest(a.seqs) s
  WHERE a.max_seq >= r.low_seq AND a.min_seq <= r.head AND s BETWEEN r.low_seq AND r.head),
gap AS (
  SELECT min(x.c) AS c FROM (SELECT low_seq AS c FROM r UNION ALL SELECT s + 1 FROM acked) x
  WHERE x.c NOT IN (SELECT s FROM acked))
SELECT greatest(r.head - r.low_seq + 1 - (SELECT count(*) FROM acked), 0),
  coalesce(extract(epoch FROM now() - (
    SELECT e.enqueued_at FROM outbox_events e
    WHERE e.seq >= (SELECT c FROM gap) AND e.seq NOT IN (SELECT s FROM acked)
    ORDER BY e.seq LIMIT 1))::float8, 0)
FROM r`

// OutboxStats returns the number of events not yet acknowledged by the
// broker (an upper bound that is exact once in-flight and rolled-back
// writes have settled; see outboxStatsSQL) and the age of the oldest
// unacknowledged event (PostgreSQL's clock; 0 when there is none). Its cost
// does not grow with the backlog or with history. Safe for concurrent use.
func (s *Store) OutboxStats(ctx context.Context) (backlog int64, oldestAge time.Duration, err error) {
	var age float64
	if err := s.pool.QueryRow(ctx, outboxStatsSQL).Scan(&backlog, &age); err != nil {
		return 0, 0, fmt.Errorf("outbox stats: %w", err)
	}
	return backlog, time.Duration(age * float64(time.Second)), nil
}

// ringShapeSQL reads what ReclaimOutbox needs to pick slots.
const ringShapeSQL = `SELECT r.slots, r.gen_rows, r.low_seq,
  CASE WHEN q.is_called THEN q.last_value ELSE 0 END
FROM outbox_ring r, outbox_seq q`

// reclaimLockTimeout bounds how long a truncation waits for a slot's
// partitions: past it, it gives up and the next pass tries again, so that
// nobody queues behind its lock for long.
const reclaimLockTimeout = "200ms"

// ReclaimOutbox truncates every ring slot whose events are all published
// (each one's seq below the low watermark), with its acknowledgements, and
// returns how many it truncated. It skips the slots being written (those of
// the newest seq and of the low watermark) and any slot it cannot lock
// within 200ms. Per slot, one transaction: lock its two partitions ACCESS
// EXCLUSIVE (which waits for the writers still inserting into it and keeps
// new ones out), check again, TRUNCATE. A writer that arrives meanwhile
// waits for the lock and then inserts into the emptied partition; nothing it
// wrote is lost. Runs under the sweep lock (returns 0 if a sweep holds it).
// Safe for concurrent use.
func (s *Store) ReclaimOutbox(ctx context.Context) (int, error) {
	var slots int32
	var genRows, low, head int64
	if err := s.sweep.QueryRow(ctx, ringShapeSQL).Scan(&slots, &genRows, &low, &head); err != nil {
		return 0, fmt.Errorf("read outbox ring: %w", err)
	}
	truncated := 0
	for slot := range slots {
		if int64(slot) == (head/genRows)%int64(slots) || int64(slot) == (low/genRows)%int64(slots) {
			continue
		}
		done, err := s.reclaimSlot(ctx, slot)
		if err != nil {
			return truncated, err
		}
		if done {
			truncated++
		}
	}
	return truncated, nil
}

// reclaimSlot truncates one slot if every event in it is published.
func (s *Store) reclaimSlot(ctx context.Context, slot int32) (bool, error) {
	events := pgx.Identifier{fmt.Sprintf("outbox_events_%d", slot)}.Sanitize()
	acks := pgx.Identifier{fmt.Sprintf("outbox_acks_%d", slot)}.Sanitize()
	// Cheap look first, without locks: most slots are empty or busy.
	var pending, hasRows bool
	q := `SELECT coalesce((SELECT max(seq) FROM ` + events + `) >= (SELECT low_seq FROM outbox_ring), false),
  EXISTS (SELECT 1 FROM ` + events + `) OR EXISTS (SELECT 1 FROM ` + acks + `)`
	if err := s.sweep.QueryRow(ctx, q).Scan(&pending, &hasRows); err != nil {
		return false, fmt.Errorf("look at outbox slot %d: %w", slot, err)
	}
	if pending || !hasRows {
		return false, nil
	}
	truncated := false
	err := pgx.BeginFunc(ctx, s.sweep, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLockKey).Scan(&mine); err != nil || !mine {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+reclaimLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+events+", "+acks+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		// A fresh snapshot, taken after every writer of the slot ended.
		if err := tx.QueryRow(ctx, q).Scan(&pending, &hasRows); err != nil {
			return err
		}
		if pending {
			return nil
		}
		if _, err := tx.Exec(ctx, "TRUNCATE "+events+", "+acks); err != nil {
			return err
		}
		truncated = true
		return nil
	})
	if err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "55P03" {
			return false, nil // lock_timeout: busy, next pass
		}
		return false, fmt.Errorf("truncate outbox slot %d: %w", slot, err)
	}
	return truncated, nil
}
