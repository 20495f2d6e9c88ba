package bench

import (
	"fmt"
	"testing"
	"time"

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
