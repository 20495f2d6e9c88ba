package ingest

import (
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// benchCtx is a parsed request ready for Server.handle, reset between runs.
func benchCtx(method, path, auth string, body []byte) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetContentType("application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.SetBody(body)
	ctx := &fasthttp.RequestCtx{}
	// A 4-byte IP, as accepted IPv4 connections report it.
	ctx.Init(&req, &net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 5555}, nil)
	return ctx
}

// guardConfigs are the guard settings the benchmarks and alloc tests
// compare. Limits are high enough never to reject.
var guardConfigs = []struct {
	name string
	cfg  Config
}{
	{"off", Config{}},
	{"auth", Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}}},
	{"auth+key-limit", Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}, PerKeyLimit: Limit{Rate: 1e12, Burst: 1 << 30}}},
	{"ip-limit", Config{PerIPLimit: Limit{Rate: 1e12, Burst: 1 << 30}}},
	{"auth+key-limit+ip-limit", Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}, PerKeyLimit: Limit{Rate: 1e12, Burst: 1 << 30}, PerIPLimit: Limit{Rate: 1e12, Burst: 1 << 30}}},
}

// BenchmarkGuard measures a whole handler call on the cheapest route (an
// unknown path: route, guard, 404 body) with each guard setting, so the
// difference between sub-benchmarks is the guard's cost. redis=… runs need
// a Redis at ORDERFLOW_TEST_REDIS_URL (default 127.0.0.1:6379).
func BenchmarkGuard(b *testing.B) {
	for _, gc := range guardConfigs {
		b.Run("guard="+gc.name, func(b *testing.B) {
			ts := newTestServer(b, gc.cfg, nil)
			ctx := benchCtx("GET", "/nope", "Bearer "+keyB, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				ts.s.handle(ctx)
			}
			if c := ctx.Response.StatusCode(); c != 404 {
				b.Fatalf("status %d; want 404", c)
			}
		})
	}
	b.Run("guard=auth+key-limit+redis", func(b *testing.B) {
		opts, _ := redis.ParseURL(redisURL())
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		ts := newTestServer(b, Config{APIKeys: []APIKey{{Name: "bench", Key: keyA}}, PerKeyLimit: Limit{Rate: 1e9, Burst: 1 << 30}}, func(d *Deps) { d.Redis = rdb })
		ctx := benchCtx("GET", "/nope", "Bearer "+keyA, nil)
		b.ReportAllocs()
		for b.Loop() {
			ctx.Response.Reset()
			ts.s.handle(ctx)
		}
		if c := ctx.Response.StatusCode(); c != 404 {
			b.Fatalf("status %d; want 404", c)
		}
	})
}

// BenchmarkCreateOrderGuard is the same comparison on the real hot path,
// POST /v1/orders through decode, price and a fake commit.
func BenchmarkCreateOrderGuard(b *testing.B) {
	for _, gc := range guardConfigs {
		b.Run("guard="+gc.name, func(b *testing.B) {
			ts := newTestServer(b, gc.cfg, nil)
			ctx := benchCtx("POST", "/v1/orders", "Bearer "+keyA, []byte(validOrder))
			b.ReportAllocs()
			b.SetBytes(int64(len(validOrder)))
			for b.Loop() {
				ctx.Response.Reset()
				ts.s.handle(ctx)
			}
			if c := ctx.Response.StatusCode(); c != 201 {
				b.Fatalf("status %d; want 201", c)
			}
		})
	}
}
