package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine/order"
)

var (
	outboxTable   = pgx.Identifier{"outbox_events"}
	outboxColumns = []string{"seq", "slot", "order_id", "version", "ce_type", "ce_time", "payload", "traceparent", "tracestate"}
)

// allocSeqsSQL takes $1 numbers from outbox_seq and names the ring slot each
// one lives in. The sequence has no per-backend cache, so a number taken
// later is larger, whichever connection takes it.
const allocSeqsSQL = `SELECT n.s, (n.s / r.gen_rows) % r.slots
FROM (SELECT nextval('outbox_seq') AS s FROM generate_series(1, $1::int)) n, outbox_ring r`

// copyOutbox gives the source's events increasing seqs in their order (one
// round trip) and copies them into outbox_events. Call it inside the
// writing transaction after the orders' rows are written or locked: an
// order's next version can then only take its seq after this transaction
// has committed, so seq order is version order within every order. The
// events' Seq fields are set (also when the COPY then fails).
func copyOutbox(ctx context.Context, tx pgx.Tx, src *outboxSource) error {
	n := len(src.events)
	rows, err := tx.Query(ctx, allocSeqsSQL, n)
	if err != nil {
		return fmt.Errorf("take outbox seqs: %w", err)
	}
	type seqSlot struct {
		seq  int64
		slot int32
	}
	// Small and short-lived: the numbers come back in no promised order.
	got := make([]seqSlot, 0, n)
	for rows.Next() {
		raw, fd := rows.RawValues(), rows.FieldDescriptions()
		seq, err1 := rawInt(raw[0], fd[0].Format)
		slot, err2 := rawInt(raw[1], fd[1].Format)
		if err1 != nil || err2 != nil {
			rows.Close()
			return fmt.Errorf("%w: outbox seq row: %v %v", errBug, err1, err2)
		}
		got = append(got, seqSlot{seq, int32(slot)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("take outbox seqs: %w", err)
	}
	if len(got) != n {
		return fmt.Errorf("%w: asked for %d outbox seqs, got %d", errBug, n, len(got))
	}
	slices.SortFunc(got, func(a, b seqSlot) int { return int(a.seq - b.seq) })
	src.slots = src.slots[:0]
	for i := range src.events {
		src.events[i].Seq = got[i].seq
		src.slots = append(src.slots, got[i].slot)
	}
	src.i = -1
	_, err = tx.CopyFrom(ctx, outboxTable, outboxColumns, src)
	return err
}

// createdEvents appends the order.created outbox event of each order.
func createdEvents(dst []order.Event, orders []*order.Order) []order.Event {
	for _, o := range orders {
		dst = append(dst, o.CreatedEvent())
	}
	return dst
}
