// Package ingest is orderflow's front door: the fasthttp server for the
// public API and the admin handler (metrics, pprof, health). fasthttp reads
// a request within ReadTimeout, MaxHeaderBytes (431) and the route's body
// limit (413). The handler routes it, then the guard (guard.go) judges it on
// headers alone, before any body work: per-IP token bucket (429), API key
// (401), the key's own bucket (429); buckets are local (x/time/rate) or,
// with Deps.Redis, shared by every instance (redis_rate). The body is
// gunzipped within the limit, then the request is admitted: its body bytes
// against MaxInflightBodyBytes (503 at once) and an in-flight slot (try,
// wait at most MaxQueueWait, then 503). It is decoded into a pooled
// order.Batch, priced against the catalog snapshot, sealed and submitted to
// the pipeline without blocking; the handler waits on the batch's completion
// until AckTimeout and only then answers: 201/200 after the commit, 409/400
// as the store decided, 503 with Retry-After when it could not be committed
// (in time). A panic answers 500 for its request only. statusFor is the one
// place errors become HTTP statuses. Nothing taken from the RequestCtx
// outlives the handler: the decoder copies into the batch arena.
package ingest
