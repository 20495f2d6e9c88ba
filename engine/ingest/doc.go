// Package ingest is orderflow's front door: the fasthttp server for the
// public API and the admin handler (metrics, pprof, health). A request is
// routed, admitted (an in-flight semaphore: try, then wait at most
// MaxQueueWait, then 503), its body read within the route's limit (gunzip
// included), decoded into a pooled order.Batch, priced against the catalog
// snapshot and sealed, then submitted to the pipeline without blocking; the
// handler waits on the batch's completion until AckTimeout and only then
// answers: 201/200 after the commit, 409/400 as the store decided, 503 with
// Retry-After when it could not be committed (in time). statusFor is the one
// place errors become HTTP statuses. Nothing taken from the RequestCtx
// outlives the handler: the decoder copies into the batch arena.
package ingest
