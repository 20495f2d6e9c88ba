package ingest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

const (
	tpIn    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	stateIn = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// traceSeen records the trace context of every order and status change
// the fakes were handed, as "traceparent|tracestate".
type traceSeen struct {
	mu  sync.Mutex
	got []string
}

func (ts *traceSeen) add(p order.TraceParent, state string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.got = append(ts.got, p.String()+"|"+state)
}

func (ts *traceSeen) take() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := ts.got
	ts.got = nil
	return out
}

func newTraceServer(t *testing.T, tr Tracer) (*testServer, *traceSeen) {
	t.Helper()
	seen := &traceSeen{}
	ts := newTestServer(t, Config{}, func(d *Deps) { d.Tracer = tr })
	ts.orders.seen = func(o *order.Order) { seen.add(o.TraceParent, strings.Clone(o.TraceState)) }
	ts.updates.verdict = func(u *order.Update) {
		seen.add(u.TraceParent, strings.Clone(u.TraceState))
		u.Outcome, u.Previous, u.Version = order.UpdateApplied, order.StatusCreated, 2
	}
	return ts.serveInmemory(), seen
}

// Every write endpoint hands its changes the request's trace context, each
// item of a bulk request the same; an invalid traceparent is ignored with
// its tracestate (and the request still succeeds), an invalid tracestate
// alone is dropped; each is counted.
func TestTraceContextReachesEveryChange(t *testing.T) {
	ts, seen := newTraceServer(t, nil)
	c := ts.client(nil)
	bulkOrders := []byte(strings.ReplaceAll(validOrder, "ord_1", "ord_b1") + "\n" + strings.ReplaceAll(validOrder, "ord_1", "ord_b2") + "\n")
	bulkStatus := []byte(`{"id":"ord_1","status":"paid"}` + "\n" + `{"id":"ord_2","status":"paid"}` + "\n")
	type req struct {
		name, method, path, ct string
		body                   []byte
		code, changes          int
	}
	reqs := []req{
		{"create", "POST", "/v1/orders", "application/json", []byte(validOrder), 201, 1},
		{"status", "POST", "/v1/orders/ord_1/status", "application/json", []byte(`{"status":"paid"}`), 200, 1},
		{"order-batches", "POST", "/v1/order-batches", "application/x-ndjson", bulkOrders, 200, 2},
		{"status-updates", "POST", "/v1/status-updates", "application/x-ndjson", bulkStatus, 200, 2},
	}
	invalid := func(h string) float64 { return counter(ts.m.TraceContextInvalid.WithLabelValues(h)) }
	f := func(hdr []string, want string, badParent, badState float64) {
		t.Helper()
		for _, r := range reqs {
			p0, s0 := invalid("traceparent"), invalid("tracestate")
			res := do(c, r.method, r.path, r.ct, r.body, hdr...)
			if res.code != r.code {
				t.Fatalf("%s with %q: %v; want %d", r.name, hdr, res, r.code)
			}
			got := seen.take()
			if len(got) != r.changes {
				t.Fatalf("%s with %q: %d changes submitted; want %d", r.name, hdr, len(got), r.changes)
			}
			for _, g := range got {
				if g != want {
					t.Errorf("%s with %q: change carries %q; want %q", r.name, hdr, g, want)
				}
			}
			if d := invalid("traceparent") - p0; d != badParent {
				t.Errorf("%s with %q: %v invalid traceparents counted; want %v", r.name, hdr, d, badParent)
			}
			if d := invalid("tracestate") - s0; d != badState {
				t.Errorf("%s with %q: %v invalid tracestates counted; want %v", r.name, hdr, d, badState)
			}
		}
	}
	f(nil, "|", 0, 0)
	f([]string{"traceparent", tpIn}, tpIn+"|", 0, 0)
	f([]string{"Traceparent", tpIn, "TraceState", stateIn}, tpIn+"|"+stateIn, 0, 0)
	f([]string{"traceparent", tpIn, "tracestate", "foo=1 ,\tbar=2"}, tpIn+"|foo=1,bar=2", 0, 0)
	f([]string{"traceparent", "cc-" + tpIn[3:] + "-future"}, tpIn+"|", 0, 0)
	// Invalid traceparent: ignored with its tracestate, never a 4xx.
	f([]string{"traceparent", strings.ToUpper(tpIn), "tracestate", stateIn}, "|", 1, 0)
	f([]string{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "|", 1, 0)
	f([]string{"traceparent", "garbage"}, "|", 1, 0)
	// Only the tracestate is invalid: it alone is dropped.
	f([]string{"traceparent", tpIn, "tracestate", "foo=1,foo=2"}, tpIn+"|", 0, 1)
	f([]string{"traceparent", tpIn, "tracestate", strings.Repeat("a=1,", 200)}, tpIn+"|", 0, 1)
	// A tracestate without a traceparent is not read.
	f([]string{"tracestate", stateIn}, "|", 0, 0)
}

// Headers sent more than once: two traceparents are ignored (W3C restarts
// the trace), several tracestates form one list.
func TestTraceContextRepeatedHeaders(t *testing.T) {
	ts, seen := newTraceServer(t, nil)
	c := ts.client(nil)
	send := func(add func(h *fasthttp.RequestHeader)) string {
		t.Helper()
		req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI("http://orderflow/v1/orders")
		req.Header.SetMethod("POST")
		req.Header.SetContentType("application/json")
		add(&req.Header)
		req.SetBodyString(validOrder)
		if err := c.DoTimeout(req, res, 10*time.Second); err != nil || res.StatusCode() != 201 {
			t.Fatalf("POST: %v %d %s", err, res.StatusCode(), res.Body())
		}
		got := seen.take()
		if len(got) != 1 {
			t.Fatalf("%d orders submitted", len(got))
		}
		return got[0]
	}
	if got := send(func(h *fasthttp.RequestHeader) {
		h.Add("traceparent", tpIn)
		h.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		h.Add("tracestate", "a=1")
	}); got != "|" {
		t.Errorf("two traceparents: order carries %q; want none", got)
	}
	if got := send(func(h *fasthttp.RequestHeader) {
		h.Add("traceparent", tpIn)
		h.Add("tracestate", "foo=1,bar=2")
		h.Add("tracestate", "")
		h.Add("tracestate", "baz=3")
	}); got != tpIn+"|foo=1,bar=2,baz=3" {
		t.Errorf("three tracestates: order carries %q", got)
	}
	if got := send(func(h *fasthttp.RequestHeader) {
		h.Add("traceparent", tpIn)
		h.Add("tracestate", "foo=1")
		h.Add("tracestate", "foo=2")
	}); got != tpIn+"|" {
		t.Errorf("a key in two tracestates: order carries %q; want the tracestate dropped", got)
	}
}

// fakeTracer hands out span contexts of one trace and records the spans.
type fakeTracer struct {
	mu    sync.Mutex
	n     int
	spans []string // "name parent -> status"
}

func (f *fakeTracer) StartRequest(name string, parent order.TraceParent, _ time.Time) (order.TraceParent, func(int)) {
	f.mu.Lock()
	f.n++
	id := f.n
	f.mu.Unlock()
	span, _ := order.ParseTraceParent(fmt.Appendf(nil, "00-%032x-%016x-01", 7, id))
	return span, func(status int) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.spans = append(f.spans, fmt.Sprintf("%s %s -> %d", name, parent.String(), status))
	}
}

// With a tracer, every request gets a span (a child of its traceparent),
// the changes carry the span's context instead of the incoming one, the
// tracestate stays the incoming one, and the span ends with the status.
func TestTracerSpanPerRequest(t *testing.T) {
	tr := &fakeTracer{}
	ts, seen := newTraceServer(t, tr)
	c := ts.client(nil)
	if r := ts.post(c, validOrder, "traceparent", tpIn, "tracestate", stateIn); r.code != 201 {
		t.Fatalf("POST: %v", r)
	}
	span1 := fmt.Sprintf("00-%032x-%016x-01", 7, 1)
	if got := seen.take(); len(got) != 1 || got[0] != span1+"|"+stateIn {
		t.Errorf("order carries %v; want the request span %s and the incoming tracestate", got, span1)
	}
	if r := do(c, "GET", "/v1/orders/ord_nope", "", nil, "traceparent", "garbage", "tracestate", stateIn); r.code != 404 {
		t.Fatalf("GET: %v", r)
	}
	if r := ts.post(c, validOrder, "tracestate", stateIn); r.code != 201 {
		t.Fatalf("POST without traceparent: %v", r)
	}
	span3 := fmt.Sprintf("00-%032x-%016x-01", 7, 3)
	if got := seen.take(); len(got) != 1 || got[0] != span3+"|" {
		t.Errorf("order without traceparent carries %v; want a new span %s and no tracestate", got, span3)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	want := []string{
		"POST /v1/orders " + tpIn + " -> 201",
		"GET /v1/orders/{id}  -> 404",
		"POST /v1/orders  -> 201",
	}
	if fmt.Sprint(tr.spans) != fmt.Sprint(want) {
		t.Errorf("spans:\n got %q\nwant %q", tr.spans, want)
	}
}
