package ingest

import (
	"context"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
)

// The answer table: every outcome a client hears about becomes an HTTP
// status and, for an error, the contract's error code, message and field,
// here and nowhere else. There is one pure function per kind of outcome:
//
//   - statusFor: an error on the request path (decoding, pricing,
//     splitting a bulk body, a pipeline refusing a batch, a deadline);
//   - orderAnswer: the store's verdict on one order (order.Result);
//   - updateAnswer: the store's verdict on one status change (order.Update);
//   - refusalAnswer: admission control saying no (shutting down, overloaded);
//   - transportAnswer: fasthttp failing to read a request;
//
// plus fixed answers (ans*) for the request-level checks. The single and
// bulk endpoints use the same functions, so a bulk item's status and error
// are what the single endpoint answers for the same outcome
// (TestBulkItemsAnswerAsSingle). writeAnswer renders an error answer; every
// 503 carries Retry-After.

// answer is what a client hears for one outcome.
type answer struct {
	status           int    // HTTP status
	code, msg, field string // the contract's error; code is "" for a success
}

func errAnswer(status int, code, msg string) answer {
	return answer{status: status, code: code, msg: msg}
}

const (
	msgShuttingDown     = "server is shutting down; retry on another instance"
	msgOverloaded       = "server overloaded; retry later"
	msgNoOrder          = "no order with this id"
	msgConflict         = "order id or Idempotency-Key is already used by a different order"
	msgUnstorable       = "the order contains a value the database cannot store"
	msgOrderFailed      = "the order could not be committed; retry with the same id"
	msgUpdateFailed     = "the status change could not be committed; retry it"
	msgTooManyItems     = "the request holds more items than the limit"
	msgRateLimitedTrail = "; retry after the Retry-After seconds"
)

// Fixed answers.
var (
	ansOK      = answer{status: fasthttp.StatusOK}
	ansCreated = answer{status: fasthttp.StatusCreated}

	ansShuttingDown = errAnswer(fasthttp.StatusServiceUnavailable, "shutting_down", msgShuttingDown)
	ansOverloaded   = errAnswer(fasthttp.StatusServiceUnavailable, "overloaded", msgOverloaded)
	ansInternal     = errAnswer(fasthttp.StatusInternalServerError, "internal_error", "internal server error")

	ansNoRoute          = errAnswer(fasthttp.StatusNotFound, "not_found", "no such endpoint")
	ansMethodNotAllowed = errAnswer(fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	ansUnauthorized     = errAnswer(fasthttp.StatusUnauthorized, "unauthorized", "a valid API key is required: Authorization: Bearer <key>")
	ansRateLimitedIP    = errAnswer(fasthttp.StatusTooManyRequests, "rate_limited", "too many requests from this client address"+msgRateLimitedTrail)
	ansRateLimitedKey   = errAnswer(fasthttp.StatusTooManyRequests, "rate_limited", "too many requests for this API key"+msgRateLimitedTrail)

	ansNotJSON       = errAnswer(fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	ansNotBulk       = errAnswer(fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/x-ndjson or application/json")
	ansBadEncoding   = errAnswer(fasthttp.StatusUnsupportedMediaType, "unsupported_encoding", "Content-Encoding must be gzip or identity")
	ansInvalidGzip   = errAnswer(fasthttp.StatusBadRequest, "invalid_gzip", "request body is not valid gzip")
	ansBadIdemKey    = errAnswer(fasthttp.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters")
	ansNoOrder       = errAnswer(fasthttp.StatusNotFound, "order_not_found", msgNoOrder)
	ansConflict      = errAnswer(fasthttp.StatusConflict, "order_conflict", msgConflict)
	ansUnstorable    = errAnswer(fasthttp.StatusBadRequest, "unstorable_value", msgUnstorable)
	ansOrderFailed   = errAnswer(fasthttp.StatusServiceUnavailable, "unavailable", msgOrderFailed)
	ansUpdateFailed  = errAnswer(fasthttp.StatusServiceUnavailable, "unavailable", msgUpdateFailed)
	ansReadFailed    = errAnswer(fasthttp.StatusServiceUnavailable, "unavailable", "the database did not answer; retry later")
	ansStoreDeadline = errAnswer(fasthttp.StatusServiceUnavailable, "unavailable", "the database did not answer in time; retry later")

	// Commit timeouts: the request's fate is unknown; the message says how
	// to retry it safely.
	ansOrderTimeout   = errAnswer(fasthttp.StatusServiceUnavailable, "commit_timeout", "the order was not confirmed in time; retry with the same id")
	ansUpdateTimeout  = errAnswer(fasthttp.StatusServiceUnavailable, "commit_timeout", "the status change was not confirmed in time; retry it")
	ansOrdersTimeout  = errAnswer(fasthttp.StatusServiceUnavailable, "commit_timeout", "the orders were not confirmed in time; resend the request")
	ansUpdatesTimeout = errAnswer(fasthttp.StatusServiceUnavailable, "commit_timeout", "the status changes were not confirmed in time; resend the request")

	// Errors fasthttp meets before the handler runs (transportAnswer).
	ansTransportBodyTooLarge = errAnswer(fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the size limit")
	ansHeadersTooLarge       = errAnswer(fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers exceed the size limit")
	ansRequestTimeout        = errAnswer(fasthttp.StatusRequestTimeout, "request_timeout", "request not received in time")
	ansBadRequest            = errAnswer(fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request")
)

// bodyTooLarge is the answer to a body over limit bytes, before or after
// gunzip.
func bodyTooLarge(limit int, gunzipped bool) answer {
	msg := "request body exceeds "
	if gunzipped {
		msg = "decompressed request body exceeds "
	}
	return errAnswer(fasthttp.StatusRequestEntityTooLarge, "body_too_large", msg+strconv.Itoa(limit)+" bytes")
}

// tooManyItems is the answer to a bulk request with more than limit items.
func tooManyItems(limit int) answer {
	return errAnswer(fasthttp.StatusRequestEntityTooLarge, "too_many_items", msgTooManyItems+" ("+strconv.Itoa(limit)+")")
}

// statusFor maps an error on the request path to its answer: validation →
// 400, catalog rule → 422, a pipeline refusing a batch → 503 (as
// refusalAnswer), a deadline → 503, anything else → 500 with a generic
// message (details go to the log, never to the client).
func statusFor(err error) answer {
	var ve *order.ValidationError
	var ce *order.CatalogError
	switch {
	case errors.As(err, &ve):
		return answer{fasthttp.StatusBadRequest, ve.Code, ve.Message, ve.Field}
	case errors.As(err, &ce):
		return answer{fasthttp.StatusUnprocessableEntity, ce.Code, ce.Message, ce.Field}
	case errors.Is(err, pipeline.ErrOverloaded):
		return refusalAnswer(refusedOverloaded)
	case errors.Is(err, pipeline.ErrClosed):
		return refusalAnswer(refusedShuttingDown)
	case errors.Is(err, context.DeadlineExceeded):
		return ansStoreDeadline
	}
	return ansInternal
}

// refusal is why admission control turned a request (or a batch) away.
type refusal uint8

const (
	refusedShuttingDown refusal = iota // the server is shutting down, or its pipeline closed
	refusedOverloaded                  // no admission slot in time, body bytes at the cap, or the pipeline queue full
)

// refusalAnswer is the answer to an admission refusal: 503.
func refusalAnswer(r refusal) answer {
	if r == refusedShuttingDown {
		return ansShuttingDown
	}
	return ansOverloaded
}

// orderAnswer is the answer to the store's verdict on one order, with the
// orders_total label it counts under.
func orderAnswer(res *order.Result) (answer, result) {
	switch res.Outcome {
	case order.OutcomeCreated:
		return ansCreated, resCreated
	case order.OutcomeDuplicate:
		return ansOK, resDuplicate
	case order.OutcomeConflict:
		return ansConflict, resConflict
	case order.OutcomeRejected:
		return ansUnstorable, resRejected
	}
	return ansOrderFailed, resFailed
}

// updateAnswer is the answer to the store's verdict on one status change,
// with the status_updates_total label it counts under.
func updateAnswer(u *order.Update) (answer, updateResult) {
	switch u.Outcome {
	case order.UpdateApplied:
		return ansOK, updApplied
	case order.UpdateNoop:
		return ansOK, updNoop
	case order.UpdateNotFound:
		return ansNoOrder, updNotFound
	case order.UpdateInvalid:
		return answer{fasthttp.StatusConflict, "invalid_transition",
			"an order in status " + u.Previous.String() + " cannot move to " + u.Status.String(), "status"}, updInvalidTransition
	}
	return ansUpdateFailed, updFailed
}

// transportAnswer is the answer to an error fasthttp met while reading a
// request. fasthttp's default answers 400 to a too-large body; the contract
// says 413.
func transportAnswer(err error) answer {
	var small *fasthttp.ErrSmallBuffer
	var te interface{ Timeout() bool }
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return ansTransportBodyTooLarge
	case errors.As(err, &small):
		return ansHeadersTooLarge
	case errors.As(err, &te) && te.Timeout():
		return ansRequestTimeout
	}
	return ansBadRequest
}

var (
	ctJSON        = []byte("application/json")
	hdrRetryAfter = []byte("Retry-After")
)

// writeAnswer writes a, an error answer, as the contract's error body;
// a 503 gets Retry-After.
func (s *Server) writeAnswer(ctx *fasthttp.RequestCtx, a answer) {
	if a.status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesKV(hdrRetryAfter, s.retryAfter)
	}
	buf := getBuf()
	*buf = order.AppendError((*buf)[:0], a.code, a.msg, a.field)
	writeJSON(ctx, a.status, *buf)
	putBuf(buf)
}

// writeJSON sets the status and a JSON body (copied into the response).
func writeJSON(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.ResetBody()
	ctx.Response.AppendBody(body)
}
