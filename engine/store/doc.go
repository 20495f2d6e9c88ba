// Package store is orderflow's PostgreSQL layer: the pipeline's writers hand
// it groups of queued batches (WriteOrders, WriteStatus), the HTTP GET
// handler and the catalog read through it, and the outbox relay
// (engine/publish) acknowledges, sweeps and reclaims the events it wrote.
//
// One WriteOrders call is one transaction (group commit) per attempt. The
// orders are sorted by id then arrival. Below Config.CopyMinRows (the
// common case: a few to a few hundred orders a commit) it is one statement
// and one round trip (writeOrdersSQL): INSERT INTO orders … FROM unnest(…)
// ON CONFLICT DO NOTHING RETURNING, with two data-modifying CTEs inserting
// the items and the order.created events of exactly the orders it created,
// each event taking its seq from outbox_seq; its implicit transaction
// commits when it returns, and one SELECT then classifies the skipped
// orders (duplicate or conflict). From CopyMinRows on (inTx): BEGIN; COPY
// the orders into a per-connection temp table; INSERT INTO orders … ON
// CONFLICT DO NOTHING RETURNING; the SELECT for the skipped ones; COPY
// order_items; take one outbox seq per new order; COPY the outbox events;
// COMMIT. Retryable errors retry the whole attempt; a data error bisects
// the set until the refused order is alone; an error at COMMIT is never
// retried (its outcome is unknown), and a statement that lost its
// connection is retried because writing orders is idempotent (a committed
// one comes back as duplicates; see commitStatement).
//
// # The outbox
//
// An outbox inserted into and deleted from at thousands of rows a second
// bloats (dead tuples, vacuum racing the hot path), and a relay that
// re-reads rows whose delete has not landed republishes them. So no event
// row is ever updated or deleted:
//
//   - Every event gets a seq from outbox_seq, a sequence with no
//     per-backend cache, taken in the writing transaction after the orders'
//     rows are written (new orders) or locked (status changes). An order's
//     next version can only take its seq after the previous version's
//     transaction committed, so seq order is version order within each
//     order. The writer sets seq and its slot in the COPY and hands the seq
//     to the publisher with the event (order.Event.Seq).
//   - outbox_events is list-partitioned into a ring of slots (8; migration
//     0003): seq s lives in slot (s / gen_rows) % slots, gen_rows = 32768 in
//     outbox_ring. Rotation is implicit: the sequence moving into the next
//     generation moves writers into the next slot, with no shared state to
//     update. gen_rows may be changed with an UPDATE at any time (writers
//     and the acker read it in every statement; truncation looks at the
//     seqs actually in a partition, so nothing is lost): smaller keeps less
//     on disk, larger truncates, and touches the catalog, less often. Around
//     the change an acknowledgement can land in another slot than its
//     event and be truncated first; the sweeper then publishes that event
//     once more.
//   - An acknowledgement is an INSERT: AckEvents writes one outbox_acks row
//     per flush and slot (at most 200 seqs in a bigint[], with their
//     min/max), in the slot of those events.
//   - outbox_ring's low_seq is the watermark below which every event is
//     published. A sweep (one at a time fleet-wide, advisory lock) reads the
//     unacknowledged events between the watermark and the settled horizon
//     in seq order (an anti-join against the acks of that range only),
//     publishes the prefix older than the sweep grace, records them as
//     acknowledged, and moves the watermark to the first event it did not
//     publish. Its cost follows the range above the watermark (the last
//     sweep intervals, or the backlog), not history.
//   - The settled horizon is what keeps the watermark from skipping a seq
//     taken by a transaction that has not committed yet (sequence numbers
//     are handed out before commit). Every writer holds a lock on
//     outbox_seq from its nextval to its end; a sweep reads the sequence's
//     head, then the transactions holding that lock (pg_locks), and at a
//     later pass, once they have all ended, every seq up to that head that
//     will ever commit has committed. With no holder the head is settled at
//     once. Only orderflow's writers count: an unrelated long transaction
//     does not hold the relay back, as a snapshot-xmin horizon would.
//   - ReclaimOutbox truncates a slot, events and acks together, once its
//     largest seq is below the watermark, skipping the slots being written.
//     In one transaction: LOCK both partitions ACCESS EXCLUSIVE (waiting at
//     most 200ms, else the next pass retries), re-check with a fresh
//     snapshot, TRUNCATE. A writer that took a seq of that slot but had not
//     inserted yet waits for the lock and inserts into the emptied
//     partition; if the wait outlives Config.TxTimeout, the error comes
//     before COMMIT and the transaction is retried. Truncation leaves no
//     dead tuples; each one updates a few pg_class rows, which autovacuum
//     (or a manual VACUUM) of the catalog cleans.
//   - When Kafka is away the watermark stops, the slots are not truncated,
//     and the sequence wraps the ring: a slot then holds several
//     generations, which is correct (truncation looks at the largest seq in
//     the partition) and holds the backlog only as long as it exists.
//   - OutboxStats (the backlog and oldest-age gauges) never reads the
//     unpublished events: the backlog is the seqs handed out above the
//     watermark less the acknowledged ones there, the oldest age one
//     primary-key probe per partition from the watermark. A backlog of a
//     million events costs what an empty outbox does. The view outbox shows the unpublished events (and takes
//     hand-written inserts, seq and slot from their defaults).
//
// Parked events (migration 0005): a sweep's callback may refuse events for
// good (see order.ParkedEvent). In the sweep's transaction they are copied
// into outbox_dead (the row, the error, the attempts, when) and recorded in
// outbox_acks like the published ones, so the watermark passes them and
// truncation is not held up. Every later sweep parks the events of an order
// that has a parked event behind it (a primary-key probe into outbox_dead
// per event read, on a table empty unless something is parked), so a
// parked version is never overtaken by the sweeper. RequeueDead, under the
// sweep lock and with the orders' rows locked, first parks the orders'
// events still unpublished, then moves the parked rows back into
// outbox_events with fresh seqs in version order and deletes them from
// outbox_dead.
//
// Considered and not taken: moving stragglers forward into the current slot
// (a sweep publishes them where they are; moving would copy payloads and
// race the fast path's acknowledgement); a slot column filled by a function
// reading a "current slot" row (writers would depend on a row the rotation
// updates, and the slot would not follow from the seq); DELETE of acks by
// range (dead tuples again).
//
// Trace context (migrations 0004 and 0006): every event row carries the
// W3C traceparent and tracestate of the request behind it in two nullable
// text columns of outbox_events (NULL, a bit in the null bitmap, when the
// request had none), filled by outboxSource in the same COPY, read back by
// the sweep, and kept by parking (outbox_dead has the same columns) and
// requeueing, so a crash between commit and publish does not lose them.
//
// Later work fits this layout: a fleet-wide "this order has a
// deferred event" mark (a small table of order ids written by the publisher
// and read by the gate; cleared when the watermark passes the event's seq);
// one row per transaction (a row would carry its events as arrays and a
// range of seqs; acks stay per seq).
package store
