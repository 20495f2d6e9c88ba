package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/tracing"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// startServer runs a real orderflow server on loopback ports against a
// fresh database (demo catalog seeded) and the embedded broker, with the
// production timers, as `make run` does, and returns its address
// (host:port).
func startServer(b *testing.B) string {
	b.Helper()
	return enginetest.Start(b, enginetest.WithEmbeddedBroker(), enginetest.WithTimers(enginetest.Timers{})).Engine.Addr()
}

var runSeq atomic.Int64

// BenchmarkE2ECreateOrder drives POST /v1/orders through the real HTTP
// listener, PostgreSQL group commit and the embedded Kafka broker: every
// iteration is one order acknowledged after its commit. conns is the
// number of concurrent client connections (closed loop). The orders/s
// metric is what the whole box achieves with client, server, database and
// broker sharing its cores.
func BenchmarkE2ECreateOrder(b *testing.B) {
	for _, conns := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			addr := startServer(b)
			hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxConnWaitTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
			run := strconv.FormatInt(time.Now().UnixNano()+runSeq.Add(1), 36)
			var seq atomic.Int64
			var failed atomic.Int64
			b.SetParallelism((conns + 1) / 2) // RunParallel starts parallelism×GOMAXPROCS goroutines
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				body := make([]byte, 0, 256)
				for pb.Next() {
					n := seq.Add(1)
					body = append(body[:0], `{"id":"b_`...)
					body = append(body, run...)
					body = append(body, '_')
					body = strconv.AppendInt(body, n, 10)
					body = append(body, `","user_id":"u_42","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1},{"sku":"eggs-10","qty":1}]}`...)
					req.Reset()
					req.SetRequestURI("http://" + addr + "/v1/orders")
					req.Header.SetMethod(fasthttp.MethodPost)
					req.Header.SetContentType("application/json")
					req.SetBody(body)
					if err := hc.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusCreated {
						failed.Add(1)
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d of %d requests were not answered 201", f, seq.Load())
			}
			b.ReportMetric(float64(seq.Load())/elapsed.Seconds(), "orders/s")
		})
	}
}

// BenchmarkE2EOrderBatches drives POST /v1/order-batches (NDJSON) through
// the real listener: each iteration is one request of per orders, all
// committed (per-item 201) before the answer. orders/s counts orders.
func BenchmarkE2EOrderBatches(b *testing.B) {
	for _, per := range []int{100, 1000} {
		for _, conns := range []int{1, 4} {
			b.Run(fmt.Sprintf("orders_per_request=%d/conns=%d", per, conns), func(b *testing.B) {
				addr := startServer(b)
				hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxConnWaitTimeout: 60 * time.Second,
					ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, MaxResponseBodySize: 64 << 20}
				run := strconv.FormatInt(time.Now().UnixNano()+runSeq.Add(1), 36)
				var seq, requests, failed atomic.Int64
				b.SetParallelism((conns + 1) / 2)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					body := make([]byte, 0, per*160)
					for pb.Next() {
						body = body[:0]
						for range per {
							body = append(body, `{"id":"bb_`...)
							body = append(body, run...)
							body = append(body, '_')
							body = strconv.AppendInt(body, seq.Add(1), 10)
							body = append(body, `","user_id":"u_42","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1},{"sku":"eggs-10","qty":1}]}`+"\n"...)
						}
						req.Reset()
						req.SetRequestURI("http://" + addr + "/v1/order-batches")
						req.Header.SetMethod(fasthttp.MethodPost)
						req.Header.SetContentType("application/x-ndjson")
						req.SetBody(body)
						requests.Add(1)
						if err := hc.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusOK ||
							!bytes.HasPrefix(resp.Body(), []byte(`{"created":`+strconv.Itoa(per)+`,`)) {
							failed.Add(1)
						}
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				if f := failed.Load(); f > 0 {
					b.Fatalf("%d of %d requests did not commit every order", f, requests.Load())
				}
				b.ReportMetric(float64(seq.Load())/elapsed.Seconds(), "orders/s")
			})
		}
	}
}

// BenchmarkE2ETracing is BenchmarkE2ECreateOrder on one connection, every
// request with a traceparent and tracestate, with OpenTelemetry tracing off
// and on (batched export to a no-op exporter: the SDK's work without a
// collector). The allocs/op difference is tracing's cost per order across
// the server (request, commit and publish spans); off carries the trace
// context to the events at no extra allocation.
func BenchmarkE2ETracing(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("tracing=%v", on), func(b *testing.B) {
			addr := enginetest.Start(b, enginetest.WithEmbeddedBroker(), enginetest.WithTimers(enginetest.Timers{}),
				enginetest.WithConfig(func(c *engine.Config) {
					c.Tracing = tracing.Config{Enabled: on, Exporter: tracetest.NewNoopExporter()}
				})).Engine.Addr()
			hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
			run := strconv.FormatInt(time.Now().UnixNano()+runSeq.Add(1), 36)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			body := make([]byte, 0, 256)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n++
				body = append(body[:0], `{"id":"t_`...)
				body = append(body, run...)
				body = append(body, '_')
				body = strconv.AppendInt(body, int64(n), 10)
				body = append(body, `","user_id":"u_42","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1},{"sku":"eggs-10","qty":1}]}`...)
				req.Reset()
				req.SetRequestURI("http://" + addr + "/v1/orders")
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/json")
				req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				req.Header.Set("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
				req.SetBody(body)
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusCreated {
					b.Fatalf("POST: %v %d %s", err, resp.StatusCode(), resp.Body())
				}
			}
		})
	}
}
