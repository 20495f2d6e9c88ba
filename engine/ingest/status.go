package ingest

import (
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
)

// Result labels for orderflow_status_updates_total.
type updateResult uint8

const (
	updApplied updateResult = iota
	updNoop
	updNotFound
	updInvalidTransition
	updInvalid
	updOverloaded
	updFailed
	updTimeout
	numUpdateResults
)

var updateResultNames = [numUpdateResults]string{"applied", "noop", "not_found", "invalid_transition", "invalid", "overloaded", "failed", "timeout"}

// updateStatus handles POST /v1/orders/{id}/status.
func (s *Server) updateStatus(ctx *fasthttp.RequestCtx, received time.Time) {
	path := ctx.Path()
	id := path[len(pathOrdersPrefix) : len(path)-len(suffixStatus)]
	if !validID(id) {
		s.updates[updNotFound].Inc()
		s.writeError(ctx, fasthttp.StatusNotFound, "order_not_found", "no order with this id", "")
		return
	}
	if s.shutting.Load() {
		s.updates[updOverloaded].Inc()
		s.overloaded(ctx, "shutting_down", "server is shutting down; retry on another instance")
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		s.updates[updInvalid].Inc()
		s.writeError(ctx, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", "")
		return
	}
	body, ok := s.body(ctx, s.cfg.MaxBodyBytes)
	if !ok {
		s.updates[updInvalid].Inc()
		return
	}
	st, err := order.DecodeStatus(body)
	if err != nil {
		s.updates[updInvalid].Inc()
		code, ecode, msg, field := statusFor(err)
		s.writeError(ctx, code, ecode, msg, field)
		return
	}
	cost := bodyCost(ctx, body)
	if !s.admit(cost) {
		s.updates[updOverloaded].Inc()
		s.overloaded(ctx, "overloaded", msgOverloaded)
		return
	}
	defer s.release(cost)
	b := order.GetUpdateBatch()
	b.Add(id, st, received)
	if err := s.deps.Updates.TrySubmit(b); err != nil {
		order.PutUpdateBatch(b)
		s.updates[updOverloaded].Inc()
		s.submitRefused(ctx, err)
		return
	}
	if !s.waitDone(b.Done()) {
		s.updates[updTimeout].Inc()
		s.unavailable(ctx, "commit_timeout", "the status change was not confirmed in time; retry it")
		return // the batch's fate is unknown: not returned to the pool
	}
	code, out := s.answerUpdate(&b.Updates[0], getBuf())
	if code == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesKV(hdrRetryAfter, s.retryAfter)
	}
	s.writeJSON(ctx, code, *out)
	putBuf(out)
	order.PutUpdateBatch(b)
}

// submitRefused answers a TrySubmit error: 503 with Retry-After.
func (s *Server) submitRefused(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, pipeline.ErrClosed) {
		s.overloaded(ctx, "shutting_down", "server is shutting down; retry on another instance")
		return
	}
	s.m.AdmissionRejected.WithLabelValues("queue_full").Inc()
	s.overloaded(ctx, "overloaded", msgOverloaded)
}

// waitDone waits for a submitted batch until AckTimeout. It reports false
// on timeout.
func (s *Server) waitDone(done <-chan struct{}) bool {
	t := getTimer(s.cfg.AckTimeout)
	defer putTimer(t)
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// answerUpdate renders one status change's answer (status code and JSON
// body, appended to buf) and counts it. Used for single and bulk updates.
func (s *Server) answerUpdate(u *order.Update, buf *[]byte) (int, *[]byte) {
	b := (*buf)[:0]
	var code int
	switch u.Outcome {
	case order.UpdateApplied:
		s.updates[updApplied].Inc()
		code, b = fasthttp.StatusOK, order.AppendStatusResponse(b, u.OrderID, u.Status, u.Version)
	case order.UpdateNoop:
		s.updates[updNoop].Inc()
		code, b = fasthttp.StatusOK, order.AppendStatusResponse(b, u.OrderID, u.Previous, u.Version)
	case order.UpdateNotFound:
		s.updates[updNotFound].Inc()
		code, b = fasthttp.StatusNotFound, order.AppendError(b, "order_not_found", "no order with this id", "")
	case order.UpdateInvalid:
		s.updates[updInvalidTransition].Inc()
		code, b = fasthttp.StatusConflict, order.AppendError(b, "invalid_transition",
			"an order in status "+u.Previous.String()+" cannot move to "+u.Status.String(), "status")
	default:
		s.updates[updFailed].Inc()
		if u.Err != nil {
			s.log.Warn("status change not committed", "err", u.Err)
		}
		code, b = fasthttp.StatusServiceUnavailable, order.AppendError(b, "unavailable", "the status change could not be committed; retry it", "")
	}
	*buf = b
	return code, buf
}
