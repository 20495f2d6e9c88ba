-- 0007: per-order event order across a fleet (engine/store/doc.go, "Order
-- across the fleet"). A fast path that cannot publish an event itself holds
-- the event's order here; a fast path publishes a later version only once
-- the publisher of the previous one has resolved it (acknowledged by the
-- broker, or its order held), which it reads from that publisher's horizon.

-- The fast path that publishes the current version's event: the publisher
-- (outbox_publishers.id; 0 = none, the sweeper publishes it) and the
-- ticket (one per writing transaction) it holds the event under. NULL in
-- rows last written before this migration. Adding nullable columns without
-- a default rewrites nothing.
ALTER TABLE orders ADD COLUMN pub_id int, ADD COLUMN pub_ticket bigint;

-- One row per publisher (an engine process, registered at start). horizon:
-- every ticket up to it is resolved: each of its events acknowledged by the
-- broker, or its order in outbox_held (committed before the horizon moved).
-- Rows are never deleted: an order may name its publisher long after that
-- process has gone (one row per start).
CREATE TABLE outbox_publishers (
    id         int         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    horizon    bigint      NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- Orders whose later events only the sweeper publishes, until it has
-- published every event of theirs up to upto_seq: then a sweep deletes the
-- row (by the index, so the cost follows the holds released, not the
-- table). Holders only raise upto_seq (INSERT … ON CONFLICT DO UPDATE SET
-- upto_seq = greatest(…)); no instance owns a hold, so one a crashed
-- instance left is released like any other.
CREATE TABLE outbox_held (
    order_id text        PRIMARY KEY,
    upto_seq bigint      NOT NULL,
    held_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_held_upto_seq ON outbox_held (upto_seq);
