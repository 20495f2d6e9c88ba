// Package soak runs orderflow under sustained open-loop load for minutes or
// hours, as an operator would, and records how it ages: latency, CPU per
// order, WAL per order, table and index sizes, outbox live and dead rows,
// events on the topic.
//
// [Run] starts everything it measures itself, every part in its own
// process, on 127.0.0.1:
//
//   - a private PostgreSQL cluster (internal/privatepg) with initdb's
//     defaults, autovacuum on or off as asked;
//   - a Kafka-protocol broker (benchtargets -target broker);
//   - the orderflow server, publishing to that broker;
//   - a consumer of the topic, in this process, that counts every event and
//     every repeat (a ce_id already seen) while the load runs, and trims
//     what it has read from the broker (DeleteRecords) so that the broker's
//     memory stays bounded over a long soak.
//
// It first measures the maximum (closed loop, Config.ProbeConns
// connections, Config.Probe long) unless Config.Rate is given, then sends
// open-loop load at Config.Share of it for Config.Duration, after
// Config.Warmup of the same load that is reconciled but not measured. Every
// Config.Interval it samples: the server's CPU (/proc/<pid>/stat), the
// PostgreSQL postmaster's and its children's CPU (/proc), the WAL position,
// the sizes of orders, order_items and every relation whose name starts
// with outbox (heap, indexes, total), the outbox's live and dead rows
// (pg_stat_user_tables) and the events consumed. The outbox size is also
// sampled every few seconds in between, for its peak. After the load it
// reconciles every acknowledged order (PostgreSQL: lost, duplicated,
// phantom; topic: unpublished, repeated), writes a JSON report and PNG
// charts over time, and evaluates the targets (p99 and server CPU per
// order of the last span against the first, p99 bound, outbox size bound,
// nothing lost, duplicated or repeated), each printed as met or not met.
package soak
