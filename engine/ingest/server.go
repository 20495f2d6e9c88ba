package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
)

// Orders accepts decoded, priced and sealed order batches for commit
// (the orders pipeline). TrySubmit never blocks.
type Orders interface {
	TrySubmit(b *order.Batch) error
}

// Updates accepts status-change batches for commit (the status pipeline).
// TrySubmit never blocks.
type Updates interface {
	TrySubmit(b *order.UpdateBatch) error
}

// Reader reads committed orders back (the store).
type Reader interface {
	GetOrder(ctx context.Context, id string, dst *order.Order) (found bool, err error)
}

// Prices gives the current catalog snapshot.
type Prices interface {
	PriceBook() order.PriceBook
}

// Deps are the collaborators the front end calls.
type Deps struct {
	Orders  Orders
	Updates Updates
	Reader  Reader
	Prices  Prices
	// Redis, when set, holds the rate limits shared by every instance
	// (Config.PerKeyLimit, PerIPLimit). Nil: each instance limits alone.
	// The Server does not close it.
	Redis redis.UniversalClient
}

// Server is the public HTTP front end: routing, admission control, body
// limits, decoding, pricing, submit-and-wait and the error→status mapping.
// Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg  Config
	deps Deps
	m    *metrics.Metrics
	log  *slog.Logger
	srv  *fasthttp.Server

	sem        chan struct{} // admission slots; capacity = MaxInflight
	bodyBytes  atomic.Int64  // body bytes held by admitted requests; ≤ MaxInflightBodyBytes unless one alone
	guard      *guard        // nil: no auth and no rate limits (the hot path pays one nil check)
	rejLimit   prometheus.Counter
	rejBytes   prometheus.Counter
	retryAfter []byte
	routes     [numRoutes]routeMetrics
	orders     [numResults]prometheus.Counter
	updates    [numUpdateResults]prometheus.Counter
	shutting   atomic.Bool
}

// New returns a Server. It validates cfg (zero fields take defaults).
func New(cfg Config, deps Deps, m *metrics.Metrics, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if deps.Orders == nil || deps.Updates == nil || deps.Reader == nil || deps.Prices == nil {
		return nil, errors.New("ingest: Deps.Orders, Deps.Updates, Deps.Reader and Deps.Prices are required")
	}
	s := &Server{
		cfg:        cfg,
		deps:       deps,
		m:          m,
		log:        log,
		sem:        make(chan struct{}, cfg.MaxInflight),
		retryAfter: []byte(strconv.Itoa(max(1, int((cfg.RetryAfter+time.Second-1)/time.Second)))),
	}
	m.InFlightCapacity.Set(float64(cfg.MaxInflight))
	s.rejLimit = m.AdmissionRejected.WithLabelValues("limit")
	s.rejBytes = m.AdmissionRejected.WithLabelValues("body_bytes")
	s.guard = newGuard(&cfg, deps.Redis, m, log)
	if len(cfg.APIKeys) == 0 {
		log.Warn("authentication is off: no API keys configured (-auth.keys-file or ORDERFLOW_API_KEYS); every request is anonymous")
	} else {
		log.Info("authentication on", "api_keys", len(cfg.APIKeys))
	}
	log.Info("rate limits", "per_key", cfg.PerKeyLimit.String(), "per_ip", cfg.PerIPLimit.String(), "shared_in_redis", deps.Redis != nil)
	for r := range s.routes {
		s.routes[r].init(m, routeNames[r])
	}
	for r := range s.orders {
		s.orders[r] = m.Orders.WithLabelValues(resultNames[r])
	}
	for r := range s.updates {
		s.updates[r] = m.StatusUpdates.WithLabelValues(updateResultNames[r])
	}
	s.srv = &fasthttp.Server{
		Name:                  "orderflow",
		Handler:               s.handle,
		ErrorHandler:          s.handleTransportError,
		HeaderReceived:        s.headerReceived,
		Concurrency:           cfg.MaxConns,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		MaxRequestBodySize:    cfg.MaxBatchBodyBytes,
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// The body must be read whole before the handler runs: with
		// streaming on, MaxRequestBodySize becomes a prefetch size.
		StreamRequestBody:            false,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{log},
	}
	return s, nil
}

// Handler returns the request handler, for serving on a listener of the
// caller's choice (tests use fasthttputil.InmemoryListener through Serve).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown. It blocks.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(ln)
}

// Shutdown stops accepting connections, lets requests in progress finish
// (their commits included) and closes idle keep-alive connections. It
// returns when all connections are closed or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	return s.srv.ShutdownWithContext(ctx)
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}

// Routes, for metrics labels and per-route body limits.
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

var routeNames = [numRoutes]string{"create_order", "get_order", "update_status", "order_batches", "status_updates", "other"}

var (
	pathOrders        = []byte("/v1/orders")
	pathOrdersPrefix  = []byte("/v1/orders/")
	pathOrderBatches  = []byte("/v1/order-batches")
	pathStatusUpdates = []byte("/v1/status-updates")
	suffixStatus      = []byte("/status")
	methodPost        = []byte(fasthttp.MethodPost)
	methodGet         = []byte(fasthttp.MethodGet)
)

func routeOf(method, path []byte) route {
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
	switch routeOf(h.Method(), uri) {
	case routeCreateOrder, routeUpdateStatus:
		return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxBodyBytes}
	}
	return fasthttp.RequestConfig{}
}

// handleTransportError answers errors fasthttp meets before the handler
// runs. fasthttp's default answers 400 to a too-large body; the contract
// says 413.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	var code int
	var ecode, msg string
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code, ecode, msg = fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the size limit"
	case errors.As(err, &small):
		code, ecode, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers exceed the size limit"
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			code, ecode, msg = fasthttp.StatusRequestTimeout, "request_timeout", "request not received in time"
		} else {
			code, ecode, msg = fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request"
		}
	}
	ctx.Response.Reset()
	ctx.SetConnectionClose()
	s.writeError(ctx, code, ecode, msg, "")
	s.routes[routeOther].observe(code, 0)
}

// handle is the fasthttp entry point: route, recover, count.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	r := routeOf(ctx.Method(), ctx.Path())
	defer func() {
		if p := recover(); p != nil {
			s.m.HandlerPanics.Inc()
			s.log.Error("handler panic; answered 500", "route", routeNames[r], "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			s.writeError(ctx, fasthttp.StatusInternalServerError, "internal_error", "internal server error", "")
		}
		s.routes[r].observe(ctx.Response.StatusCode(), time.Since(start))
	}()
	if s.guard != nil && !s.guard.check(s, ctx) {
		return
	}
	method := ctx.Method()
	switch r {
	case routeCreateOrder:
		if !bytes.Equal(method, methodPost) {
			s.methodNotAllowed(ctx, fasthttp.MethodPost)
			return
		}
		s.createOrder(ctx, start)
	case routeGetOrder:
		if !bytes.Equal(method, methodGet) {
			s.methodNotAllowed(ctx, fasthttp.MethodGet)
			return
		}
		s.getOrder(ctx)
	case routeUpdateStatus:
		if !bytes.Equal(method, methodPost) {
			s.methodNotAllowed(ctx, fasthttp.MethodPost)
			return
		}
		s.updateStatus(ctx, start)
	case routeOrderBatches:
		if !bytes.Equal(method, methodPost) {
			s.methodNotAllowed(ctx, fasthttp.MethodPost)
			return
		}
		s.orderBatches(ctx, start)
	case routeStatusUpdates:
		if !bytes.Equal(method, methodPost) {
			s.methodNotAllowed(ctx, fasthttp.MethodPost)
			return
		}
		s.statusUpdates(ctx, start)
	default:
		s.writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such endpoint", "")
	}
}

func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	s.writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint", "")
}

// admit charges a request's body bytes (cost, see bodyCost) against
// MaxInflightBodyBytes, then takes an admission slot. It fails fast on the
// bytes (503 at once: waiting would hold the body longer) and waits at most
// MaxQueueWait for a slot. It reports false when the request must be
// answered 503; on true, follow with release(cost).
func (s *Server) admit(cost int64) bool {
	if !s.acquireBytes(cost) {
		return false
	}
	if !s.acquire() {
		s.bodyBytes.Add(-cost)
		return false
	}
	return true
}

// release gives back what admit took.
func (s *Server) release(cost int64) {
	s.bodyBytes.Add(-cost)
	<-s.sem
	s.m.InFlightRequests.Dec()
}

// acquireBytes adds n to the body bytes in flight unless that would pass
// the cap; a request is always let in when no body is held, so a body
// larger than the cap is not refused forever.
func (s *Server) acquireBytes(n int64) bool {
	if n == 0 {
		return true
	}
	for {
		cur := s.bodyBytes.Load()
		if cur > 0 && cur+n > s.cfg.MaxInflightBodyBytes {
			s.rejBytes.Inc()
			return false
		}
		if s.bodyBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// bodyCost is what a request's body holds in memory: the raw body plus,
// when it was gunzipped, the decompressed copy.
func bodyCost(ctx *fasthttp.RequestCtx, body []byte) int64 {
	n := int64(len(ctx.Request.Body()))
	if len(body) > 0 && len(ctx.Request.Header.ContentEncoding()) > 0 && !bytes.EqualFold(ctx.Request.Header.ContentEncoding(), encIdentity) {
		n += int64(len(body))
	}
	return n
}

// acquire takes an admission slot: a non-blocking try first, then a wait of
// at most MaxQueueWait. It reports false when no slot came in time.
func (s *Server) acquire() bool {
	select {
	case s.sem <- struct{}{}:
		s.m.InFlightRequests.Inc()
		return true
	default:
	}
	t := getTimer(s.cfg.MaxQueueWait)
	defer putTimer(t)
	select {
	case s.sem <- struct{}{}:
		s.m.InFlightRequests.Inc()
		return true
	case <-t.C:
		s.rejLimit.Inc()
		return false
	}
}

// Result labels for orderflow_orders_total.
type result uint8

const (
	resCreated result = iota
	resDuplicate
	resConflict
	resInvalid
	resUnprocessable
	resRejected
	resOverloaded
	resFailed
	resTimeout
	numResults
)

var resultNames = [numResults]string{"created", "duplicate", "conflict", "invalid", "unprocessable", "rejected", "overloaded", "failed", "timeout"}

var (
	ctJSON          = []byte("application/json")
	hdrLocation     = []byte("Location")
	hdrRetryAfter   = []byte("Retry-After")
	hdrIdemKey      = []byte("Idempotency-Key")
	encGzip         = []byte("gzip")
	encIdentity     = []byte("identity")
	locationPrefix  = []byte("/v1/orders/")
	msgConflict     = "order id or Idempotency-Key is already used by a different order"
	msgOverloaded   = "server overloaded; retry later"
	msgUnavailable  = "the order could not be committed; retry with the same id"
	msgUnstorable   = "the order contains a value the database cannot store"
	msgCommitTimout = "the order was not confirmed in time; retry with the same id"
)

// createOrder handles POST /v1/orders.
func (s *Server) createOrder(ctx *fasthttp.RequestCtx, received time.Time) {
	if s.shutting.Load() {
		s.overloaded(ctx, "shutting_down", "server is shutting down; retry on another instance")
		s.orders[resOverloaded].Inc()
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		s.writeError(ctx, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", "")
		s.orders[resInvalid].Inc()
		return
	}
	key := ctx.Request.Header.PeekBytes(hdrIdemKey)
	if key != nil && !validIdempotencyKey(key) {
		s.writeError(ctx, fasthttp.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1-128 visible ASCII characters", "")
		s.orders[resInvalid].Inc()
		return
	}
	body, ok := s.body(ctx, s.cfg.MaxBodyBytes)
	if !ok {
		s.orders[resInvalid].Inc()
		return
	}
	cost := bodyCost(ctx, body)
	if !s.admit(cost) {
		s.overloaded(ctx, "overloaded", msgOverloaded)
		s.orders[resOverloaded].Inc()
		return
	}
	defer s.release(cost)

	b := order.GetBatch()
	o, err := b.DecodeOrder(body, received, key)
	if err == nil {
		err = o.Price(s.deps.Prices.PriceBook())
	}
	if err != nil {
		s.clientError(ctx, err)
		order.PutBatch(b)
		return
	}
	b.Seal(o)
	if err := s.deps.Orders.TrySubmit(b); err != nil {
		order.PutBatch(b)
		if errors.Is(err, pipeline.ErrClosed) {
			s.overloaded(ctx, "shutting_down", "server is shutting down; retry on another instance")
		} else {
			s.m.AdmissionRejected.WithLabelValues("queue_full").Inc()
			s.overloaded(ctx, "overloaded", msgOverloaded)
		}
		s.orders[resOverloaded].Inc()
		return
	}
	t := getTimer(s.cfg.AckTimeout)
	select {
	case <-b.Done():
		putTimer(t)
	case <-t.C:
		putTimer(t)
		// The batch's fate is unknown: it may still commit. Do not
		// return it to the pool; the GC takes it once the writer is done.
		s.orders[resTimeout].Inc()
		s.unavailable(ctx, "commit_timeout", msgCommitTimout)
		return
	}
	s.answerOrder(ctx, o)
	order.PutBatch(b)
}

// answerOrder writes the response for a committed (or refused) order.
func (s *Server) answerOrder(ctx *fasthttp.RequestCtx, o *order.Order) {
	res := &o.Result
	switch res.Outcome {
	case order.OutcomeCreated:
		s.orders[resCreated].Inc()
		loc := getBuf()
		*loc = append(append((*loc)[:0], locationPrefix...), o.ID...)
		ctx.Response.Header.SetBytesKV(hdrLocation, *loc)
		putBuf(loc)
		s.writeCreated(ctx, fasthttp.StatusCreated, o.ID, order.StatusCreated, o.TotalCents, o.Currency)
	case order.OutcomeDuplicate:
		s.orders[resDuplicate].Inc()
		s.writeCreated(ctx, fasthttp.StatusOK, o.ID, res.Status, res.TotalCents, o.Currency)
	case order.OutcomeConflict:
		s.orders[resConflict].Inc()
		s.writeError(ctx, fasthttp.StatusConflict, "order_conflict", msgConflict, "")
	case order.OutcomeRejected:
		s.orders[resRejected].Inc()
		s.log.Warn("order refused by the database", "err", res.Err)
		s.writeError(ctx, fasthttp.StatusBadRequest, "unstorable_value", msgUnstorable, "")
	default:
		s.orders[resFailed].Inc()
		if res.Err != nil {
			s.log.Warn("order not committed", "err", res.Err)
		}
		s.unavailable(ctx, "unavailable", msgUnavailable)
	}
}

// clientError maps a decode or pricing error to its 4xx (statusFor).
func (s *Server) clientError(ctx *fasthttp.RequestCtx, err error) {
	code, ecode, msg, field := statusFor(err)
	if code == fasthttp.StatusUnprocessableEntity {
		s.orders[resUnprocessable].Inc()
	} else {
		s.orders[resInvalid].Inc()
	}
	if code >= 500 {
		s.log.Error("unexpected error on the request path", "err", err)
	}
	s.writeError(ctx, code, ecode, msg, field)
}

// statusFor is the one mapping from errors to HTTP answers: validation →
// 400, catalog rule → 422, overload/closed → 503, anything else → 500
// with a generic message (details go to the log, never to the client).
func statusFor(err error) (code int, ecode, msg, field string) {
	var ve *order.ValidationError
	var ce *order.CatalogError
	switch {
	case errors.As(err, &ve):
		return fasthttp.StatusBadRequest, ve.Code, ve.Message, ve.Field
	case errors.As(err, &ce):
		return fasthttp.StatusUnprocessableEntity, ce.Code, ce.Message, ce.Field
	case errors.Is(err, pipeline.ErrOverloaded):
		return fasthttp.StatusServiceUnavailable, "overloaded", msgOverloaded, ""
	case errors.Is(err, pipeline.ErrClosed):
		return fasthttp.StatusServiceUnavailable, "shutting_down", "server is shutting down; retry on another instance", ""
	case errors.Is(err, context.DeadlineExceeded):
		return fasthttp.StatusServiceUnavailable, "unavailable", "the database did not answer in time; retry later", ""
	}
	return fasthttp.StatusInternalServerError, "internal_error", "internal server error", ""
}

// body returns the request body, un-gzipped when Content-Encoding says so,
// and enforces limit on the decompressed size. It answers the request and
// returns ok=false when the body cannot be used. The returned slice is
// valid only until the handler returns.
func (s *Server) body(ctx *fasthttp.RequestCtx, limit int) ([]byte, bool) {
	enc := ctx.Request.Header.ContentEncoding()
	raw := ctx.PostBody()
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, encIdentity):
		if len(raw) > limit {
			s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds "+strconv.Itoa(limit)+" bytes", "")
			return nil, false
		}
		return raw, true
	case bytes.EqualFold(enc, encGzip):
		out, err := ctx.Request.BodyGunzipWithLimit(limit)
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large", "decompressed request body exceeds "+strconv.Itoa(limit)+" bytes", "")
			return nil, false
		}
		if err != nil {
			s.writeError(ctx, fasthttp.StatusBadRequest, "invalid_gzip", "request body is not valid gzip", "")
			return nil, false
		}
		return out, true
	default:
		s.writeError(ctx, fasthttp.StatusUnsupportedMediaType, "unsupported_encoding", "Content-Encoding must be gzip or identity", "")
		return nil, false
	}
}

// getOrder handles GET /v1/orders/{id}.
func (s *Server) getOrder(ctx *fasthttp.RequestCtx) {
	id := ctx.Path()[len(pathOrdersPrefix):]
	if !validID(id) {
		s.writeError(ctx, fasthttp.StatusNotFound, "order_not_found", "no order with this id", "")
		return
	}
	if !s.admit(0) {
		s.overloaded(ctx, "overloaded", msgOverloaded)
		return
	}
	defer s.release(0)
	// Not the RequestCtx: its Done closes only at server shutdown.
	qctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	var o order.Order
	found, err := s.deps.Reader.GetOrder(qctx, string(id), &o)
	if err != nil {
		s.log.Warn("read order", "err", err)
		s.unavailable(ctx, "unavailable", "the database did not answer; retry later")
		return
	}
	if !found {
		s.writeError(ctx, fasthttp.StatusNotFound, "order_not_found", "no order with this id", "")
		return
	}
	buf := getBuf()
	*buf = o.AppendJSON((*buf)[:0])
	s.writeJSON(ctx, fasthttp.StatusOK, *buf)
	putBuf(buf)
}

func (s *Server) overloaded(ctx *fasthttp.RequestCtx, ecode, msg string) {
	ctx.Response.Header.SetBytesKV(hdrRetryAfter, s.retryAfter)
	s.writeError(ctx, fasthttp.StatusServiceUnavailable, ecode, msg, "")
}

func (s *Server) unavailable(ctx *fasthttp.RequestCtx, ecode, msg string) {
	ctx.Response.Header.SetBytesKV(hdrRetryAfter, s.retryAfter)
	s.writeError(ctx, fasthttp.StatusServiceUnavailable, ecode, msg, "")
}

func (s *Server) writeCreated(ctx *fasthttp.RequestCtx, code int, id string, st order.Status, total int64, currency string) {
	buf := getBuf()
	*buf = order.AppendCreatedResponse((*buf)[:0], id, st, total, currency)
	s.writeJSON(ctx, code, *buf)
	putBuf(buf)
}

func (s *Server) writeError(ctx *fasthttp.RequestCtx, code int, ecode, msg, field string) {
	buf := getBuf()
	*buf = order.AppendError((*buf)[:0], ecode, msg, field)
	s.writeJSON(ctx, code, *buf)
	putBuf(buf)
}

// writeJSON sets the status and a JSON body (copied into the response).
func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, code int, body []byte) {
	ctx.SetStatusCode(code)
	ctx.Response.Header.SetContentTypeBytes(ctJSON)
	ctx.Response.ResetBody()
	ctx.Response.AppendBody(body)
}

// isJSON reports whether a Content-Type names application/json (parameters
// such as charset allowed, case-insensitive).
func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), ctJSON)
}

// validID reports whether id is a possible order id (1–64 of
// A-Z a-z 0-9 _ - . :); anything else cannot exist, so GET answers 404
// without a query.
func validID(id []byte) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// validIdempotencyKey: 1–128 visible ASCII characters.
func validIdempotencyKey(k []byte) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// routeMetrics holds a route's per-code collectors, resolved once so the
// hot path does no label lookups.
type routeMetrics struct {
	name     string
	m        *metrics.Metrics
	counters map[int]prometheus.Counter
	hists    map[int]prometheus.Observer
}

var knownCodes = []int{200, 201, 400, 401, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500, 503}

func (r *routeMetrics) init(m *metrics.Metrics, name string) {
	r.name, r.m = name, m
	r.counters = make(map[int]prometheus.Counter, len(knownCodes))
	r.hists = make(map[int]prometheus.Observer, len(knownCodes))
	for _, c := range knownCodes {
		code := strconv.Itoa(c)
		r.counters[c] = m.HTTPRequests.WithLabelValues(name, code)
		r.hists[c] = m.HTTPDuration.WithLabelValues(name, code)
	}
}

func (r *routeMetrics) observe(code int, d time.Duration) {
	c, ok := r.counters[code]
	if !ok { // a code outside the known set: slow path, still counted
		code := strconv.Itoa(code)
		r.m.HTTPRequests.WithLabelValues(r.name, code).Inc()
		r.m.HTTPDuration.WithLabelValues(r.name, code).Observe(d.Seconds())
		return
	}
	c.Inc()
	r.hists[code].Observe(d.Seconds())
}

// Scratch buffers for response bodies. Buffers above 64 KiB are dropped
// instead of pooled (a large GET must not pin memory).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Timers for bounded waits, reused: since Go 1.23 Stop and Reset leave no
// stale value in the channel, so a pooled timer is safe to re-arm.
var timerPool sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timerPool.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timerPool.Put(t)
}
