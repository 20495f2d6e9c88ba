package ingest

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

var (
	ctNDJSON       = []byte("application/x-ndjson")
	msgTooMany     = "the request holds more items than the limit"
	bulkItemSep    = []byte(`,"results":[`)
	bulkEnd        = []byte("]}")
	bulkIndexKey   = []byte(`{"index":`)
	bulkIDKey      = []byte(`,"id":`)
	bulkStatusKey  = []byte(`,"status":`)
	bulkErrorStart = []byte(`,"error":`)
)

// bulkFormat tells how a bulk body splits into items.
type bulkFormat uint8

const (
	formatNDJSON bulkFormat = iota
	formatArray
)

// bulkBody checks the Content-Type and reads the body of a bulk request.
// It answers the request itself and returns ok=false when it cannot go on.
func (s *Server) bulkBody(ctx *fasthttp.RequestCtx) (body []byte, f bulkFormat, ok bool) {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	switch {
	case bytes.EqualFold(ct, ctNDJSON):
		f = formatNDJSON
	case bytes.EqualFold(ct, ctJSON):
		f = formatArray
	default:
		s.writeError(ctx, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/x-ndjson or application/json", "")
		return nil, 0, false
	}
	body, ok = s.body(ctx, s.cfg.MaxBatchBodyBytes)
	return body, f, ok
}

// bulkAdmit is the common start of both bulk endpoints: refuse while
// shutting down, check the Content-Type, read the body within its limit and
// take an admission slot for it. When ok, the caller must release(cost).
func (s *Server) bulkAdmit(ctx *fasthttp.RequestCtx) (body []byte, f bulkFormat, cost int64, ok bool) {
	if s.shutting.Load() {
		s.overloaded(ctx, "shutting_down", "server is shutting down; retry on another instance")
		return nil, 0, 0, false
	}
	if body, f, ok = s.bulkBody(ctx); !ok {
		return nil, 0, 0, false
	}
	cost = bodyCost(ctx, body)
	if !s.admit(cost) {
		s.overloaded(ctx, "overloaded", msgOverloaded)
		return nil, 0, 0, false
	}
	return body, f, cost, true
}

// split calls fn for each item of body. It reports the number of items, or
// answers 400/413 and returns ok=false when the body cannot be split or holds
// too many items (checked before fn is first called).
func (s *Server) split(ctx *fasthttp.RequestCtx, body []byte, f bulkFormat, fn func(i int, item []byte)) (int, bool) {
	splitter := order.SplitNDJSON
	if f == formatArray {
		splitter = order.SplitArray
	}
	n := 0
	err := splitter(body, func(i int, _ []byte) bool {
		n = i + 1
		return n <= s.cfg.MaxBatchItems
	})
	if err != nil {
		code, ecode, msg, field := statusFor(err)
		s.writeError(ctx, code, ecode, msg, field)
		return 0, false
	}
	if n > s.cfg.MaxBatchItems {
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "too_many_items", msgTooMany+" ("+strconv.Itoa(s.cfg.MaxBatchItems)+")", "")
		return 0, false
	}
	// The first pass found every boundary; this one cannot fail.
	_ = splitter(body, func(i int, item []byte) bool { fn(i, item); return true })
	return n, true
}

// bulkItem is one item's fate inside a bulk request.
type bulkItem struct {
	status           int
	id               string // "" when the item had no readable id
	code, msg, field string // the error, for non-2xx
	batch            int    // index into the request's batches; -1 when never submitted
	row              int    // index into that batch's Orders / Updates
}

// orderBatches handles POST /v1/order-batches: each item is decoded, priced
// and sealed on its own; the valid ones go through the pipeline in batches of
// at most -pipeline.batch-max-rows orders, each one pipeline slot (and so at
// most one transaction), and every item gets its own result in input order.
func (s *Server) orderBatches(ctx *fasthttp.RequestCtx, received time.Time) {
	body, f, cost, ok := s.bulkAdmit(ctx)
	if !ok {
		return
	}
	defer s.release(cost)

	prices := s.deps.Prices.PriceBook()
	var batches []*order.Batch
	var items []bulkItem
	cur := (*order.Batch)(nil)
	_, ok = s.split(ctx, body, f, func(i int, raw []byte) {
		if cur == nil || cur.Len() >= s.cfg.BulkChunkRows {
			cur = order.GetBatch()
			batches = append(batches, cur)
		}
		it := bulkItem{batch: -1}
		o, err := cur.DecodeOrder(raw, received, nil)
		if err == nil {
			it.id = o.ID
			if err = o.Price(prices); err != nil {
				cur.Orders = cur.Orders[:len(cur.Orders)-1] // drop it: DecodeOrder appended it
			}
		}
		if err != nil {
			// it.id stays a view into cur's arena, which lives until the
			// batches are put back after the response is written.
			it.status, it.code, it.msg, it.field = statusFor(err)
			s.orders[resultFor(it.status)].Inc()
		} else {
			cur.Seal(o)
			it.batch, it.row = len(batches)-1, len(cur.Orders)-1
		}
		items = append(items, it)
	})
	if !ok {
		for _, b := range batches {
			order.PutBatch(b)
		}
		return
	}
	if !submitAndWait(s, batches, items, s.deps.Orders.TrySubmit, nil) {
		// Fates unknown: answer 503 for the whole request; the batches are
		// left to the GC. Every item is safe to resend (ids dedupe).
		s.orders[resTimeout].Inc()
		s.unavailable(ctx, "commit_timeout", "the orders were not confirmed in time; resend the request")
		return
	}
	var created, dups, rejected int
	for j := range items {
		it := &items[j]
		if it.batch < 0 {
			rejected++
			continue
		}
		o := &batches[it.batch].Orders[it.row]
		switch o.Result.Outcome {
		case order.OutcomeCreated:
			it.status = fasthttp.StatusCreated
			created++
			s.orders[resCreated].Inc()
		case order.OutcomeDuplicate:
			it.status = fasthttp.StatusOK
			dups++
			s.orders[resDuplicate].Inc()
		case order.OutcomeConflict:
			it.status, it.code, it.msg = fasthttp.StatusConflict, "order_conflict", msgConflict
			rejected++
			s.orders[resConflict].Inc()
		case order.OutcomeRejected:
			it.status, it.code, it.msg = fasthttp.StatusBadRequest, "unstorable_value", msgUnstorable
			rejected++
			s.orders[resRejected].Inc()
		default:
			it.status, it.code, it.msg = fasthttp.StatusServiceUnavailable, "unavailable", msgUnavailable
			rejected++
			s.orders[resFailed].Inc()
		}
	}
	out := appendBulk(make([]byte, 0, 64+48*len(items)), created, dups, rejected, items)
	s.writeJSON(ctx, fasthttp.StatusOK, out)
	for _, b := range batches { // every one completed or never submitted: ours again
		order.PutBatch(b)
	}
}

// resultFor maps a refused item's status to its orders_total label.
func resultFor(code int) result {
	switch code {
	case fasthttp.StatusUnprocessableEntity:
		return resUnprocessable
	case fasthttp.StatusServiceUnavailable:
		return resOverloaded
	}
	return resInvalid
}

// appendBulk renders the bulk response: counts, then one result per item in
// input order. Item ids are read while their batches are still ours.
func appendBulk(dst []byte, created, dups, rejected int, items []bulkItem) []byte {
	dst = append(dst, `{"created":`...)
	dst = strconv.AppendInt(dst, int64(created), 10)
	dst = append(dst, `,"duplicates":`...)
	dst = strconv.AppendInt(dst, int64(dups), 10)
	dst = append(dst, `,"rejected":`...)
	dst = strconv.AppendInt(dst, int64(rejected), 10)
	dst = append(dst, bulkItemSep...)
	for i := range items {
		it := &items[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, bulkIndexKey...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		if it.id != "" {
			dst = append(dst, bulkIDKey...)
			dst = order.AppendString(dst, it.id)
		}
		dst = append(dst, bulkStatusKey...)
		dst = strconv.AppendInt(dst, int64(it.status), 10)
		if it.code != "" {
			dst = append(dst, bulkErrorStart...)
			e := order.AppendError(nil, it.code, it.msg, it.field)
			dst = append(dst, e[len(`{"error":`):len(e)-1]...)
		}
		dst = append(dst, '}')
	}
	return append(dst, bulkEnd...)
}

// statusUpdates handles POST /v1/status-updates: like orderBatches, for
// status changes; each item {"id","status"} gets its own result.
func (s *Server) statusUpdates(ctx *fasthttp.RequestCtx, received time.Time) {
	body, f, cost, ok := s.bulkAdmit(ctx)
	if !ok {
		return
	}
	defer s.release(cost)

	var batches []*order.UpdateBatch
	var items []bulkItem
	var cur *order.UpdateBatch
	var scratch []byte
	_, ok = s.split(ctx, body, f, func(i int, raw []byte) {
		if cur == nil || cur.Len() >= s.cfg.BulkChunkRows {
			cur = order.GetUpdateBatch()
			batches = append(batches, cur)
		}
		it := bulkItem{batch: -1}
		id, st, err := order.DecodeStatusUpdate(raw, scratch[:0])
		if err != nil {
			it.status, it.code, it.msg, it.field = statusFor(err)
			if len(id) > 0 {
				it.id = string(id)
			}
			s.updates[updInvalid].Inc()
		} else {
			row := cur.Add(id, st, received)
			it.id = cur.Updates[row].OrderID
			it.batch, it.row = len(batches)-1, row
		}
		scratch = id[:0]
		items = append(items, it)
	})
	if !ok {
		for _, b := range batches {
			order.PutUpdateBatch(b)
		}
		return
	}
	refused := func(b *order.UpdateBatch) { s.updates[updOverloaded].Add(float64(b.Len())) }
	if !submitAndWait(s, batches, items, s.deps.Updates.TrySubmit, refused) {
		s.updates[updTimeout].Inc()
		s.unavailable(ctx, "commit_timeout", "the status changes were not confirmed in time; resend the request")
		return
	}
	var applied, noops, rejected int
	one := getBuf()
	for j := range items {
		it := &items[j]
		if it.batch < 0 {
			rejected++
			continue
		}
		u := &batches[it.batch].Updates[it.row]
		code, _ := s.answerUpdate(u, one)
		it.status = code
		switch {
		case u.Outcome == order.UpdateApplied:
			applied++
		case u.Outcome == order.UpdateNoop:
			noops++
		default:
			rejected++
			it.code, it.msg, it.field = updateError(u)
		}
	}
	putBuf(one)
	out := appendBulk(make([]byte, 0, 64+48*len(items)), applied, noops, rejected, items)
	s.writeJSON(ctx, fasthttp.StatusOK, out)
	for _, b := range batches {
		order.PutUpdateBatch(b)
	}
}

// updateError is the error of a refused status change, for bulk results.
func updateError(u *order.Update) (code, msg, field string) {
	switch u.Outcome {
	case order.UpdateNotFound:
		return "order_not_found", "no order with this id", ""
	case order.UpdateInvalid:
		return "invalid_transition", "an order in status " + u.Previous.String() + " cannot move to " + u.Status.String(), "status"
	}
	return "unavailable", "the status change could not be committed; retry it", ""
}

// bulkBatch is what a bulk request submits: order.Batch or order.UpdateBatch.
type bulkBatch interface {
	Len() int
	Done() <-chan struct{}
}

// submitAndWait submits every non-empty batch of a bulk request and waits
// for all that went in, until AckTimeout. The items of a batch that
// TrySubmit refused get that refusal as their result (and refused, when
// set, is told). It reports false when the wait timed out: the batches'
// fates are then unknown and they must not go back to their pool.
func submitAndWait[B bulkBatch](s *Server, batches []B, items []bulkItem, submit func(B) error, refused func(B)) bool {
	submitted := make([]bool, len(batches))
	for i, b := range batches {
		if b.Len() == 0 {
			continue
		}
		if err := submit(b); err != nil {
			code, ecode, msg, _ := statusFor(err)
			for j := range items {
				if items[j].batch == i {
					items[j].status, items[j].code, items[j].msg, items[j].batch = code, ecode, msg, -1
				}
			}
			if refused != nil {
				refused(b)
			}
			continue
		}
		submitted[i] = true
	}
	deadline := getTimer(s.cfg.AckTimeout)
	defer putTimer(deadline)
	for i, b := range batches {
		if !submitted[i] {
			continue
		}
		select {
		case <-b.Done():
		case <-deadline.C:
			return false
		}
	}
	return true
}
