package client

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Error is a call that did not succeed. Safe to read from any goroutine
// once returned.
type Error struct {
	// StatusCode is the HTTP status of the last answer; 0 when no answer
	// came (transport error, context ended).
	StatusCode int
	// Code, Message and Field are the API's error body ("order_conflict",
	// human text, the JSON path at fault); empty without one.
	Code    string
	Message string
	Field   string
	// RetryAfter is the server's Retry-After of the last answer, if any.
	RetryAfter time.Duration
	// OutcomeKnown is true when the order or change is known not to have
	// been stored by this call (any 4xx, 429, and 503 overloaded or
	// shutting_down), or for 409 known to be someone else's. False after a
	// timeout, a reset, a 500 or a 503 unavailable or commit_timeout: it may
	// be committed. Retry with the same id until the outcome is known.
	OutcomeKnown bool
	// Attempts is how many requests the call sent.
	Attempts int
	// Err is the transport or context error, when there was no answer.
	Err error
}

// Error describes the failure.
func (e *Error) Error() string {
	s := "orderflow: "
	if e.StatusCode != 0 {
		s += strconv.Itoa(e.StatusCode) + " "
	}
	if e.Code != "" {
		s += e.Code
		if e.Field != "" {
			s += " (" + e.Field + ")"
		}
		if e.Message != "" {
			s += ": " + e.Message
		}
	} else if e.Err != nil {
		s += e.Err.Error()
	} else {
		s += http.StatusText(e.StatusCode)
	}
	if e.Attempts > 1 {
		s += " after " + strconv.Itoa(e.Attempts) + " attempts"
	}
	return s
}

// Unwrap returns the transport or context error.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether a later retry of the same call may succeed
// (429, 408, 5xx, no answer). The client already retried within its
// budget; a caller with a longer horizon may retry again, with the same id.
func (e *Error) Temporary() bool { return retryable(e.StatusCode) }

// IsConflict reports whether err says the order id (or Idempotency-Key) is
// taken by a different order.
func IsConflict(err error) bool { return hasCode(err, "order_conflict") }

// IsNotFound reports whether err says the order does not exist.
func IsNotFound(err error) bool { return hasCode(err, "order_not_found") }

// IsInvalidTransition reports whether err says the status machine forbids
// the change.
func IsInvalidTransition(err error) bool { return hasCode(err, "invalid_transition") }

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// retryable: the answers worth another try of the same request.
func retryable(status int) bool {
	switch {
	case status == 0, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return true
	case status >= 500:
		return true
	}
	return false
}

// outcomeKnown: whether an answer proves that nothing of this request was
// stored (or, for 409, that the stored order is another's).
func outcomeKnown(status int, code string) bool {
	switch {
	case status == 0, status == http.StatusInternalServerError:
		return false
	case status == http.StatusServiceUnavailable:
		return code == "overloaded" || code == "shutting_down"
	case status >= 500:
		return false // a proxy's 502/504: the server may have committed
	}
	return true
}

// ctxError wraps a context's end as an Error whose outcome is unknown when
// a request was already sent.
func ctxError(ctx context.Context, last *Error, attempts int) *Error {
	if last != nil {
		e := *last
		e.Attempts = attempts
		if e.Err == nil && e.StatusCode == 0 {
			e.Err = context.Cause(ctx)
		}
		return &e
	}
	return &Error{Err: context.Cause(ctx), OutcomeKnown: attempts == 0, Attempts: attempts}
}
