package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
	"github.com/orderflow/orderflow/internal/apitest"
)

// scriptOrders decides each order's outcome by its id's prefix, so one
// server can give every answer the spec lists.
type scriptOrders struct{}

func (scriptOrders) TrySubmit(b *order.Batch) error {
	for i := range b.Orders {
		o := &b.Orders[i]
		switch id := o.ID; {
		case strings.HasPrefix(id, "full"):
			return pipeline.ErrOverloaded
		case strings.HasPrefix(id, "closed"):
			return pipeline.ErrClosed
		case strings.HasPrefix(id, "hold"):
			return nil // never completed: commit_timeout
		case strings.HasPrefix(id, "dup"):
			o.Result = order.Result{Outcome: order.OutcomeDuplicate, Status: order.StatusPaid, TotalCents: o.TotalCents}
		case strings.HasPrefix(id, "conflict"):
			o.Result.Outcome = order.OutcomeConflict
		case strings.HasPrefix(id, "unstorable"):
			o.Result = order.Result{Outcome: order.OutcomeRejected, Err: errors.New("test: refused")}
		case strings.HasPrefix(id, "fail"):
			o.Result = order.Result{Outcome: order.OutcomeFailed, Err: errors.New("test: down")}
		default:
			o.Result.Outcome = order.OutcomeCreated
		}
	}
	b.Complete()
	return nil
}

// scriptUpdates does the same for status changes.
type scriptUpdates struct{}

func (scriptUpdates) TrySubmit(b *order.UpdateBatch) error {
	for i := range b.Updates {
		u := &b.Updates[i]
		switch id := u.OrderID; {
		case strings.HasPrefix(id, "panic"):
			panic("test: injected panic in the status pipeline")
		case strings.HasPrefix(id, "full"):
			return pipeline.ErrOverloaded
		case strings.HasPrefix(id, "hold"):
			return nil
		case strings.HasPrefix(id, "missing"):
			u.Outcome = order.UpdateNotFound
		case strings.HasPrefix(id, "final"):
			u.Outcome, u.Previous, u.Version = order.UpdateInvalid, order.StatusDelivered, 5
		case strings.HasPrefix(id, "same"):
			u.Outcome, u.Previous, u.Version = order.UpdateNoop, u.Status, 2
		case strings.HasPrefix(id, "fail"):
			u.Outcome, u.Err = order.UpdateFailed, errors.New("test: down")
		default:
			u.Outcome, u.Previous, u.Version = order.UpdateApplied, order.StatusCreated, 2
		}
	}
	b.Complete()
	return nil
}

// scriptReader finds "found…" orders, fails on "down…" and panics on "panic…".
type scriptReader struct{}

func (scriptReader) GetOrder(_ context.Context, id string, o *order.Order) (bool, error) {
	switch {
	case strings.HasPrefix(id, "panic"):
		panic("test: injected panic in the reader")
	case strings.HasPrefix(id, "down"):
		return false, errors.New("test: down")
	case !strings.HasPrefix(id, "found"):
		return false, nil
	}
	t := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	*o = order.Order{ID: id, UserID: "u_42", Status: order.StatusPaid, Currency: "EUR", TotalCents: 487, Version: 2,
		CreatedAt: t, UpdatedAt: t.Add(time.Second), Items: []order.Item{{SKU: "milk-1l", Qty: 2, PriceCents: 119}, {SKU: "bread-rye", Qty: 1, PriceCents: 249}}}
	return true, nil
}

func scriptDeps(d *Deps) {
	d.Orders, d.Updates, d.Reader = scriptOrders{}, scriptUpdates{}, scriptReader{}
}

func orderBody(id string) string { return strings.Replace(validOrder, `"ord_1"`, `"`+id+`"`, 1) }

// TestEveryDocumentedAnswerIsProduced drives the real handler, over a real
// listener, into every (operation, status) pair api/openapi.yaml lists,
// checks each exchange against the spec, and fails when a listed pair was
// not produced: the spec lists no answer the server cannot give, and (with
// the checks in every other test of this package and of engine/) the
// server gives none the spec does not list.
func TestEveryDocumentedAnswerIsProduced(t *testing.T) {
	spec, err := apitest.Load(apiDoc())
	if err != nil {
		t.Fatal(err)
	}
	check := func(x apitest.Exchange) {
		t.Helper()
		if err := spec.Check(x); err != nil {
			t.Error(err)
		}
	}
	const (
		j     = "application/json"
		nd    = "application/x-ndjson"
		paths = 5
	)
	ops := []struct{ method, path, ct, body string }{
		{"POST", "/v1/orders", j, orderBody("ord_x")},
		{"GET", "/v1/orders/found_1", "", ""},
		{"POST", "/v1/orders/ord_x/status", j, `{"status":"paid"}`},
		{"POST", "/v1/order-batches", nd, orderBody("ord_x")},
		{"POST", "/v1/status-updates", nd, `{"id":"ord_x","status":"paid"}`},
	}

	// One server for the answers of the handlers.
	ts := newTestServer(t, Config{AckTimeout: 300 * time.Millisecond, MaxBodyBytes: 4 << 10, MaxBatchBodyBytes: 64 << 10, MaxBatchItems: 3}, scriptDeps).serveInmemory()
	c := ts.client(nil)
	send := func(method, path, ct, body string, hdr ...string) {
		t.Helper()
		check(exchange(t, c, method, path, ct, []byte(body), hdr...))
	}
	gzipped := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, s)
		_ = zw.Close()
		return b.String()
	}
	big := strings.Repeat(" ", 5<<10)
	bulkBig := strings.Repeat(" ", 70<<10)

	// createOrder
	send("POST", "/v1/orders", j, orderBody("ord_new"))
	send("POST", "/v1/orders", j, orderBody("dup_1"), "Idempotency-Key", "k-1")
	send("POST", "/v1/orders", j, `{"id":"ord_2"}`)
	send("POST", "/v1/orders", j, orderBody("unstorable_1"))
	send("POST", "/v1/orders", j, orderBody("ord_3"), "Idempotency-Key", "has space")
	send("POST", "/v1/orders", j, orderBody("conflict_1"))
	send("POST", "/v1/orders", j, orderBody("ord_4")+big)
	send("POST", "/v1/orders", "text/plain", orderBody("ord_5"))
	send("POST", "/v1/orders", j, orderBody("ord_6"), "Content-Encoding", "br")
	send("POST", "/v1/orders", j, strings.Replace(orderBody("ord_7"), "milk-1l", "caviar", 1))
	send("POST", "/v1/orders", j, orderBody("full_1"))
	send("POST", "/v1/orders", j, orderBody("closed_1"))
	send("POST", "/v1/orders", j, orderBody("fail_1"))
	send("POST", "/v1/orders", j, orderBody("hold_1"))
	send("POST", "/v1/orders", j, gzipped(orderBody("ord_gz")), "Content-Encoding", "gzip")
	// getOrder
	send("GET", "/v1/orders/found_1", "", "")
	send("GET", "/v1/orders/nothing_here", "", "")
	send("GET", "/v1/orders/bad%20id", "", "")
	send("GET", "/v1/orders/down_1", "", "")
	// setStatus
	send("POST", "/v1/orders/ord_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/same_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/ord_1/status", j, `{"status":"lost"}`)
	send("POST", "/v1/orders/missing_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/final_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/ord_1/status", j, `{"status":"paid"}`+big)
	send("POST", "/v1/orders/ord_1/status", "text/plain", `{"status":"paid"}`)
	send("POST", "/v1/orders/fail_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/full_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/hold_1/status", j, `{"status":"paid"}`)
	send("POST", "/v1/orders/panic_1/status", j, `{"status":"paid"}`)
	// createOrders: every per-item status in one request, then whole-request answers.
	items := []string{orderBody("ord_b1"), orderBody("dup_b2"), `{"id":"ord_b3"}`, orderBody("conflict_b4"), strings.Replace(orderBody("ord_b5"), "milk-1l", "caviar", 1), orderBody("fail_b6"), orderBody("unstorable_b7")}
	ts2 := newTestServer(t, Config{}, scriptDeps).serveInmemory()
	check(exchange(t, ts2.client(nil), "POST", "/v1/order-batches", nd, []byte(strings.Join(items, "\n"))))
	check(exchange(t, ts2.client(nil), "POST", "/v1/order-batches", j, []byte("["+strings.Join(items, ",")+"]")))
	check(exchange(t, ts2.client(nil), "POST", "/v1/order-batches", nd, []byte(orderBody("full_b8"))))
	send("POST", "/v1/order-batches", j, `{"not":"an array"}`)
	send("POST", "/v1/order-batches", nd, strings.Repeat(orderBody("ord_m")+"\n", 4))
	send("POST", "/v1/order-batches", nd, gzipped(orderBody("ord_b9")+"\n"+bulkBig), "Content-Encoding", "gzip")
	send("POST", "/v1/order-batches", "text/csv", "a,b")
	send("POST", "/v1/order-batches", nd, orderBody("hold_b10"))
	// setStatuses
	upd := []string{`{"id":"ord_u1","status":"paid"}`, `{"id":"same_u2","status":"paid"}`, `{"id":"ord_u3","status":"lost"}`, `{"id":"missing_u4","status":"paid"}`, `{"id":"final_u5","status":"paid"}`, `{"id":"fail_u6","status":"paid"}`}
	check(exchange(t, ts2.client(nil), "POST", "/v1/status-updates", nd, []byte(strings.Join(upd, "\n"))))
	check(exchange(t, ts2.client(nil), "POST", "/v1/status-updates", nd, []byte(`{"id":"full_u7","status":"paid"}`)))
	send("POST", "/v1/status-updates", j, `{"not":"an array"}`)
	send("POST", "/v1/status-updates", nd, strings.Repeat(`{"id":"ord_u","status":"paid"}`+"\n", 4))
	send("POST", "/v1/status-updates", nd, gzipped(`{"id":"ord_u","status":"paid"}`+"\n"+bulkBig), "Content-Encoding", "gzip")
	send("POST", "/v1/status-updates", "text/csv", "a,b")
	send("POST", "/v1/status-updates", nd, `{"id":"hold_u8","status":"paid"}`)
	send("POST", "/v1/status-updates", nd, `{"id":"panic_u9","status":"paid"}`)

	// 500 from the catalog (createOrder, createOrders) and the reader.
	ts.prices.panicNow.Store(true)
	send("POST", "/v1/orders", j, orderBody("ord_p"))
	send("POST", "/v1/order-batches", nd, orderBody("ord_p"))
	ts.prices.panicNow.Store(false)
	send("GET", "/v1/orders/panic_1", "", "")

	// Shutting down: 503 shutting_down on every operation that writes.
	ts3 := newTestServer(t, Config{}, scriptDeps).serveInmemory()
	ts3.s.shutting.Store(true)
	for _, op := range ops {
		if op.method == "POST" {
			check(exchange(t, ts3.client(nil), op.method, op.path, op.ct, []byte(op.body)))
		}
	}
	ts3.s.shutting.Store(false)

	// 401 and 429: API keys with a one-request bucket.
	ts4 := newTestServer(t, Config{APIKeys: []APIKey{{Name: "k", Key: "0123456789abcdef0123", Limit: Limit{Rate: 0.001, Burst: 1}}}}, scriptDeps).serveInmemory()
	for _, op := range ops {
		check(exchange(t, ts4.client(nil), op.method, op.path, op.ct, []byte(op.body)))
		check(exchange(t, ts4.client(nil), op.method, op.path, op.ct, []byte(op.body), "Authorization", "Bearer wrong-key-0123456789"))
	}
	ts4b := newTestServer(t, Config{APIKeys: []APIKey{{Name: "k", Key: "0123456789abcdef0123"}}, PerKeyLimit: Limit{Rate: 0.001, Burst: 1}}, scriptDeps).serveInmemory()
	check(exchange(t, ts4b.client(nil), "GET", "/v1/orders/found_1", "", nil, "Authorization", "Bearer 0123456789abcdef0123")) // the one token
	for _, op := range ops {
		check(exchange(t, ts4b.client(nil), op.method, op.path, op.ct, []byte(op.body), "Authorization", "Bearer 0123456789abcdef0123"))
	}

	// 503 overloaded at admission (no slot within MaxQueueWait) for getOrder.
	ts5 := newTestServer(t, Config{MaxInflight: 1, MaxQueueWait: time.Millisecond}, scriptDeps).serveInmemory()
	ts5.s.sem <- struct{}{}
	check(exchange(t, ts5.client(nil), "GET", "/v1/orders/found_1", "", nil))
	<-ts5.s.sem

	// Transport-level answers over TCP: 400 malformed, 408 slow, 431 big headers.
	ts6 := newTestServer(t, Config{ReadTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096}, scriptDeps)
	addr := ts6.serveTCP()
	for _, op := range ops {
		check(raw(t, addr, op.method, op.path, op.ct, op.body, "Content-Length: 12x\r\n", false))
		check(raw(t, addr, op.method, op.path, op.ct, op.body, "X-Big: "+strings.Repeat("h", 8000)+"\r\n", false))
		check(raw(t, addr, op.method, op.path, op.ct, op.body, "", true))
	}

	seen := spec.Seen()
	for _, p := range spec.Pairs() {
		if seen[p] == 0 {
			t.Errorf("api/openapi.yaml lists %s, and no exchange produced it", p)
		}
	}
}

// exchange sends one request through c (with do) and returns it with its
// answer.
func exchange(t *testing.T, c *fasthttp.Client, method, path, ct string, body []byte, hdr ...string) apitest.Exchange {
	t.Helper()
	r := do(c, method, path, ct, body, hdr...)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, path, r.err)
	}
	x := apitest.Exchange{Method: method, Path: path, ReqHeader: http.Header{}, ReqBody: body, Status: r.code,
		RespHeader: http.Header{}, RespBody: r.body}
	if ct != "" {
		x.ReqHeader.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		x.ReqHeader.Set(hdr[i], hdr[i+1])
	}
	for k, v := range r.header {
		x.RespHeader.Set(k, v)
	}
	return x
}

// raw sends a hand-made request over TCP: extra is added to the headers;
// slow sends the headers and half the body, then waits for the server.
func raw(t *testing.T, addr, method, path, ct, body, extra string, slow bool) apitest.Exchange {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n", method, path)
	h := http.Header{}
	if ct != "" {
		head += "Content-Type: " + ct + "\r\n"
		h.Set("Content-Type", ct)
	}
	if extra == "" {
		head += fmt.Sprintf("Content-Length: %d\r\n", len(body)+1)
	}
	head += extra + "\r\n"
	send := head + body
	if slow {
		send = head + body[:len(body)/2]
	}
	if _, err := io.WriteString(conn, send); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s (%q, slow %v): no answer: %v", method, path, extra, slow, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	return apitest.Exchange{Method: method, Path: path, ReqHeader: h, ReqBody: []byte(body), Status: res.StatusCode, RespHeader: res.Header, RespBody: rb}
}
