-- 0004: the W3C trace context of the request behind each event (issue 13).
-- traceparent is the 55-character version-00 value, tracestate the
-- validated list (at most 512 characters); both NULL when the request had
-- none, which costs no bytes in the row (a NULL is a bit in the null
-- bitmap). ALTER on the partitioned parent reaches every ring partition; a
-- nullable column without a default is a catalog change only, so existing
-- events are not rewritten.
ALTER TABLE outbox_events ADD COLUMN traceparent text, ADD COLUMN tracestate text;

-- The view of unpublished events names its columns: add the new ones at
-- its end (CREATE OR REPLACE VIEW may only append columns). It stays
-- auto-updatable, so hand-written inserts through it keep working.
CREATE OR REPLACE VIEW outbox AS
SELECT e.order_id, e.version, e.ce_type, e.ce_time, e.payload, e.enqueued_at, e.traceparent, e.tracestate
FROM outbox_events e
WHERE e.seq >= (SELECT low_seq FROM outbox_ring)
  AND e.seq NOT IN (SELECT unnest(a.seqs) FROM outbox_acks a
                    WHERE a.max_seq >= (SELECT low_seq FROM outbox_ring));
