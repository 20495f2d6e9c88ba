package ingest

import (
	"bytes"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"
)

// route is an endpoint of the public API, an index into routes.
type route uint8

const (
	routeCreateOrder route = iota
	routeGetOrder
	routeUpdateStatus
	routeOrderBatches
	routeStatusUpdates
	routeOther
	numRoutes
)

// routeSpec is one row of the route table.
type routeSpec struct {
	name   string // the route label of the HTTP metrics
	method []byte // the one method served; any other is answered 405 with Allow
	// single: the body limit is MaxBodyBytes (one order or status change);
	// otherwise MaxBatchBodyBytes, fasthttp's limit.
	single bool
	// traced: the route changes something, so the request's trace context
	// is read (trace.go) and carried to the events of its changes.
	traced bool
	span   string                                                                     // the request span's name (tracing on)
	serve  func(s *Server, ctx *fasthttp.RequestCtx, received time.Time, tc reqTrace) // nil: 404
}

// routes is the route table: what handle and headerReceived look up.
var routes = [numRoutes]routeSpec{
	routeCreateOrder:   {name: "create_order", method: methodPost, single: true, traced: true, span: "POST /v1/orders", serve: (*Server).createOrder},
	routeGetOrder:      {name: "get_order", method: methodGet, span: "GET /v1/orders/{id}", serve: (*Server).getOrder},
	routeUpdateStatus:  {name: "update_status", method: methodPost, single: true, traced: true, span: "POST /v1/orders/{id}/status", serve: (*Server).updateStatus},
	routeOrderBatches:  {name: "order_batches", method: methodPost, traced: true, span: "POST /v1/order-batches", serve: (*Server).orderBatches},
	routeStatusUpdates: {name: "status_updates", method: methodPost, traced: true, span: "POST /v1/status-updates", serve: (*Server).statusUpdates},
	routeOther:         {name: "other", span: "HTTP"},
}

var (
	pathOrders        = []byte("/v1/orders")
	pathOrdersPrefix  = []byte("/v1/orders/")
	pathOrderBatches  = []byte("/v1/order-batches")
	pathStatusUpdates = []byte("/v1/status-updates")
	suffixStatus      = []byte("/status")
	methodPost        = []byte(fasthttp.MethodPost)
	methodGet         = []byte(fasthttp.MethodGet)
	hdrAllow          = []byte("Allow")
)

// routeOf finds the route of a path (without its query string).
func routeOf(path []byte) route {
	switch {
	case bytes.Equal(path, pathOrders):
		return routeCreateOrder
	case bytes.Equal(path, pathOrderBatches):
		return routeOrderBatches
	case bytes.Equal(path, pathStatusUpdates):
		return routeStatusUpdates
	case bytes.HasPrefix(path, pathOrdersPrefix):
		rest := path[len(pathOrdersPrefix):]
		if bytes.HasSuffix(rest, suffixStatus) && bytes.IndexByte(rest[:len(rest)-len(suffixStatus)], '/') < 0 {
			return routeUpdateStatus
		}
		if bytes.IndexByte(rest, '/') < 0 {
			return routeGetOrder
		}
	}
	return routeOther
}

// headerReceived applies the per-route body limit before the body is read,
// so an oversized single order is refused without buffering 16 MiB.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := h.RequestURI()
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i] // a query string must not lift the single-order limit to the bulk one
	}
	if routes[routeOf(uri)].single {
		return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxBodyBytes}
	}
	return fasthttp.RequestConfig{}
}

// handle is the fasthttp entry point: route, trace context (and the
// request span, tracing on), recover, guard, method check, serve, count.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := routeOf(ctx.Path())
	rt := &routes[r]
	var tc reqTrace
	if rt.traced || s.tracer != nil {
		tc = s.requestTrace(ctx)
	}
	var endSpan func(status int)
	if s.tracer != nil {
		tc.parent, endSpan = s.tracer.StartRequest(rt.span, tc.parent, start)
	}
	defer func() {
		if p := recover(); p != nil {
			s.m.HandlerPanics.Inc()
			s.log.Error("handler panic; answered 500", "route", routes[r].name, "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			s.writeAnswer(ctx, ansInternal)
		}
		s.perRoute[r].observe(ctx.Response.StatusCode(), time.Since(start))
		if endSpan != nil {
			endSpan(ctx.Response.StatusCode())
		}
	}()
	if s.guard != nil && !s.guard.check(s, ctx) {
		return
	}
	switch {
	case rt.serve == nil:
		s.writeAnswer(ctx, ansNoRoute)
	case !bytes.Equal(ctx.Method(), rt.method):
		ctx.Response.Header.SetBytesKV(hdrAllow, rt.method)
		s.writeAnswer(ctx, ansMethodNotAllowed)
	default:
		rt.serve(s, ctx, start, tc)
	}
}

// handleTransportError answers errors fasthttp meets before the handler
// runs (transportAnswer). The request was not read to its end, so the
// connection closes by lingering, unless the client was too slow to send
// it in time (408): a client that slow gets no more time.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Reset()
	a := transportAnswer(err)
	if a.status == fasthttp.StatusRequestTimeout {
		ctx.SetConnectionClose()
	} else {
		lingerOnClose(ctx)
	}
	s.writeAnswer(ctx, a)
	s.perRoute[routeOther].observe(a.status, 0)
}
