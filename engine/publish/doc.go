// Package publish relays the outbox to Kafka (franz-go). A writer commits
// orders with their outbox rows, then calls Publisher.Publish (fast path):
// each event is copied into a pooled record and handed to the client with
// TryProduce, never blocking; on the broker's ack (acks=all, idempotent) the
// promise queues the row's key and the deleter deletes acked rows in
// batches. Whatever the fast path skipped (buffer full), failed
// (DeliveryTimeout) or never saw (crash after commit, Kafka away) stays in
// the outbox; the sweeper republishes rows older than SweepGrace and deletes
// them in the same transaction. Delivery is at least once: dedupe on ce_id.
//
// Ordering: key = order id, so one partition per order, and the client keeps
// produce order per partition. The fast path publishes in commit order within
// one instance, provided Publish is called in commit order (with several
// writers, a later version's Publish must not start before an earlier one's
// returns). The sweeper publishes each page in (order id, version) order and
// commits only after every ack, so each repeat run is in version order. Once
// an event of an order leaves the fast path, the order's later events are
// held for the sweeper until a sweep pass has covered them (gate), and after
// start status changes are held until the outbox is seen empty or swept.
// Not covered: fast paths of different instances race each other and other
// instances' sweeps; two concurrent sweeps may split one order's rows at a
// page boundary unless the store serialises sweeps; an event produced between
// the client failing an earlier record of its order and that record's
// promise running is not held; clocks must agree with PostgreSQL's within 1s.
//
// Lock order: deleter.delMu before deleter.mu; gate.mu is taken alone.
package publish
