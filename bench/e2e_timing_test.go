package bench

import (
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

// The end-to-end benchmarks load an in-process server (a fresh one per
// sub-benchmark run) or, with -target, a running deployment (see
// target_test.go). Each fails when any answer is not the expected one
// (a 409, 429, 503, a transport error, a rejected item…), counting them by
// kind. Load is closed loop: conns workers, each with its own connection,
// send a request and wait for its answer.

// BenchmarkE2ECreateOrder drives POST /v1/orders through the real HTTP
// listener, PostgreSQL group commit and the broker: every iteration is one
// order acknowledged (201) after its commit. conns is the number of
// concurrent client connections. The orders/s metric is what the whole
// box achieves with client, server, database and broker sharing its cores
// (in-process), or what the deployment acknowledges to this client.
func BenchmarkE2ECreateOrder(b *testing.B) {
	for _, conns := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			t := benchTarget(b)
			hc := t.client(conns, 30*time.Second)
			defer hc.CloseIdleConnections()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			tl := t.createOrders(hc, conns, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			if err := tl.err(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(tl.acked.Load())/elapsed.Seconds(), "orders/s")
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
				t := benchTarget(b)
				hc := t.client(conns, 60*time.Second)
				defer hc.CloseIdleConnections()
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				tl := t.orderBatches(hc, conns, b.N, per)
				elapsed := time.Since(start)
				b.StopTimer()
				if err := tl.err(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(tl.acked.Load())/elapsed.Seconds(), "orders/s")
			})
		}
	}
}

// BenchmarkE2EStatusChange drives POST /v1/orders/{id}/status: before the
// clock starts it creates the orders it needs on the target (in bulk, 1000
// per request), then every iteration is one status change, each order
// moved paid → assembling → delivering → delivered by one worker, each
// change acknowledged (200) after its commit. changes/s counts them.
func BenchmarkE2EStatusChange(b *testing.B) {
	for _, conns := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			t := benchTarget(b)
			hc := t.client(conns, 30*time.Second)
			defer hc.CloseIdleConnections()
			orders := statusOrdersFor(b.N, conns)
			first, err := t.prepareOrders(hc, orders)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			tl := t.statusChanges(hc, conns, b.N, first, orders)
			elapsed := time.Since(start)
			b.StopTimer()
			if err := tl.err(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(tl.acked.Load())/elapsed.Seconds(), "changes/s")
		})
	}
}

// runSeq keeps the run ids of benchmarks started in one nanosecond apart.
var runSeq atomic.Int64

// BenchmarkE2ETracing is BenchmarkE2ECreateOrder on one connection, every
// request with a traceparent and tracestate, with OpenTelemetry tracing off
// and on (batched export to a no-op exporter: the SDK's work without a
// collector). The allocs/op difference is tracing's cost per order across
// the server (request, commit and publish spans); off carries the trace
// context to the events at no extra allocation.
func BenchmarkE2ETracing(b *testing.B) {
	skipUnderTarget(b, "it compares two servers of its own, tracing off and on")
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
