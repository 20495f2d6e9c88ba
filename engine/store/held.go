package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Ticket names the fast path that will publish the events of one writing
// transaction: a publisher (RegisterPublisher) and the ticket it issued for
// the transaction. The zero Ticket means no fast path: the events are left
// to the sweeper, and a later version of their orders is too (see doc.go,
// "Order across the fleet").
type Ticket struct {
	Publisher int32
	N         int64
}

// RegisterPublisher adds a publisher (one per engine process) and returns
// its id, never 0.
func (s *Store) RegisterPublisher(ctx context.Context) (int32, error) {
	var id int32
	if err := s.pool.QueryRow(ctx, `INSERT INTO outbox_publishers DEFAULT VALUES RETURNING id`).Scan(&id); err != nil {
		return 0, fmt.Errorf("register outbox publisher: %w", err)
	}
	return id, nil
}

// recordHorizonSQL moves a publisher's horizon forward. Its commit need not
// wait for the disk (synchronous_commit off for this statement's implicit
// transaction): a horizon lost in a crash only makes readers wait longer,
// and the holds it counts on were committed durably before it.
const recordHorizonSQL = `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE outbox_publishers SET horizon = greatest(horizon, $2), seen_at = now()
FROM async WHERE id = $1`

// RecordHorizon records that publisher id has resolved every ticket up to
// horizon: each of their events is acknowledged by the broker, or its order
// is held (HoldOrders returned before this call). A smaller horizon than the
// recorded one changes nothing. It also notes the publisher as seen now.
func (s *Store) RecordHorizon(ctx context.Context, id int32, horizon int64) error {
	if _, err := s.pool.Exec(ctx, recordHorizonSQL, id, horizon); err != nil {
		return fmt.Errorf("record outbox publisher %d horizon: %w", id, err)
	}
	return nil
}

// holdOrdersSQL holds the orders in $1 until the sweeper has published their
// events up to the seq beside each ($2; 0: every seq handed out so far, for
// an event whose seq is unknown). One row per order (the largest seq wins,
// here and against a row already there), taken in id order so that
// concurrent holders do not deadlock.
const holdOrdersSQL = `INSERT INTO outbox_held AS h (order_id, upto_seq)
SELECT id, CASE WHEN min(seq) > 0 THEN max(seq)
  ELSE (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM outbox_seq) END
FROM unnest($1::text[], $2::int8[]) AS u(id, seq)
GROUP BY id ORDER BY id
ON CONFLICT (order_id) DO UPDATE SET upto_seq = greatest(h.upto_seq, excluded.upto_seq)`

// HoldOrders holds orders: until the sweeper has published each one's events
// up to the seq at the same index of seqs (0: up to every seq handed out so
// far, for an event whose seq is unknown), a later event of it is left to
// the sweeper by every instance. Durable when it returns nil.
func (s *Store) HoldOrders(ctx context.Context, ids []string, seqs []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, holdOrdersSQL, ids, seqs); err != nil {
		return fmt.Errorf("hold %d orders: %w", len(ids), err)
	}
	return nil
}

// releaseHeldSQL deletes the holds the sweeper is done with: every event
// below the watermark $1 is published (or parked). The index on upto_seq
// keeps it to the rows it deletes.
const releaseHeldSQL = `DELETE FROM outbox_held WHERE upto_seq < $1`

// PublisherHorizons returns the recorded horizon of each publisher in pubs,
// at the same index (-1 for one not registered).
func (s *Store) PublisherHorizons(ctx context.Context, pubs []int32) ([]int64, error) {
	horizons := make([]int64, len(pubs))
	for i := range horizons {
		horizons[i] = -1
	}
	rows, err := s.pool.Query(ctx, `SELECT id, horizon FROM outbox_publishers WHERE id = ANY($1)`, pubs)
	if err != nil {
		return nil, fmt.Errorf("read outbox publishers: %w", err)
	}
	var (
		id int32
		h  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &h}, func() error {
		for i, p := range pubs {
			if p == id {
				horizons[i] = h
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox publishers: %w", err)
	}
	return horizons, nil
}

// BlockedOrders returns which of ids are held (outbox_held) or parked
// (outbox_dead), sorted, once each. Read after a horizon that covers a
// ticket, it sees the hold its publisher committed for it: the publisher
// records a horizon only after the holds it counts on, and a hold is
// released only once the sweeper has published the events it covers.
func (s *Store) BlockedOrders(ctx context.Context, ids []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT order_id FROM outbox_held WHERE order_id = ANY($1)
UNION SELECT order_id FROM outbox_dead WHERE order_id = ANY($1) ORDER BY 1`, ids)
	if err != nil {
		return nil, fmt.Errorf("read held orders: %w", err)
	}
	blocked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read held orders: %w", err)
	}
	return blocked, nil
}

// HeldOrders returns the number of held orders (outbox_held).
func (s *Store) HeldOrders(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox_held`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count held orders: %w", err)
	}
	return n, nil
}
