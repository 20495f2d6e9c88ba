-- 0006: parked events keep their trace context too (see 0004). A separate
-- migration because 0004 sorts before 0005, which creates outbox_dead: on
-- a new database 0004 runs before the table exists, and on one that already
-- had 0005 the runner applies the missing 0004 and then this one, so both
-- end with the same columns.
ALTER TABLE outbox_dead ADD COLUMN traceparent text, ADD COLUMN tracestate text;
