package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

const deleteEventsSQL = `DELETE FROM outbox o USING unnest($1::text[], $2::int[]) AS k(id, v)
WHERE o.order_id = k.id AND o.version = k.v`

// DeleteEvents deletes the outbox rows with the given keys (events the broker
// acknowledged) in one statement; keys with no row are ignored. Safe for
// concurrent use; the keys' strings are not retained.
func (s *Store) DeleteEvents(ctx context.Context, keys []order.EventKey) error {
	if len(keys) == 0 {
		return nil
	}
	ids, versions := eventKeyArgs(keys)
	if _, err := s.pool.Exec(ctx, deleteEventsSQL, ids, versions); err != nil {
		return fmt.Errorf("delete %d outbox events: %w", len(keys), err)
	}
	return nil
}

// eventKeyArgs splits keys into the two arrays deleteEventsSQL takes.
func eventKeyArgs(keys []order.EventKey) (ids []string, versions []int32) {
	ids = make([]string, len(keys))
	versions = make([]int32, len(keys))
	for i, k := range keys {
		ids[i], versions[i] = k.OrderID, k.Version
	}
	return ids, versions
}

// sweepLockKey is the advisory lock that serialises sweeps ("orderflow
// outbox sweep" in ASCII, truncated to 64 bits).
const sweepLockKey int64 = 0x6f75_7462_6f78_7377

const sweepEventsSQL = `SELECT order_id, version, ce_type, ce_time, payload FROM outbox
WHERE enqueued_at < now() - $1::bigint * interval '1 microsecond'
ORDER BY order_id, version
LIMIT $2
FOR UPDATE SKIP LOCKED`

// SweepEvents hands the outbox rows enqueued more than olderThan ago (at most
// limit of them, in order id and version order) to fn, in one transaction
// that locks them (FOR UPDATE SKIP LOCKED: concurrent sweeps never receive
// the same row). If fn returns nil, exactly those rows are deleted and the
// transaction commits; otherwise it rolls back, the rows stay, and fn's
// error is returned. fn is not called when no row qualifies. It returns the
// number of rows fn published (0 on error). Only one sweep runs at a time
// across all instances (a transaction-level advisory lock): a sweep that
// finds another one running returns 0 at once without calling fn, so each
// order's rows are published in version order. That case returns an error
// whose SweepBusy method reports true, so that it is not taken for an empty
// outbox.
//
// The events' strings and payloads are valid only during fn. fn runs while
// the rows are locked and a connection is held: keep it bounded (ctx). Safe
// for concurrent use.
func (s *Store) SweepEvents(ctx context.Context, olderThan time.Duration, limit int, fn func(events []order.Event) error) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var (
		arena  bytesutil.Arena
		events []order.Event
		fnErr  error
		busy   bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One sweep at a time across the fleet: with row locks alone, two
		// sweeps could split one order's rows at a page boundary and publish
		// its v3 before its v1. The transaction-level lock is released at
		// COMMIT/ROLLBACK, also when the connection dies.
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLockKey).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			busy = true // another sweep holds the lock; try again next interval
			return nil
		}
		rows, err := tx.Query(ctx, sweepEventsSQL, olderThan.Microseconds(), limit)
		if err != nil {
			return err
		}
		var (
			ev      order.Event
			payload []byte
		)
		for rows.Next() {
			if err := rows.Scan(nil, &ev.Version, nil, &ev.Time, nil); err != nil {
				rows.Close()
				return err
			}
			raw := rows.RawValues()
			ev.OrderID = arena.CopyString(raw[0])
			ev.Type = arena.CopyString(raw[2])
			payload = arena.Copy(raw[4])
			ev.Payload = payload
			events = append(events, ev)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(events) == 0 {
			return nil
		}
		if fnErr = fn(events); fnErr != nil {
			return fnErr
		}
		keys := make([]order.EventKey, len(events))
		for i, e := range events {
			keys[i] = order.EventKey{OrderID: e.OrderID, Version: e.Version}
		}
		ids, versions := eventKeyArgs(keys)
		tag, err := tx.Exec(ctx, deleteEventsSQL, ids, versions)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != int64(len(events)) {
			return fmt.Errorf("%w: deleted %d of %d locked outbox rows", errBug, tag.RowsAffected(), len(events))
		}
		return nil
	})
	if fnErr != nil {
		return 0, fnErr
	}
	if err != nil {
		return 0, fmt.Errorf("sweep outbox: %w", err)
	}
	if busy {
		return 0, errSweepBusy
	}
	return len(events), nil
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

// OutboxBacklog returns the number of rows in the outbox (an exact
// count(*): a scan of the outbox, cheap while the relay keeps up; call it
// from the sweeper, not per request). Safe for concurrent use.
func (s *Store) OutboxBacklog(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		return 0, fmt.Errorf("count outbox: %w", err)
	}
	return n, nil
}
