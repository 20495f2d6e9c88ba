// Package ingest is orderflow's front door: the fasthttp server for the
// public API and the admin handler (metrics, pprof, health, and the API's
// OpenAPI document at /openapi.yaml). fasthttp reads a request within
// ReadTimeout, MaxHeaderBytes (431) and the route's body limit (413). An
// answer sent before the request was read to its end (a 413, 431 or 400
// from fasthttp, or a 413 after gunzip) closes the connection by lingering
// (linger.go): half-close, read and discard what the client still sends
// within LingerMaxBytes and LingerTimeout, then close, so the client reads
// the answer instead of a reset. The handler finds the route in the route
// table (route.go), then the guard (guard.go) judges it on headers alone,
// before any body work: per-IP token bucket keyed on the client IP (the
// TCP peer, or behind a trusted proxy the right-most untrusted
// X-Forwarded-For address: proxy.go) (429), API key (401), the key's own bucket
// (429); buckets are local (x/time/rate) or, with Deps.Redis, shared by
// every instance (redis_rate). The body is gunzipped within the limit
// (request.go), then the request is admitted (admit.go): its body bytes
// against MaxInflightBodyBytes (503 at once) and an in-flight slot (try,
// wait at most MaxQueueWait, then 503). It is decoded into a pooled
// order.Batch by the decoder Config.Decoder names (the strict scanner, or
// jsoniter), priced against the catalog snapshot, sealed and submitted to
// the pipeline without blocking; the handler waits on the batch's completion
// until AckTimeout (commit.go) and only then answers: 201/200 after the
// commit, 409/400 as the store decided, 503 with Retry-After when it could
// not be committed (in time). A panic answers 500 for its request only.
// Every answer comes from the answer table (answer.go): one pure function
// per kind of outcome (statusFor for errors, orderAnswer, updateAnswer,
// refusalAnswer, transportAnswer), shared by the single and bulk endpoints,
// so a bulk item gets what the single endpoint would answer. Nothing taken
// from the RequestCtx outlives the handler: the decoder copies into the
// batch arena. The write routes read the W3C trace context (trace.go):
// every order or status change a request carries gets its traceparent (a
// fixed array) and tracestate (copied into the arena); invalid ones are
// ignored and counted, never refused. With Deps.Tracer set, each request
// also gets a span, and its changes carry the span's context instead.
//
// Files: server.go (Server, Deps, New, Serve, Shutdown), route.go (route
// table, dispatch, transport errors), guard.go and keys.go (authentication
// and rate limits), request.go (body, Content-Type, id and key checks),
// admit.go (admission), answer.go (the answer table and its rendering),
// commit.go (submit and wait), orders.go (POST and GET of one order),
// status.go (one status change), bulk.go (both bulk endpoints), metrics.go
// (metric labels, per-route collectors), pool.go (buffer and timer pools),
// linger.go (lingering close), proxy.go (client IP behind trusted
// proxies), trace.go (trace context, the Tracer hook), config.go (Config),
// admin.go (the admin listener).
package ingest
