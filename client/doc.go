// Package client is the Go client for orderflow's public HTTP API, for
// services that create orders and change their status. It uses the
// standard library only: importing it pulls in no server code, fasthttp, pgx
// or franz-go.
//
// Every call is safe to retry and the client retries for you: a request is
// built once and resent byte for byte (the same order id, the same
// Idempotency-Key), so a retry of an order that was in fact committed comes
// back as a replay (200, Created.Replayed) instead of a second order. It
// retries on 429, 503, other 5xx, 408 and transport errors, with jittered
// exponential backoff that waits at least the server's Retry-After, until
// the attempt budget (Config.MaxAttempts) or the caller's context runs
// out. It never retries an answer that says "fix the request" (400, 401,
// 404, 409, 413, 415, 422, 431).
//
// A failed call returns an *Error: the HTTP status, the API's error code,
// message and field, and OutcomeKnown, which says whether the order or
// change is known not to be stored (false after a timeout, a reset or a
// 503 unavailable: then retry with the same id until you get an answer).
//
// Batcher coalesces concurrent CreateOrder calls into POST /v1/order-batches
// requests and hands each caller its own result: the throughput of bulk
// requests with the code of single ones.
//
// The contract the client speaks is api/openapi.yaml in the orderflow
// repository; docs/api.md explains it.
package client
