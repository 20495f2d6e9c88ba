package ingest

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

// The single-order endpoints: POST /v1/orders and GET /v1/orders/{id}.

var (
	hdrLocation    = []byte("Location")
	hdrIdemKey     = []byte("Idempotency-Key")
	locationPrefix = []byte("/v1/orders/")
)

// orderDecoder decodes one order body into a batch, as
// (*order.Batch).DecodeOrder does.
type orderDecoder func(b *order.Batch, body []byte, receivedAt time.Time, idempotencyKey []byte) (*order.Order, error)

// decoderFor returns the order decoder Config.Decoder names (a validated,
// filled Config): the strict scanner or the jsoniter-based one. It decodes
// single orders and bulk order items; status-change bodies and the bulk
// splitters have one implementation.
func decoderFor(name string) orderDecoder {
	if name == DecoderJsoniter {
		return (*order.Batch).DecodeOrderJsoniter
	}
	return (*order.Batch).DecodeOrder
}

// createOrder handles POST /v1/orders.
func (s *Server) createOrder(ctx *fasthttp.RequestCtx, received time.Time, tc reqTrace) {
	if s.shutting.Load() {
		s.refuseOrder(ctx, refusalAnswer(refusedShuttingDown))
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		s.refuseOrder(ctx, ansNotJSON)
		return
	}
	key := ctx.Request.Header.PeekBytes(hdrIdemKey)
	if key != nil && !validIdempotencyKey(key) {
		s.refuseOrder(ctx, ansBadIdemKey)
		return
	}
	body, ok := s.body(ctx, s.cfg.MaxBodyBytes)
	if !ok {
		s.orders[resInvalid].Inc()
		return
	}
	cost := bodyCost(ctx, body)
	if !s.admit(cost) {
		s.refuseOrder(ctx, refusalAnswer(refusedOverloaded))
		return
	}
	defer s.release(cost)

	b := order.GetBatch()
	o, err := s.decode(b, body, received, key)
	if err == nil {
		err = o.Price(s.deps.Prices.PriceBook())
	}
	if err != nil {
		a := statusFor(err)
		if a.status >= 500 {
			s.log.Error("unexpected error on the request path", "err", err)
		}
		s.refuseOrder(ctx, a)
		order.PutBatch(b)
		return
	}
	var stateBuf [order.MaxTraceStateLen]byte
	o.TraceParent = tc.parent
	o.TraceState = b.Arena().CopyString(s.traceState(ctx, &tc, &stateBuf))
	b.Seal(o)
	if err := s.deps.Orders.TrySubmit(b); err != nil {
		order.PutBatch(b)
		s.refuseOrder(ctx, s.submitRefused(err))
		return
	}
	if !s.waitDone(b.Done()) {
		s.orders[resTimeout].Inc()
		s.writeAnswer(ctx, ansOrderTimeout)
		return // the batch's fate is unknown: not returned to the pool
	}
	a := s.noteOrder(&o.Result)
	switch {
	case a.code != "":
		s.writeAnswer(ctx, a)
	case a.status == fasthttp.StatusCreated:
		loc := getBuf()
		*loc = append(append((*loc)[:0], locationPrefix...), o.ID...)
		ctx.Response.Header.SetBytesKV(hdrLocation, *loc)
		putBuf(loc)
		writeCreated(ctx, a.status, o.ID, order.StatusCreated, o.TotalCents, o.Currency)
	default: // a duplicate: the stored order's status and total
		writeCreated(ctx, a.status, o.ID, o.Result.Status, o.Result.TotalCents, o.Currency)
	}
	order.PutBatch(b)
}

// refuseOrder answers an order refused before its commit and counts it.
func (s *Server) refuseOrder(ctx *fasthttp.RequestCtx, a answer) {
	s.orders[orderRefused(a)].Inc()
	s.writeAnswer(ctx, a)
}

// noteOrder counts (and, for a refusal or failure, logs) the store's
// verdict on one order and returns its answer (orderAnswer).
func (s *Server) noteOrder(res *order.Result) answer {
	a, label := orderAnswer(res)
	s.orders[label].Inc()
	switch {
	case label == resRejected:
		s.log.Warn("order refused by the database", "err", res.Err)
	case label == resFailed && res.Err != nil:
		s.log.Warn("order not committed", "err", res.Err)
	}
	return a
}

func writeCreated(ctx *fasthttp.RequestCtx, code int, id string, st order.Status, total int64, currency string) {
	buf := getBuf()
	*buf = order.AppendCreatedResponse((*buf)[:0], id, st, total, currency)
	writeJSON(ctx, code, *buf)
	putBuf(buf)
}

// getOrder handles GET /v1/orders/{id}.
func (s *Server) getOrder(ctx *fasthttp.RequestCtx, _ time.Time, _ reqTrace) {
	id := ctx.Path()[len(pathOrdersPrefix):]
	if !validID(id) {
		s.writeAnswer(ctx, ansNoOrder)
		return
	}
	if !s.admit(0) {
		s.writeAnswer(ctx, refusalAnswer(refusedOverloaded))
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
		s.writeAnswer(ctx, ansReadFailed)
		return
	}
	if !found {
		s.writeAnswer(ctx, ansNoOrder)
		return
	}
	buf := getBuf()
	*buf = o.AppendJSON((*buf)[:0])
	writeJSON(ctx, fasthttp.StatusOK, *buf)
	putBuf(buf)
}
