package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FakeServer is a tiny stand-in for orderflow on a loopback port, for the
// load generator's tests. POST /v1/orders answers 201 for a new order, 200
// for a resend with the same id and body (and Idempotency-Key, if any), 409
// for a resend that differs, 400 for a body without an id, with optional
// 503s and stalls. POST /v1/order-batches (NDJSON) creates every line's
// order and answers 201 for each. POST /v1/orders/{id}/status accepts only
// the next status along created → paid → assembling → delivering →
// delivered (404 for an unknown order, 409 otherwise). A /metrics page
// serves counters that grow with the POST /v1/orders requests handled. It is
// safe for concurrent use.
type FakeServer struct {
	// URL is the server's base URL ("http://127.0.0.1:port").
	URL string

	// Set in StartFake's configure function, before the first request.

	// Fail503Every answers every Nth request 503 with Retry-After (0: never).
	Fail503Every int64
	// StallOn is the request number (from 1) that sleeps for Stall first (0: none).
	StallOn int64
	Stall   time.Duration
	// StallGate, when set, holds request StallOn (after Stall) until it is
	// closed: a stall as long as the test wants, ended by the test.
	StallGate chan struct{}
	// Delay is how long every request sleeps first.
	Delay time.Duration
	// Serialize handles one request at a time, like a single-threaded server.
	Serialize bool
	// OnCreate, when set, is called (one call at a time) for an order id
	// the server has not acknowledged before, before it answers 201: to
	// store or publish it. A non-zero return is answered instead of the 201
	// and the order is not acknowledged.
	OnCreate func(ctx context.Context, id string) (status int)

	requests atomic.Int64
	scrapes  atomic.Int64
	serial   sync.Mutex

	mu       sync.Mutex
	bodies   map[string]string // id → body
	versions map[string]int    // id → version (1: created)
	keys     map[string]string // Idempotency-Key → id
	acked    []string          // ids answered 201 or 200
	refused  []string          // ids answered 503
	stats    FakeStats
}

// FakeStats counts what a FakeServer was sent.
type FakeStats struct {
	Created      int64            // answered 201
	Resent       int64            // answered 200
	KeyMismatch  int64            // resends whose key or body differs from the first send (409)
	Bulk         int64            // POST /v1/order-batches requests
	Updates      int64            // status changes applied
	WithoutKey   int64            // requests without an Idempotency-Key
	BadRequests  int64            // undecodable bodies (400)
	ContentTypes map[string]int64 // Content-Type → requests
}

// StartFake starts a FakeServer on a free loopback port, configured by
// configure (may be nil), and stops it in t.Cleanup.
func StartFake(t testing.TB, configure func(*FakeServer)) *FakeServer {
	t.Helper()
	f := &FakeServer{bodies: map[string]string{}, versions: map[string]int{}, keys: map[string]string{},
		stats: FakeStats{ContentTypes: map[string]int64{}}}
	if configure != nil {
		configure(f)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("enginetest: listen: %v", err)
	}
	srv := &fasthttp.Server{Handler: f.handle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	f.URL = "http://" + ln.Addr().String()
	return f
}

// fakeOrder is what FakeServer decodes: a body whose fields have other
// types is a 400.
type fakeOrder struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Items  []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
}

// fakeStatusChain is the status machine's main path after created: each
// change must be the next one.
var fakeStatusChain = []string{"paid", "assembling", "delivering", "delivered"}

func (f *FakeServer) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/metrics":
		f.metrics(ctx)
		return
	case !ctx.IsPost():
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	case path == "/v1/order-batches":
		f.bulk(ctx)
		return
	case strings.HasPrefix(path, "/v1/orders/") && strings.HasSuffix(path, "/status"):
		f.status(ctx, strings.TrimSuffix(strings.TrimPrefix(path, "/v1/orders/"), "/status"))
		return
	}
	if path != "/v1/orders" {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	if f.Serialize {
		f.serial.Lock()
		defer f.serial.Unlock()
	}
	n := f.requests.Add(1)
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	if n == f.StallOn {
		time.Sleep(f.Stall)
		if f.StallGate != nil {
			<-f.StallGate
		}
	}
	body := string(ctx.PostBody())
	var o fakeOrder
	err := json.Unmarshal([]byte(body), &o)
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))

	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || o.ID == "" {
		f.stats.BadRequests++
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	f.stats.ContentTypes[string(ctx.Request.Header.ContentType())]++
	if key == "" {
		f.stats.WithoutKey++
	}
	if f.Fail503Every > 0 && n%f.Fail503Every == 0 {
		f.refused = append(f.refused, o.ID)
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	}
	status := fasthttp.StatusCreated
	if prev, ok := f.bodies[o.ID]; ok {
		if prev != body || key != "" && f.keys[key] != o.ID {
			f.stats.KeyMismatch++
			ctx.SetStatusCode(fasthttp.StatusConflict)
			return
		}
		status = fasthttp.StatusOK
		f.stats.Resent++
	} else {
		if f.OnCreate != nil {
			if s := f.OnCreate(ctx, o.ID); s != 0 {
				ctx.SetStatusCode(s)
				return
			}
		}
		f.bodies[o.ID] = body
		f.versions[o.ID] = 1
		if key != "" {
			f.keys[key] = o.ID
		}
		f.stats.Created++
	}
	f.acked = append(f.acked, o.ID)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"id":"` + o.ID + `","status":"created","total_cents":100,"currency":"EUR"}`)
}

// bulk creates the order of every NDJSON line and answers 201 for each.
func (f *FakeServer) bulk(ctx *fasthttp.RequestCtx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Bulk++
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(ctx.PostBody()))
	for i := 0; sc.Scan(); i++ {
		var o fakeOrder
		_ = json.Unmarshal(sc.Bytes(), &o)
		f.versions[o.ID] = 1
		f.stats.Created++
		res = append(res, fmt.Sprintf(`{"index":%d,"id":%q,"status":201}`, i, o.ID))
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"results":[` + strings.Join(res, ",") + `]}`)
}

// status applies one status change if it is the next along fakeStatusChain.
func (f *FakeServer) status(ctx *fasthttp.RequestCtx, id string) {
	var b struct{ Status string }
	_ = json.Unmarshal(ctx.PostBody(), &b)
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.versions[id]
	switch {
	case !ok:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	case v-1 >= len(fakeStatusChain) || fakeStatusChain[v-1] != b.Status:
		ctx.SetStatusCode(fasthttp.StatusConflict)
	default:
		f.versions[id] = v + 1
		f.stats.Updates++
		ctx.SetContentType("application/json")
		ctx.SetBodyString(fmt.Sprintf(`{"id":%q,"status":%q,"version":%d}`, id, b.Status, v+1))
	}
}

// Version returns the version of order id (1 once created, one more per
// status change), 0 for an order it never created.
func (f *FakeServer) Version(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.versions[id]
}

// metrics serves counters that grow with the requests handled.
func (f *FakeServer) metrics(ctx *fasthttp.RequestCtx) {
	f.scrapes.Add(1)
	n := f.requests.Load()
	ctx.SetContentType("text/plain; version=0.0.4")
	b := []byte("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n")
	b = appendSample(b, "process_cpu_seconds_total", float64(n)*0.0001)
	b = appendSample(b, "go_memstats_alloc_bytes_total", float64(n)*2048)
	b = appendSample(b, "go_gc_duration_seconds_sum", float64(n)*0.000001)
	b = appendSample(b, `go_gc_duration_seconds{quantile="0.5"}`, 0.0001)
	b = appendSample(b, `orderflow_http_requests_total{code="201"}`, float64(n))
	ctx.SetBody(b)
}

func appendSample(b []byte, series string, v float64) []byte {
	out, _ := json.Marshal(v)
	return append(append(append(append(b, series...), ' '), out...), '\n')
}

// Requests returns how many POST /v1/orders requests arrived so far,
// counted as they arrive (before any Delay or stall).
func (f *FakeServer) Requests() int64 { return f.requests.Load() }

// Scrapes returns how many /metrics requests arrived so far.
func (f *FakeServer) Scrapes() int64 { return f.scrapes.Load() }

// Stats returns a copy of the counters.
func (f *FakeServer) Stats() FakeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.ContentTypes = maps.Clone(s.ContentTypes)
	return s
}

// Snapshot returns the sorted, unique ids answered 2xx and those answered
// 503.
func (f *FakeServer) Snapshot() (acked, refused []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	acked = slices.Compact(slices.Sorted(slices.Values(f.acked)))
	refused = slices.Compact(slices.Sorted(slices.Values(f.refused)))
	return acked, refused
}
