package loadtest

import (
	"encoding/json"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fakeServer is a tiny stand-in for orderflow's POST /v1/orders on a
// loopback port: 201 for a new order, 200 for a resend with the same id and
// body, optional 503s and stalls. It also serves a /metrics page.
type fakeServer struct {
	url string

	// Set before the first request.
	fail503Every int64         // every Nth request is a 503 (0: never)
	stallOn      int64         // request number that sleeps for stall (0: none)
	stall        time.Duration // how long stallOn sleeps
	delay        time.Duration // every request sleeps this long
	serialize    bool          // handle one request at a time, like a single-threaded server

	requests atomic.Int64
	serial   sync.Mutex

	mu           sync.Mutex
	bodies       map[string]string // id → body
	keys         map[string]string // Idempotency-Key → id
	acked        []string          // ids answered 201 or 200
	refused      []string          // ids answered 503
	created      int64
	resent       int64 // 200s
	keyMismatch  int64 // resends whose key or body differs from the first send
	withoutKey   int64 // requests without an Idempotency-Key
	badRequests  int64 // undecodable bodies
	contentTypes map[string]int64
}

func startFakeServer(t *testing.T, configure func(*fakeServer)) *fakeServer {
	t.Helper()
	f := &fakeServer{bodies: map[string]string{}, keys: map[string]string{}, contentTypes: map[string]int64{}}
	if configure != nil {
		configure(f)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
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
	f.url = "http://" + ln.Addr().String()
	return f
}

type fakeOrder struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Items  []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"items"`
}

func (f *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/metrics" {
		f.metrics(ctx)
		return
	}
	if string(ctx.Path()) != "/v1/orders" || !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	if f.serialize {
		f.serial.Lock()
		defer f.serial.Unlock()
	}
	n := f.requests.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if n == f.stallOn {
		time.Sleep(f.stall)
	}
	body := string(ctx.PostBody())
	var o fakeOrder
	if err := json.Unmarshal([]byte(body), &o); err != nil || o.ID == "" {
		f.mu.Lock()
		f.badRequests++
		f.mu.Unlock()
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))

	f.mu.Lock()
	defer f.mu.Unlock()
	f.contentTypes[string(ctx.Request.Header.ContentType())]++
	if key == "" {
		f.withoutKey++
	}
	if f.fail503Every > 0 && n%f.fail503Every == 0 {
		f.refused = append(f.refused, o.ID)
		ctx.Response.Header.Set("Retry-After", "1")
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	}
	status := fasthttp.StatusCreated
	if prev, ok := f.bodies[o.ID]; ok {
		if prev != body || key != "" && f.keys[key] != o.ID {
			f.keyMismatch++
			ctx.SetStatusCode(fasthttp.StatusConflict)
			return
		}
		status = fasthttp.StatusOK
		f.resent++
	} else {
		f.bodies[o.ID] = body
		if key != "" {
			f.keys[key] = o.ID
		}
		f.created++
	}
	f.acked = append(f.acked, o.ID)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"id":"` + o.ID + `","status":"created","total_cents":100,"currency":"EUR"}`)
}

// metrics serves counters that grow with the requests handled.
func (f *fakeServer) metrics(ctx *fasthttp.RequestCtx) {
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

// snapshot returns sorted, unique acked and refused ids.
func (f *fakeServer) snapshot() (acked, refused []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	acked = slices.Compact(slices.Sorted(slices.Values(f.acked)))
	refused = slices.Compact(slices.Sorted(slices.Values(f.refused)))
	return acked, refused
}
