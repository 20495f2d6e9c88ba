//go:build !race

package ingest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
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
