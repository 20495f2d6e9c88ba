-- 0001: the ingest schema. Applied once, in one transaction, under the
-- migration advisory lock (see Store.Migrate).

-- The catalog is owned by another service in production: create it only when
-- it is missing (development, tests). The index serves the incremental
-- refresh (LoadProducts with since > 0).
CREATE TABLE IF NOT EXISTS products (
    sku         text        PRIMARY KEY,
    name        text        NOT NULL DEFAULT '',
    price_cents bigint      NOT NULL,
    active      bool        NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS products_updated_at_idx ON products (updated_at);

-- content_hash identifies the order's content: the same id with the same hash
-- is the same order (a client retry: 200), a different hash is a conflict (409).
-- idempotency_key is NULL when the request had none; UNIQUE ignores NULLs.
CREATE TABLE orders (
    id              text        PRIMARY KEY,
    user_id         text        NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('created', 'paid', 'assembling', 'delivering', 'delivered', 'cancelled')),
    currency        text        NOT NULL CHECK (octet_length(currency) = 3),
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    version         int         NOT NULL CHECK (version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    idempotency_key text        UNIQUE,
    content_hash    bigint      NOT NULL
);

-- No foreign key to orders: the ingest tier is the only writer and inserts an
-- order's items in the same transaction as the order, only for orders that
-- INSERT … RETURNING reported as new. A FK would add a trigger call and an
-- index probe of orders per item row (the hottest table of the write path)
-- to re-check what the transaction already guarantees.
CREATE TABLE order_items (
    order_id    text   NOT NULL,
    line        int    NOT NULL CHECK (line >= 0),
    sku         text   NOT NULL,
    qty         int    NOT NULL CHECK (qty BETWEEN 1 AND 1000),
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, line)
);

-- One row per committed change not yet published to Kafka; the relay deletes
-- a row once the broker acknowledged it. The enqueued_at index serves the
-- sweeper, which republishes rows the fast path did not get to.
CREATE TABLE outbox (
    order_id    text        NOT NULL,
    version     int         NOT NULL,
    ce_type     text        NOT NULL,
    ce_time     timestamptz NOT NULL,
    payload     bytea       NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
);
CREATE INDEX outbox_enqueued_at_idx ON outbox (enqueued_at);
