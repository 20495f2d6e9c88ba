package ingest

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

// W3C trace context of a request: read from its traceparent and tracestate
// headers on the routes that change something, validated (order.
// ParseTraceParent, order.AppendTraceState) and copied onto every order or
// status change the request carries, so it reaches the events they produce.
// An invalid traceparent is ignored, never answered 4xx, and its
// tracestate with it; an invalid tracestate alone is dropped. Both are
// counted in orderflow_trace_context_invalid_total. Nothing here allocates:
// the traceparent lives in a fixed array, the tracestate is validated in a
// stack buffer and copied into the batch arena.

// Tracer starts a span per request when tracing is on (Deps.Tracer; nil:
// off, and the hot path pays one nil check). Implementations must be safe
// for concurrent use.
type Tracer interface {
	// StartRequest starts the span of one request, named name, at start: a
	// child of parent when parent is valid, else the root of a new trace.
	// It returns the span's own context as a traceparent, which the
	// request's changes then carry (so consumers of their events continue
	// the trace), and a function that ends the span with the response's
	// status code, to be called once.
	StartRequest(name string, parent order.TraceParent, start time.Time) (order.TraceParent, func(status int))
}

// reqTrace is a request's trace context as the handlers see it.
type reqTrace struct {
	// parent is the traceparent the request's changes carry: the incoming
	// one, or with tracing on the request span's; zero for none.
	parent order.TraceParent
	// state: the incoming traceparent was valid, so its tracestate is read.
	state bool
}

// Header names, as fasthttp's PeekAll normalizes them.
const (
	hdrTraceParent = "traceparent"
	hdrTraceState  = "tracestate"
)

// traceLabel indexes orderflow_trace_context_invalid_total's header label.
type traceLabel uint8

const (
	traceLabelParent traceLabel = iota
	traceLabelState
	numTraceLabels
)

var traceLabelNames = [numTraceLabels]string{hdrTraceParent, hdrTraceState}

// requestTrace reads the request's traceparent: none when absent, and
// ignored (counted) when invalid or sent more than once (W3C: a duplicated
// traceparent restarts the trace).
func (s *Server) requestTrace(ctx *fasthttp.RequestCtx) reqTrace {
	vals := ctx.Request.Header.PeekAll(hdrTraceParent)
	if len(vals) == 0 {
		return reqTrace{}
	}
	if len(vals) == 1 {
		if p, ok := order.ParseTraceParent(vals[0]); ok {
			return reqTrace{parent: p, state: true}
		}
	}
	s.traceInvalid[traceLabelParent].Inc()
	return reqTrace{}
}

// traceState validates the request's tracestate headers (several form one
// list) into buf and returns the list: nil when tc says not to read it,
// when there is none, or when it is invalid (counted). The result is a view
// of buf.
func (s *Server) traceState(ctx *fasthttp.RequestCtx, tc *reqTrace, buf *[order.MaxTraceStateLen]byte) []byte {
	if !tc.state {
		return nil
	}
	vals := ctx.Request.Header.PeekAll(hdrTraceState)
	if len(vals) == 0 {
		return nil
	}
	out, ok := order.AppendTraceState(buf[:0], vals...)
	if !ok {
		s.traceInvalid[traceLabelState].Inc()
		return nil
	}
	return out
}
