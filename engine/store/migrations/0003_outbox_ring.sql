-- 0003: an outbox that stays small by construction (engine/store/doc.go has
-- the design). Events are appended to a ring of list partitions and
-- acknowledgements to a second ring; a partition is truncated whole once
-- every event in it is published, so no event row is ever deleted and
-- neither table needs vacuum to stay small. The old outbox table's rows move
-- into the ring in (order_id, version) order, and "outbox" becomes a view of
-- the events not yet published.

-- Every event's position in the publishing order. CACHE 1 (the default):
-- with a per-backend cache, a later version of an order committed through
-- another connection could get a smaller number than an earlier one.
CREATE SEQUENCE outbox_seq AS bigint;

-- The ring's shape and the relay's progress, one row. Event seq s lives in
-- slot (s / gen_rows) % slots. low_seq: every event with a smaller seq is
-- published (acknowledged, or never committed). settled_seq: every seq up to
-- it that will ever commit has committed (settled_at: when that was read);
-- pend_seq/pend_vxids/pend_at: the candidate for the next settled_seq and the
-- writer transactions it waits for. backlog/oldest_at: the last count.
CREATE TABLE outbox_ring (
    one         bool        PRIMARY KEY DEFAULT true CHECK (one),
    slots       int         NOT NULL CHECK (slots BETWEEN 3 AND 64),
    gen_rows    bigint      NOT NULL CHECK (gen_rows >= 1),
    low_seq     bigint      NOT NULL,
    settled_seq bigint      NOT NULL,
    settled_at  timestamptz NOT NULL DEFAULT now(),
    pend_seq    bigint      NOT NULL,
    pend_vxids  text[]      NOT NULL DEFAULT '{}',
    pend_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per committed change. Writers set seq and slot themselves (see
-- Store.WriteOrders); the defaults serve hand-written inserts through the
-- outbox view. The primary key serves the relay's seq-range scans.
CREATE TABLE outbox_events (
    seq         bigint      NOT NULL DEFAULT nextval('outbox_seq'),
    slot        int         NOT NULL DEFAULT 0,
    order_id    text        NOT NULL,
    version     int         NOT NULL,
    ce_type     text        NOT NULL,
    ce_time     timestamptz NOT NULL,
    payload     bytea       NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seq, slot)
) PARTITION BY LIST (slot);

-- One row per acknowledgement flush and slot: the seqs the broker
-- acknowledged (at most 200 a row, so the array stays inline), with their
-- range to prune by. No index: the relay reads a seq range of it at a time,
-- and a slot's rows go with the slot's truncation.
CREATE TABLE outbox_acks (
    slot    int      NOT NULL,
    min_seq bigint   NOT NULL,
    max_seq bigint   NOT NULL,
    seqs    bigint[] NOT NULL
) PARTITION BY LIST (slot);

DO $$
BEGIN
    FOR s IN 0..7 LOOP
        EXECUTE format('CREATE TABLE outbox_events_%s PARTITION OF outbox_events FOR VALUES IN (%s)', s, s);
        EXECUTE format('CREATE TABLE outbox_acks_%s PARTITION OF outbox_acks FOR VALUES IN (%s)', s, s);
    END LOOP;
END
$$;

-- Move the old outbox: nothing may commit into it while its rows are copied.
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;
INSERT INTO outbox_events (seq, slot, order_id, version, ce_type, ce_time, payload, enqueued_at)
SELECT n, (n / 32768) % 8, order_id, version, ce_type, ce_time, payload, enqueued_at
FROM (SELECT row_number() OVER (ORDER BY order_id, version) AS n, * FROM outbox) o;
SELECT setval('outbox_seq', greatest(max(seq), 1), max(seq) IS NOT NULL) FROM outbox_events;
INSERT INTO outbox_ring (slots, gen_rows, low_seq, settled_seq, pend_seq)
SELECT 8, 32768, 1, coalesce(max(seq), 0), coalesce(max(seq), 0) FROM outbox_events;
DROP TABLE outbox;

-- The events not yet published, for operators and for hand-written inserts
-- (seq and slot take their defaults). NOT IN over the acknowledgements above
-- low_seq is one hashed set: its cost grows with the unpublished events and
-- the acknowledgements above low_seq, never with history.
CREATE VIEW outbox AS
SELECT e.order_id, e.version, e.ce_type, e.ce_time, e.payload, e.enqueued_at
FROM outbox_events e
WHERE e.seq >= (SELECT low_seq FROM outbox_ring)
  AND e.seq NOT IN (SELECT unnest(a.seqs) FROM outbox_acks a
                    WHERE a.max_seq >= (SELECT low_seq FROM outbox_ring));
