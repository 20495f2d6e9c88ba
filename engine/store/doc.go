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
// # Order across the fleet
//
// Within one process the Kafka client keeps an order's events in produce
// order, and the publisher's gate keeps an order's later events off the
// fast path once one went to the sweeper. Across processes neither helps:
// instance A commits version N and hands it to its fast path, where it can
// sit (A's broker is gone) or be left to the sweeper (A's buffer is full),
// while instance B commits N+1 and publishes it at once. Migration 0007
// closes that in the database, with no extra round trip on the write path:
//
//   - Every engine process registers as a publisher (outbox_publishers)
//     and takes a ticket per writing transaction (WriteOrdersFor,
//     WriteStatusFor: Ticket). The transaction writes it into the rows it
//     changes (orders.pub_id, pub_ticket), in the INSERT or UPDATE it runs
//     anyway.
//   - The publisher resolves a ticket once each of its events is
//     acknowledged by the broker, or its order is held: a row in
//     outbox_held (HoldOrders: order id, upto_seq, the event's seq or, when
//     unknown, the sequence's head) committed before the ticket counts as
//     resolved. It records its horizon, every ticket up to it resolved,
//     only after those holds committed: in the statement that records its
//     acknowledgements (AckEventsHorizon), or alone (RecordHorizon).
//   - A status transaction's lock statement (lockOrdersSQL) reads, with
//     each order, the previous version's ticket, whether its publisher's
//     horizon covers it, and whether the order is held or parked: primary
//     key probes into small tables, in the statement's one snapshot. The
//     update's After says what its event waits for: nothing (covered, not
//     held), the ticket (not covered yet: the fast path waits, polling the
//     horizon, at most -kafka.order-wait, then holds the order itself), or
//     the sweeper (held, parked, or written with no fast path: the fast
//     path holds the order up to the new event's seq and leaves it).
//   - A sweep deletes the holds whose upto_seq is below its new low
//     watermark: every event of the order up to there is published (the
//     sweeper publishes in seq order, which is version order per order).
//     No instance owns a hold, so a crashed one's holds go the same way.
//     RequeueDead holds the orders it puts back.
//
// Why B can never publish N+1 ahead of N. B's transaction locks the order's
// row, so it runs after A's transaction of N committed and sees N's ticket
// t. B takes the fast path only if its statement saw A's horizon ≥ t and no
// hold; otherwise N+1 waits or goes to the sweeper, behind N in seq order.
// A moves its horizon past t only once N is acknowledged (on the topic) or
// N's order is held, and the hold commits before the horizon: any snapshot
// that sees the horizon sees the hold, unless a sweep already deleted it,
// which it does only once N is published. So "horizon ≥ t and no hold"
// implies N is on the topic. What A does after that cannot undo it: a hold
// only ever sends events to the sweeper. If B's lock waited for A's
// commit, its statement's snapshot predates A's commit and the horizon and
// hold A wrote after it: B sees an older horizon and waits, the safe
// side. B's later reads (PublisherHorizons, then BlockedOrders) take the
// holds from a snapshot no older than the horizon's, which the same
// argument covers. Ambiguous commits resolve the same way: A holds the
// orders of a transaction whose COMMIT failed (up to the sequence's head,
// past any seq that transaction took) before resolving its ticket, so a
// late commit is covered; and an order that the one-statement write's
// retry finds stored under its own ticket (Result.LeftToSweeper: the lost
// attempt committed it, and no fast path has its event) is held the same
// way. TestHoldBeforeHorizonInterleaved interleaves a
// hold, a horizon and a status transaction by hand with two connections.
//
// What it costs: two columns per order row; three probes per order in the
// status lock statement; a ticket (two atomic counters and a heap push per
// transaction) in the publisher; the horizon's UPDATE inside the
// acknowledgements' INSERT (alone, committed without waiting for the disk,
// when only holds moved it, and once a second); and, only when another
// instance's previous version is still in flight, a read of the horizons
// (then of the holds of the orders they release) every acknowledgement
// interval. Holds are written only when an event leaves
// the fast path, and then cost sweeper latency (-kafka.sweep-grace) for
// that order. A publisher that dies leaves its horizon where it was: the
// next versions of orders it had in flight wait -kafka.order-wait once,
// then go to the sweeper. Rows written before 0007 (pub_id NULL) and rows
// an instance still running an older version writes follow the old rules
// (order kept within one process only) until the fleet runs this version.
//
// Considered and not taken: a hold written only when the fast path gives
// up, and read by the next version's transaction. It closes the race only
// for an event deferred inside its own transaction, not for one handed to
// a client whose broker then goes away, fails later, or dies with its
// process; and a hold inserted after the commit can always lose the race
// to the next version's commit (no lock ordering fixes that: B may commit
// N+1 entirely between A's commit and A's hold). Knowing N is published
// needs N's outcome, not only the deferrals. An index on outbox_acks by seq, to look
// N's acknowledgement up directly: a write on the acknowledgement path and
// a probe into a table that grows with the backlog. The watermark alone
// (fast path only if N's seq is below low_seq): correct, but it would send
// every change of an order within -kafka.sweep-grace of the previous one,
// on another instance, through the sweeper.
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
// Later work fits this layout: one row per transaction (a row would carry
// its events as arrays and a range of seqs; acks stay per seq).
package store
