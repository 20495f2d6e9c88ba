// Package loadtest drives an orderflow server with POST /v1/orders load,
// measures it, and proves afterwards that every acknowledged order was
// stored once and published.
//
// It sits outside the data path, speaking only the public contract: a
// [Generator] sends orders (ids lt_<run>_<n>, bodies built append-style from
// n), a [Report] holds what was measured, [Reconcile] checks the
// acknowledgements against PostgreSQL and the topic, and [Writer]s render the
// report (terminal [Summary], [JSONFile]; a chart writer is one more Writer
// over the same Report).
//
// # What it measures
//
//   - Latency of 2xx answers in an HDR histogram (1µs–60s, 3 significant
//     figures): p50/p90/p99/p99.9/max and the percentile spectrum.
//   - Answers by status code; acked (201/200), refused (4xx, 429, 503:
//     nothing stored) and unknown (transport errors, timeouts, other 5xx).
//   - Acknowledged orders per second, overall and as a per-second series.
//   - Optionally the server's cost from its admin /metrics: CPU seconds per
//     1,000 acknowledged changes (orders and status updates), bytes
//     allocated per second and per change, and the share of wall time in GC
//     pauses; plus the generator's own CPU, because on one box it competes
//     with the server.
//   - Optionally PostgreSQL's CPU per 1,000 acknowledged changes: the
//     postmaster and all its children, from /proc ([FindPostmaster],
//     [ProcessTreeCPU]), when the server runs on this machine.
//   - Optionally (Config.Window) counts and p50/p99/p99.9 per window, for
//     soaks that compare the first minutes with the last.
//
// # Closed and open loop
//
// Closed loop ([ModeClosed]) runs N workers that send, wait, send. It finds
// the throughput the server sustains, but its latencies flatter a stalling
// server: while the server stalls, the workers wait instead of sending, so
// the requests that would have queued up behind the stall are never sent and
// never measured ("coordinated omission").
//
// Open loop ([ModeOpen]) sends request i at start + i/Rate whatever the
// server does, as independent clients would, and measures each request's
// latency from its scheduled send time, not from when it was actually sent.
// A 50ms stall therefore shows up in every request scheduled during it, as
// it would for real users, including any wait for a free connection or a
// late generator. Outstanding requests are bounded (MaxInFlight); a request
// that finds the bound reached is not sent and is counted as dropped by the
// generator, so an overloaded run says so instead of silently offering less
// load.
//
// # Reconciliation
//
// The generator records every id that got 201/200 and every id that got a
// refusal. [Reconcile] then reports lost (acknowledged, not in orders),
// duplicated (in orders twice), phantom (in orders but only ever refused) and
// unpublished (acknowledged, no order.created event with ce_id <id>/1 on the
// topic within a timeout) orders, and counts repeated events: records whose
// ce_id was already read (delivery is at least once, so they are reported,
// not failed). Ids whose fate is unknown (timeouts) are checked by neither
// side.
package loadtest
