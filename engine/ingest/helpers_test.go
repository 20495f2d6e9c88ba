package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/internal/apitest"
)

// fakeOrders commits every submitted order at once (OutcomeCreated, or
// result when its Outcome is set), or, with hold set, keeps batches until
// hold is closed. With refuse set, TrySubmit fails with it.
type fakeOrders struct {
	submitted atomic.Int64 // orders accepted by TrySubmit
	hold      chan struct{}
	held      sync.WaitGroup
	result    order.Result
	refuse    error
	seen      func(o *order.Order) // called for every submitted order, before it is completed
}

func (f *fakeOrders) TrySubmit(b *order.Batch) error {
	if f.refuse != nil {
		return f.refuse
	}
	f.submitted.Add(int64(b.Len()))
	if f.seen != nil {
		for i := range b.Orders {
			f.seen(&b.Orders[i])
		}
	}
	for i := range b.Orders {
		b.Orders[i].Result.Outcome = order.OutcomeCreated
		if f.result.Outcome != order.OutcomePending {
			b.Orders[i].Result = f.result
		}
	}
	if f.hold != nil {
		f.held.Go(func() { <-f.hold; b.Complete() })
		return nil
	}
	b.Complete()
	return nil
}

// fakeUpdates decides every submitted status change at once: UpdateNotFound,
// or, when verdict is set, what it does to the update. With refuse set,
// TrySubmit fails with it.
type fakeUpdates struct {
	submitted atomic.Int64
	verdict   func(u *order.Update)
	refuse    error
}

func (f *fakeUpdates) TrySubmit(b *order.UpdateBatch) error {
	if f.refuse != nil {
		return f.refuse
	}
	f.submitted.Add(int64(b.Len()))
	for i := range b.Updates {
		b.Updates[i].Outcome = order.UpdateNotFound
		if f.verdict != nil {
			f.verdict(&b.Updates[i])
		}
	}
	b.Complete()
	return nil
}

type fakeReader struct{}

func (fakeReader) GetOrder(context.Context, string, *order.Order) (bool, error) { return false, nil }

// prices is the demo catalog's subset the tests use. It panics when panicNow
// is set (the test-only hook for the panic → 500 guarantee).
type prices struct{ panicNow atomic.Bool }

type priceBook map[string]int64

func (p priceBook) Price(sku string) (int64, bool) { c, ok := p[sku]; return c, ok }

var demoPrices = priceBook{"milk-1l": 119, "bread-rye": 249, "eggs-10": 329}

func (p *prices) PriceBook() order.PriceBook {
	if p.panicNow.Load() {
		panic("test: injected panic in the catalog")
	}
	return demoPrices
}

type testServer struct {
	t       testing.TB
	s       *Server
	m       *metrics.Metrics
	ln      *fasthttputil.InmemoryListener
	orders  *fakeOrders
	updates *fakeUpdates
	prices  *prices
}

func testLog() *slog.Logger {
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// decoders are the order decoders (Config.Decoder) the listener-level and
// hostile-input tests run against.
var decoders = []string{DecoderScanner, DecoderJsoniter}

// forEachDecoder runs fn as one subtest per order decoder, decoder=<name>.
func forEachDecoder(t *testing.T, fn func(t *testing.T, dec string)) {
	t.Helper()
	for _, dec := range decoders {
		t.Run("decoder="+dec, func(t *testing.T) { fn(t, dec) })
	}
}

// newTestServer builds a Server over fakes; tweak may change the deps.
func newTestServer(t testing.TB, cfg Config, tweak func(*Deps)) *testServer {
	t.Helper()
	ts := &testServer{t: t, m: metrics.New(), orders: &fakeOrders{}, updates: &fakeUpdates{}, prices: &prices{}}
	deps := Deps{Orders: ts.orders, Updates: ts.updates, Reader: fakeReader{}, Prices: ts.prices}
	if tweak != nil {
		tweak(&deps)
	}
	s, err := New(cfg, deps, ts.m, testLog())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.s = s
	return ts
}

// serveInmemory serves ts on an in-memory listener until the test ends.
func (ts *testServer) serveInmemory() *testServer {
	ts.ln = fasthttputil.NewInmemoryListener()
	ts.serve(ts.ln)
	return ts
}

func (ts *testServer) serve(ln net.Listener) {
	done := make(chan struct{})
	go func() { defer close(done); _ = ts.s.Serve(ln) }()
	ts.t.Cleanup(func() {
		if ts.orders.hold != nil {
			select {
			case <-ts.orders.hold:
			default:
				close(ts.orders.hold)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ts.s.Shutdown(ctx)
		<-done
		ts.orders.held.Wait()
	})
}

// client dials the in-memory listener from addr (nil: the listener's
// default address).
func (ts *testServer) client(from net.Addr) *fasthttp.Client {
	return &fasthttp.Client{
		Dial: func(string) (net.Conn, error) {
			if from != nil {
				return ts.ln.DialWithLocalAddr(from)
			}
			return ts.ln.Dial()
		},
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
	}
}

type resp struct {
	code   int
	header map[string]string
	body   []byte
	err    error
}

func (r resp) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.code, r.body)
}

// do sends one request; hdr is key, value pairs.
func do(c *fasthttp.Client, method, path, ct string, body []byte, hdr ...string) resp {
	return doFramed(c, method, path, ct, body, false, hdr...)
}

// doFramed is do that sends the body chunked (of unknown length) when
// chunked is set.
func doFramed(c *fasthttp.Client, method, path, ct string, body []byte, chunked bool, hdr ...string) resp {
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://orderflow" + path)
	req.Header.SetMethod(method)
	if ct != "" {
		req.Header.SetContentType(ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if chunked {
		req.SetBodyStream(bytes.NewReader(body), -1)
	} else {
		req.SetBody(body)
	}
	if err := c.DoTimeout(req, res, 30*time.Second); err != nil {
		return resp{err: err}
	}
	r := resp{code: res.StatusCode(), header: map[string]string{}, body: append([]byte(nil), res.Body()...)}
	for k, v := range res.Header.All() {
		r.header[string(k)] = string(v)
	}
	apitest.DeferFast(req, res) // checked after the tests (some time this call): TestMain
	return r
}

const validOrder = `{"id":"ord_1","user_id":"u_42","currency":"EUR","created_at":"2026-11-25T10:00:00Z","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1,"price_cents":249}]}`

func (ts *testServer) post(c *fasthttp.Client, body string, hdr ...string) resp {
	return do(c, fasthttp.MethodPost, "/v1/orders", "application/json", []byte(body), hdr...)
}

// errorCode returns the contract's error.code of a body, or "".
func errorCode(body []byte) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	return e.Error.Code
}

// counter reads a counter's current value.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func gauge(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

func rejected(m *metrics.Metrics, reason string) float64 {
	return counter(m.AdmissionRejected.WithLabelValues(reason))
}

// tcpAddr is a client address for DialWithLocalAddr: the server sees it as
// the peer, so per-IP limits can be tested in memory.
func tcpAddr(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }

// dialTCP connects to addr with a deadline of d on the connection; the
// test closes it when it ends.
func dialTCP(t testing.TB, addr string, d time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(d))
	return conn
}
