package ingest

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

// The single status change: POST /v1/orders/{id}/status.

// updateStatus handles POST /v1/orders/{id}/status.
func (s *Server) updateStatus(ctx *fasthttp.RequestCtx, received time.Time, tc reqTrace) {
	path := ctx.Path()
	id := path[len(pathOrdersPrefix) : len(path)-len(suffixStatus)]
	if !validID(id) {
		s.updates[updNotFound].Inc()
		s.writeAnswer(ctx, ansNoOrder)
		return
	}
	if s.shutting.Load() {
		s.refuseUpdate(ctx, refusalAnswer(refusedShuttingDown))
		return
	}
	if !isJSON(ctx.Request.Header.ContentType()) {
		s.refuseUpdate(ctx, ansNotJSON)
		return
	}
	body, ok := s.body(ctx, s.cfg.MaxBodyBytes)
	if !ok {
		s.updates[updInvalid].Inc()
		return
	}
	st, err := order.DecodeStatus(body)
	if err != nil {
		s.refuseUpdate(ctx, statusFor(err))
		return
	}
	cost := bodyCost(ctx, body)
	if !s.admit(cost) {
		s.refuseUpdate(ctx, refusalAnswer(refusedOverloaded))
		return
	}
	defer s.release(cost)
	b := order.GetUpdateBatch()
	row := b.Add(id, st, received)
	var stateBuf [order.MaxTraceStateLen]byte
	b.Updates[row].TraceParent = tc.parent
	b.Updates[row].TraceState = b.Arena().CopyString(s.traceState(ctx, &tc, &stateBuf))
	if err := s.deps.Updates.TrySubmit(b); err != nil {
		order.PutUpdateBatch(b)
		s.refuseUpdate(ctx, s.submitRefused(err))
		return
	}
	if !s.waitDone(b.Done()) {
		s.updates[updTimeout].Inc()
		s.writeAnswer(ctx, ansUpdateTimeout)
		return // the batch's fate is unknown: not returned to the pool
	}
	u := &b.Updates[0]
	if a := s.noteUpdate(u); a.code != "" {
		s.writeAnswer(ctx, a)
	} else {
		cur := u.Status // applied: the new status; a no-op: the status it already had
		if u.Outcome == order.UpdateNoop {
			cur = u.Previous
		}
		buf := getBuf()
		*buf = order.AppendStatusResponse((*buf)[:0], u.OrderID, cur, u.Version)
		writeJSON(ctx, a.status, *buf)
		putBuf(buf)
	}
	order.PutUpdateBatch(b)
}

// refuseUpdate answers a status change refused before its commit and
// counts it.
func (s *Server) refuseUpdate(ctx *fasthttp.RequestCtx, a answer) {
	s.updates[updateRefused(a)].Inc()
	s.writeAnswer(ctx, a)
}

// noteUpdate counts (and, for a failure, logs) the store's verdict on one
// status change and returns its answer (updateAnswer).
func (s *Server) noteUpdate(u *order.Update) answer {
	a, label := updateAnswer(u)
	s.updates[label].Inc()
	if label == updFailed && u.Err != nil {
		s.log.Warn("status change not committed", "err", u.Err)
	}
	return a
}
