// Package publish relays the outbox to Kafka (franz-go). A writer takes a
// Ticket (Publisher.Begin), commits orders with their outbox events and the
// ticket, then hands the ticket back with the events (Publisher.PublishFor,
// the fast path):
// each event is copied into a pooled record and handed to the client with
// TryProduce, never blocking; on the broker's ack (acks=all, idempotent) the
// promise queues the event's seq and the acker records the acknowledged seqs
// in batches (Outbox.AckEvents: an insert, no row deleted). Whatever the
// fast path skipped (buffer full) or never saw (crash after commit) stays
// unacknowledged; the sweeper republishes events older than SweepGrace and
// records their acknowledgements in the same transaction. An event whose
// acknowledgement is recorded is never republished; repeats come only from
// real ambiguity (a crash or a sweep that gave up waiting). After a
// sweep pass that caught up, the sweeper asks the store to truncate what is
// all published (Outbox.ReclaimOutbox). Delivery is at least once: dedupe
// on ce_id.
//
// Ordering: key = order id, so one partition per order, and the client keeps
// produce order per partition. The fast path publishes in commit order within
// one instance: an event whose previous version's ticket this publisher has
// not handed back yet (several writers) waits for it. The sweeper publishes
// in seq order (version order within each order) and commits only after
// every ack, so each repeat run is in version order. Once an event of an
// order leaves the fast path, the order's later events are held for the
// sweeper until a sweep pass has covered them (gate), and after start status
// changes the store knows nothing about (rows written before migration
// 0007) are held until the outbox is seen empty or swept. No record is
// failed on a deadline (see
// Config.DeliveryTimeout): a failed earlier version with a delivered later
// one is exactly the reorder a version-skipping consumer cannot recover
// from. The store serialises sweeps fleet-wide.
//
// Poison events: a page whose failed records all carry a Kafka error that is
// not retriable (permanent: MESSAGE_TOO_LARGE, an authorization error; not
// the producer-state errors) is not rolled back. Each failed record is
// produced again alone, in seq order (a refused batch, and the client's
// failing of every record queued behind it in the partition, take good
// records down too); one refused again is parked (the store moves it to
// outbox_dead and acknowledges the rest of the page), and its order's later
// events in the page are parked behind it unproduced. A parked order's
// later events stay off the fast path: on this instance at once (the
// gate), on every instance from the commit of the parking sweep (the
// store's status transactions see outbox_dead: order.AfterHeld), and the
// store parks them behind it when swept. Any other failure rolls the page
// back as before.
//
// Trace context: an event that carries its request's W3C traceparent (and
// tracestate) gets them as the record's traceparent and tracestate headers,
// copied into the pooled record like the other headers, on the fast path
// and the sweeper alike (the store keeps them with the event); an event
// without them gets neither header and costs nothing more.
//
// # Across the fleet
//
// Several instances change the same orders (engine/store/doc.go, "Order
// across the fleet", has the argument). Register makes this process one of
// the store's publishers; each writing transaction carries a Ticket into
// the rows it writes. A ticket is resolved once each of its events is
// acknowledged by the broker or its order is held in the store
// (outbox_held); the keeper (keepLoop, every DeleteInterval) commits the
// holds the fast path queued (holdLater: an event left to the sweeper, a
// failed record, an order whose commit is unknown); the horizon, every
// ticket up to it resolved, is recorded with the acker's acknowledgements
// (or by the keeper, after the holds, when only holds moved it). The store
// tells each status change what its event waits for (order.After):
// nothing; another
// publisher's ticket (the event waits, in arrival order behind any earlier
// waiter of its order, until that publisher's horizon covers it and the
// order is not held, then takes the fast path, or after OrderWait goes to
// the sweeper); or the sweeper (the order is held or parked: the event
// extends the hold). PublishFor never blocks: waiting events are copied
// into records and decided by the keeper.
//
// Not covered: an instance still running a version without tickets (during
// an upgrade) keeps order within itself only; clocks must agree with
// PostgreSQL's within 1s.
//
// Lock order: acker.ackMu before acker.mu; waits.mu before gate.mu,
// holds.mu and tickets.mu; gate.mu, holds.mu and tickets.mu are taken
// alone.
package publish
