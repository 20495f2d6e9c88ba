// Package store is orderflow's PostgreSQL layer: the pipeline's writers hand
// it groups of queued batches (WriteOrders), the HTTP GET handler and the
// catalog read through it, and the outbox relay (engine/publish) deletes and
// sweeps the events it wrote.
//
// One WriteOrders call is one transaction (group commit), per attempt:
// BEGIN; COPY the orders, sorted by id then arrival, into a per-connection
// temp table; INSERT INTO orders … SELECT … ON CONFLICT DO NOTHING RETURNING
// (new vs already stored); one SELECT classifies the skipped rows (duplicate
// or conflict); COPY order_items and outbox rows of the new orders straight
// into their tables; COMMIT. COPY has no ON CONFLICT, hence the staging
// table; measured in PITFALLS.md, it beats INSERT … FROM unnest(…) from ~500
// rows a batch. Retryable errors retry the whole transaction; a data error
// bisects the set until the refused order is alone.
package store
