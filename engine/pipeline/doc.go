// Package pipeline sits between the HTTP handlers and the store: handlers
// TrySubmit an item (one request's decoded orders), a fixed set of writer
// goroutines pop everything queued up to the batch limits (rows, bytes, or
// the linger deadline, whichever comes first) and hand it to a Sink, which
// commits it in one transaction and sets every item's result; the writer
// then completes each item, waking the handler that waits on it.
//
// The queue is bounded in rows and TrySubmit never blocks: a full queue is
// ErrOverloaded at once, which the front end turns into 503 + Retry-After.
// Close stops intake and flushes what is queued. The package imports no
// third-party module; metrics reach it through the Config hooks.
package pipeline
