//go:build !race

package ingest

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/order"
)

// The guard allocates nothing per request with local limits, and nothing at
// all when off (the Server then holds no guard). Made to fail once by
// building the per-IP Redis key string before checking that Redis is
// configured: ip-limit went to 1 alloc/op.
func TestGuardAllocs(t *testing.T) {
	for _, gc := range guardConfigs {
		t.Run("guard="+gc.name, func(t *testing.T) {
			ts := newTestServer(t, gc.cfg, nil)
			ctx := benchCtx("GET", "/nope", "Bearer "+keyB, nil)
			for range 10 { // warm pools and the per-IP bucket
				ctx.Response.Reset()
				ts.s.handle(ctx)
			}
			got := testing.AllocsPerRun(200, func() {
				ctx.Response.Reset()
				ts.s.handle(ctx)
			})
			if got != 0 {
				t.Errorf("handle(GET /nope) allocates %v/op with guard=%s; want 0", got, gc.name)
			}
		})
	}
}

// Finding the client behind trusted proxies allocates nothing.
func TestClientIPAllocs(t *testing.T) {
	ts := newTestServer(t, Config{TrustedProxies: []string{"127.0.0.0/8", "10.0.0.0/8"}}, nil)
	var req fasthttp.Request
	req.Header.Add("X-Forwarded-For", "198.51.100.9, [2001:db8::1]:443")
	req.Header.Add("X-Forwarded-For", "203.0.113.1, 10.0.0.2")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	want := netip.MustParseAddr("203.0.113.1").As16()
	if got := ts.s.clientIP(&ctx); got != want {
		t.Fatalf("clientIP = %v; want %v", netip.AddrFrom16(got), netip.AddrFrom16(want))
	}
	if got := testing.AllocsPerRun(200, func() { ts.s.clientIP(&ctx) }); got != 0 {
		t.Errorf("clientIP behind trusted proxies allocates %v/op; want 0", got)
	}
}

// The write handlers allocate nothing for the trace context, whether the
// request has none, a valid one or an invalid one (tracing off: no Tracer):
// the traceparent goes into a fixed array, the tracestate through a stack
// buffer into the batch arena. The single endpoints allocate nothing at
// all; a two-item bulk request allocates bulkAllocs whatever its headers
// (its item list and response). Made to fail by letting the bulk splitter
// take its callback as a func value: the callbacks, the trace context and
// its buffer then moved to the heap (17 and 18 allocs/op; 14 and 15 before
// trace context, when the splitters were still called through a func value).
func TestTraceContextAllocs(t *testing.T) {
	const bulkAllocs = 7
	ts := newTestServer(t, Config{}, nil)
	ts.updates.verdict = func(u *order.Update) {
		u.Outcome, u.Previous, u.Version = order.UpdateApplied, order.StatusCreated, 2
	}
	bulk := []byte(validOrder + "\n" + strings.ReplaceAll(validOrder, "ord_1", "ord_2") + "\n")
	upd := []byte(`{"id":"ord_1","status":"paid"}` + "\n" + `{"id":"ord_2","status":"paid"}` + "\n")
	headers := map[string][]string{
		"none":    nil,
		"valid":   {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"},
		"invalid": {"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "tracestate", "a=1"},
	}
	f := func(path, ct string, body []byte, hdrName string, code int, want float64) {
		t.Helper()
		hdr := headers[hdrName]
		ctx := benchCtx("POST", path, "", body)
		ctx.Request.Header.SetContentType(ct)
		for i := 0; i+1 < len(hdr); i += 2 {
			ctx.Request.Header.Add(hdr[i], hdr[i+1])
		}
		for range 10 { // warm pools
			ctx.Response.Reset()
			ts.s.handle(ctx)
		}
		if c := ctx.Response.StatusCode(); c != code {
			t.Fatalf("POST %s: status %d; want %d: %s", path, c, code, ctx.Response.Body())
		}
		got := testing.AllocsPerRun(200, func() {
			ctx.Response.Reset()
			ts.s.handle(ctx)
		})
		if got > want {
			t.Errorf("POST %s, trace context %s: %v allocs/op; want at most %v", path, hdrName, got, want)
		}
	}
	for name := range headers {
		f("/v1/orders", "application/json", []byte(validOrder), name, 201, 0)
		f("/v1/orders/ord_1/status", "application/json", []byte(`{"status":"paid"}`), name, 200, 0)
		f("/v1/order-batches", "application/x-ndjson", bulk, name, 200, bulkAllocs)
		f("/v1/status-updates", "application/x-ndjson", upd, name, 200, bulkAllocs)
	}
}
