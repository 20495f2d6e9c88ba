-- 0005: parked (dead-lettered) outbox events. An event the broker refuses
-- for good (a record too large for its topic, an authorization error) moves
-- here, in the sweep transaction that acknowledges it in outbox_events, so
-- the ring's watermark passes it. The later events of its order move here
-- too (error names the version they wait behind, attempts 0): a consumer
-- never sees a version without the ones before it. Requeueing puts an
-- order's rows back into outbox_events with fresh seqs, in version order,
-- and deletes them here (a small table, written only on failure).
CREATE TABLE outbox_dead (
    order_id    text        NOT NULL,
    version     int         NOT NULL,
    seq         bigint      NOT NULL, -- its seq in outbox_events when parked
    ce_type     text        NOT NULL,
    ce_time     timestamptz NOT NULL,
    payload     bytea       NOT NULL,
    enqueued_at timestamptz NOT NULL,
    error       text        NOT NULL,
    attempts    int         NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
);
