// Package engine wires orderflow together and owns every component's
// lifecycle. It is the only package that imports all the others.
//
// # The durable order path
//
//	client ──POST /v1/orders──▶ ingest (fasthttp): admit, read body, decode
//	  into a pooled order.Batch (strings copied into its arena), price
//	  against the catalog snapshot, seal (content hash + event JSON)
//	  ──TrySubmit──▶ pipeline: bounded queue (full → 503 at once)
//	  ──writers pop everything queued──▶ store.WriteOrders, ONE transaction:
//	      COPY orders → temp staging; INSERT … ON CONFLICT DO NOTHING
//	      RETURNING (new vs duplicate); classify the rest (200 vs 409);
//	      COPY order_items; take one outbox seq per new order; COPY the
//	      outbox events (into the ring slot of their seq); COMMIT
//	  ──results set, batch completed──▶ handler answers 201/200/409/503
//	  ──after COMMIT──▶ publish fast path: produce to Kafka (acks=all,
//	      idempotent); on ack record the seqs as acknowledged, in batches
//	      (an INSERT into outbox_acks; no row is deleted).
//	  The sweeper republishes unacknowledged events older than the grace
//	  period (crash between commit and publish, Kafka away) in seq order,
//	  one sweep at a time fleet-wide, so any instance can recover any
//	  other's leftovers; ring slots whose events are all published are
//	  truncated whole (engine/store/doc.go).
//
// Status changes take the same road through their own pipeline
// (store.WriteStatus: lock the touched orders, apply every change in arrival
// order, write each order once, one outbox event per new version). That
// pipeline runs one writer by default so that events reach the publisher in
// commit order; an order's creation event is handed to the publisher before
// its 201 is sent, so a status change made after the 201 can never be
// published ahead of it. What the fast path could not deliver, the sweeper
// publishes in seq order, which is version order per order (one sweeper at
// a time fleet-wide).
//
// The sequence is "database, then Kafka, through a transactional outbox":
// an answer 2xx means the order and its outbox event are committed
// (synchronous_commit on, forced per session; at start the engine logs a
// warning for, and exposes as orderflow_postgres_setting_unsafe, each
// PostgreSQL setting that is unsafe or degrades it); publishing is at least
// once, and consumers dedupe on ce_id = "<id>/<version>".
//
// # Lock order
//
// pipeline.Pipeline has one mutex (its queue) and calls nothing while
// holding it. publish keeps its acknowledgement queue under its own mutex,
// taken inside kgo promises and never while calling out; the acker's
// drain mutex is taken before it (see publish/doc.go).
package engine
