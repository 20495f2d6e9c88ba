package ingest

import (
	"bytes"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

// The bulk endpoints: POST /v1/order-batches and POST /v1/status-updates.
// Each item is decoded on its own and gets its own result, answered by the
// same answer table as the single endpoints (answer.go).

var (
	ctNDJSON       = []byte("application/x-ndjson")
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

// bulkAdmit is the common start of both bulk endpoints: refuse while
// shutting down, check the Content-Type, read the body within its limit and
// take an admission slot for it. It answers the request itself when it
// cannot go on; when ok, the caller must release(cost).
func (s *Server) bulkAdmit(ctx *fasthttp.RequestCtx) (body []byte, f bulkFormat, cost int64, ok bool) {
	if s.shutting.Load() {
		s.writeAnswer(ctx, refusalAnswer(refusedShuttingDown))
		return nil, 0, 0, false
	}
	switch ct := mediaType(ctx.Request.Header.ContentType()); {
	case bytes.EqualFold(ct, ctNDJSON):
		f = formatNDJSON
	case bytes.EqualFold(ct, ctJSON):
		f = formatArray
	default:
		s.writeAnswer(ctx, ansNotBulk)
		return nil, 0, 0, false
	}
	if body, ok = s.body(ctx, s.cfg.MaxBatchBodyBytes); !ok {
		return nil, 0, 0, false
	}
	cost = bodyCost(ctx, body)
	if !s.admit(cost) {
		s.writeAnswer(ctx, refusalAnswer(refusedOverloaded))
		return nil, 0, 0, false
	}
	return body, f, cost, true
}

// split calls fn for each item of body. It reports the number of items, or
// answers 400/413 and returns ok=false when the body cannot be split or holds
// too many items (checked before fn is first called).
func (s *Server) split(ctx *fasthttp.RequestCtx, body []byte, f bulkFormat, fn func(i int, item []byte)) (int, bool) {
	n := 0
	err := splitBody(body, f, func(i int, _ []byte) bool {
		n = i + 1
		return n <= s.cfg.MaxBatchItems
	})
	if err != nil {
		s.writeAnswer(ctx, statusFor(err))
		return 0, false
	}
	if n > s.cfg.MaxBatchItems {
		s.writeAnswer(ctx, tooManyItems(s.cfg.MaxBatchItems))
		return 0, false
	}
	// The first pass found every boundary; this one cannot fail.
	_ = splitBody(body, f, func(i int, item []byte) bool { fn(i, item); return true })
	return n, true
}

// splitBody calls the splitter of format f. Direct calls, not a func
// value: the compiler then sees that fn does not escape, so the handlers'
// callbacks and what they capture (the trace context, its buffer) stay on
// the stack.
func splitBody(body []byte, f bulkFormat, fn func(i int, item []byte) bool) error {
	if f == formatArray {
		return order.SplitArray(body, fn)
	}
	return order.SplitNDJSON(body, fn)
}

// bulkItem is one item's fate inside a bulk request.
type bulkItem struct {
	answer        // the item's result, once known
	id     string // "" when the item had no readable id
	batch  int    // index into the request's batches; -1 when never submitted
	row    int    // index into that batch's Orders / Updates
}

// orderBatches handles POST /v1/order-batches: each item is decoded, priced
// and sealed on its own; the valid ones go through the pipeline in batches of
// at most -pipeline.batch-max-rows orders, each one pipeline slot (and so at
// most one transaction), and every item gets its own result in input order.
//
// Every item carries the request's trace context (each batch holds its own
// copy of the tracestate, in its arena).
func (s *Server) orderBatches(ctx *fasthttp.RequestCtx, received time.Time, tc reqTrace) {
	body, f, cost, ok := s.bulkAdmit(ctx)
	if !ok {
		return
	}
	defer s.release(cost)

	var stateBuf [order.MaxTraceStateLen]byte
	state := s.traceState(ctx, &tc, &stateBuf)
	prices := s.deps.Prices.PriceBook()
	var batches []*order.Batch
	var items []bulkItem
	cur := (*order.Batch)(nil)
	curState := ""
	_, ok = s.split(ctx, body, f, func(i int, raw []byte) {
		if cur == nil || cur.Len() >= s.cfg.BulkChunkRows {
			cur = order.GetBatch()
			batches = append(batches, cur)
			curState = cur.Arena().CopyString(state)
		}
		it := bulkItem{batch: -1}
		o, err := s.decode(cur, raw, received, nil)
		if err == nil {
			it.id = o.ID
			if err = o.Price(prices); err != nil {
				cur.Orders = cur.Orders[:len(cur.Orders)-1] // drop it: the decoder appended it
			}
		}
		if err != nil {
			// it.id stays a view into cur's arena, which lives until the
			// batches are put back after the response is written.
			it.answer = statusFor(err)
			s.orders[orderRefused(it.answer)].Inc()
		} else {
			o.TraceParent, o.TraceState = tc.parent, curState
			cur.Seal(o)
			it.batch, it.row = len(batches)-1, len(cur.Orders)-1
		}
		items = append(items, it)
	})
	k := bulkKind[*order.Batch]{
		submit:   s.deps.Orders.TrySubmit,
		refused:  func(b *order.Batch, a answer) { s.orders[orderRefused(a)].Add(float64(b.Len())) },
		timedOut: s.orders[resTimeout],
		timeout:  ansOrdersTimeout,
		verdict: func(b *order.Batch, row int) (answer, tally) {
			a := s.noteOrder(&b.Orders[row].Result)
			switch a.status {
			case fasthttp.StatusCreated:
				return a, tallyNew
			case fasthttp.StatusOK:
				return a, tallySame
			}
			return a, tallyRejected
		},
		put: order.PutBatch,
	}
	k.finish(s, ctx, batches, items, ok)
}

// statusUpdates handles POST /v1/status-updates: like orderBatches, for
// status changes; each item {"id","status"} gets its own result, and
// carries the request's trace context.
func (s *Server) statusUpdates(ctx *fasthttp.RequestCtx, received time.Time, tc reqTrace) {
	body, f, cost, ok := s.bulkAdmit(ctx)
	if !ok {
		return
	}
	defer s.release(cost)

	var stateBuf [order.MaxTraceStateLen]byte
	state := s.traceState(ctx, &tc, &stateBuf)
	var batches []*order.UpdateBatch
	var items []bulkItem
	var cur *order.UpdateBatch
	curState := ""
	var scratch []byte
	_, ok = s.split(ctx, body, f, func(i int, raw []byte) {
		if cur == nil || cur.Len() >= s.cfg.BulkChunkRows {
			cur = order.GetUpdateBatch()
			batches = append(batches, cur)
			curState = cur.Arena().CopyString(state)
		}
		it := bulkItem{batch: -1}
		id, st, err := order.DecodeStatusUpdate(raw, scratch[:0])
		if err != nil {
			it.answer = statusFor(err)
			if len(id) > 0 {
				it.id = string(id)
			}
			s.updates[updateRefused(it.answer)].Inc()
		} else {
			row := cur.Add(id, st, received)
			cur.Updates[row].TraceParent, cur.Updates[row].TraceState = tc.parent, curState
			it.id = cur.Updates[row].OrderID
			it.batch, it.row = len(batches)-1, row
		}
		scratch = id[:0]
		items = append(items, it)
	})
	k := bulkKind[*order.UpdateBatch]{
		submit:   s.deps.Updates.TrySubmit,
		refused:  func(b *order.UpdateBatch, a answer) { s.updates[updateRefused(a)].Add(float64(b.Len())) },
		timedOut: s.updates[updTimeout],
		timeout:  ansUpdatesTimeout,
		verdict: func(b *order.UpdateBatch, row int) (answer, tally) {
			u := &b.Updates[row]
			a := s.noteUpdate(u)
			switch u.Outcome {
			case order.UpdateApplied:
				return a, tallyNew
			case order.UpdateNoop:
				return a, tallySame
			}
			return a, tallyRejected
		},
		put: order.PutUpdateBatch,
	}
	k.finish(s, ctx, batches, items, ok)
}

// tally is which count of a bulk response an item adds to.
type tally uint8

const (
	tallyNew      tally = iota // "created": committed now (an order created, a status change applied)
	tallySame                  // "duplicates": already so (the same order, the same status)
	tallyRejected              // "rejected": anything else
	numTallies
)

// bulkKind is what differs between the two bulk endpoints once their items
// are decoded into batches.
type bulkKind[B bulkBatch] struct {
	submit   func(B) error
	refused  func(b B, a answer)                // counts the items of a batch TrySubmit refused
	timedOut prometheus.Counter                 // counts a request whose commits were not confirmed in time
	timeout  answer                             // and answers it
	verdict  func(b B, row int) (answer, tally) // counts and answers the store's verdict on one item
	put      func(B)                            // returns a batch to its pool
}

// finish ends a bulk request whose items are decoded into batches (split
// reported ok; otherwise it answered already and the batches only go back
// to their pool): submit and wait (submitAndWait), then answer every item
// and write the response; or, when the wait timed out, answer 503 for the
// whole request and leave the batches to the GC (their fates are unknown).
func (k *bulkKind[B]) finish(s *Server, ctx *fasthttp.RequestCtx, batches []B, items []bulkItem, ok bool) {
	if !ok {
		for _, b := range batches {
			k.put(b)
		}
		return
	}
	if !submitAndWait(s, batches, items, k.submit, k.refused) {
		// Every item is safe to resend (order ids and status changes converge).
		k.timedOut.Inc()
		s.writeAnswer(ctx, k.timeout)
		return
	}
	var counts [numTallies]int
	for j := range items {
		it := &items[j]
		t := tallyRejected
		if it.batch >= 0 {
			it.answer, t = k.verdict(batches[it.batch], it.row)
		}
		counts[t]++
	}
	out := appendBulk(make([]byte, 0, 64+48*len(items)), counts[tallyNew], counts[tallySame], counts[tallyRejected], items)
	writeJSON(ctx, fasthttp.StatusOK, out)
	for _, b := range batches { // every one completed or never submitted: ours again
		k.put(b)
	}
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
			dst = order.AppendErrorObject(dst, it.code, it.msg, it.field)
		}
		dst = append(dst, '}')
	}
	return append(dst, bulkEnd...)
}
