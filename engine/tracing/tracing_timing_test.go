package tracing

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/engine/order"
)

// BenchmarkSpansPerOrder is tracing's cost per order as the server pays it
// with tracing on: the order's request span (a child of its traceparent),
// its share of a group commit span of batch=N orders (one link each), and
// its record's publish span, through the batching span processor the
// server uses (spans dropped by a no-op exporter). Compare allocs/op with
// 0, tracing off's cost (ingest TestTraceContextAllocs,
// engine TestSinksAllocateNothingTracingOff, publish TestAllocs).
func BenchmarkSpansPerOrder(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			tr, err := New(context.Background(), Config{Enabled: true, Exporter: tracetest.NewNoopExporter()}, "orders", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = tr.Shutdown(context.Background()) }()
			in, _ := order.ParseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
			parents := make([]order.TraceParent, batch)
			ev := order.Event{OrderID: "ord_8f2k1", Version: 1, Type: order.EventCreated}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p, end := tr.StartRequest("POST /v1/orders", in, time.Now())
				end(201)
				parents[i] = p
				ev.TraceParent = p
				tr.StartPublish(&ev, "fast")(1, int64(i), nil)
				if i++; i == batch {
					tr.StartCommit("orders commit", time.Now(), batch, slices.Values(parents))(batch, 0)
					i = 0
				}
			}
		})
	}
}
