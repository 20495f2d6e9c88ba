// Package publish relays the outbox to Kafka (franz-go). A writer commits
// orders with their outbox events, then calls Publisher.Publish (fast path):
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
// one instance, provided Publish is called in commit order (with several
// writers, a later version's Publish must not start before an earlier one's
// returns). The sweeper publishes in seq order (version order within each
// order) and commits only after every ack, so each repeat run is in version
// order. Once an event of an order leaves the fast path, the order's later
// events are held for the sweeper until a sweep pass has covered them
// (gate), and after start status changes are held until the outbox is seen
// empty or swept. No record is failed on a deadline (see
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
// events in the page are parked behind it unproduced. The gate holds a
// parked order's later events off the fast path (this instance at once,
// every instance from the store's list at each SweepInterval), and the
// store parks them behind it when swept. Any other failure rolls the page
// back as before.
//
// Not covered: fast paths of different instances race each other and other
// instances' sweeps (an order parked by one instance reaches the others'
// gates within a SweepInterval); clocks must agree with PostgreSQL's within
// 1s.
//
// Trace context: an event that carries its request's W3C traceparent (and
// tracestate) gets them as the record's traceparent and tracestate headers,
// copied into the pooled record like the other headers, on the fast path
// and the sweeper alike (the store keeps them with the event); an event
// without them gets neither header and costs nothing more.
//
// Lock order: acker.ackMu before acker.mu; gate.mu is taken alone.
package publish
