//go:build !race

package engine

import (
	"context"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/engine/store"
)

// fakeWriter commits every order and applies every status change, as the
// store would, without a database.
type fakeWriter struct{}

func (fakeWriter) WriteOrdersFor(_ context.Context, _ store.Ticket, bs []*order.Batch) {
	for _, b := range bs {
		for i := range b.Orders {
			b.Orders[i].Result = order.Result{Outcome: order.OutcomeCreated, EventSeq: int64(i + 1)}
		}
	}
}

func (fakeWriter) WriteStatusFor(_ context.Context, _ store.Ticket, bs []*order.UpdateBatch) {
	for _, b := range bs {
		for i := range b.Updates {
			b.Updates[i].Outcome, b.Updates[i].Version = order.UpdateApplied, 2
		}
	}
}

// fakePublisher counts the events handed to it that carry a traceparent.
// Its tickets are nil (no publisher).
type fakePublisher struct{ events, traced int }

func (p *fakePublisher) Begin() *publish.Ticket { return nil }

func (p *fakePublisher) PublishFor(_ *publish.Ticket, evs []order.Event, _ []string) {
	for i := range evs {
		p.events++
		if evs[i].TraceParent.Valid() && evs[i].TraceState != "" {
			p.traced++
		}
	}
}

// With tracing off, the sinks' own part of the commit path (around the
// store's write and the publisher's hand-off: the span hooks, collecting
// the committed events with their trace context into a pooled slice)
// allocates nothing. Made to fail once by collecting the events into a
// fresh slice instead of the pooled one (4 allocs/op).
func TestSinksAllocateNothingTracingOff(t *testing.T) {
	tp, _ := order.ParseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	ob := order.GetBatch()
	ub := order.GetUpdateBatch()
	for i := range 50 {
		ob.Orders = append(ob.Orders, order.Order{ID: "ord", TraceParent: tp, TraceState: "a=1"})
		ub.Add([]byte("ord"), order.StatusPaid, time.Now())
		ub.Updates[i].TraceParent, ub.Updates[i].TraceState = tp, "a=1"
	}
	obs, ubs := []*order.Batch{ob}, []*order.UpdateBatch{ub}
	pub := &fakePublisher{}
	os := &orderSink{store: fakeWriter{}, pub: pub}
	ss := &statusSink{store: fakeWriter{}, pub: pub}
	ctx := context.Background()
	os.Write(ctx, obs) // warm the events pool
	ss.Write(ctx, ubs)
	if pub.events != 100 || pub.traced != 100 {
		t.Fatalf("published %d events, %d with their trace context; want 100, 100", pub.events, pub.traced)
	}
	if n := testing.AllocsPerRun(100, func() { os.Write(ctx, obs) }); n != 0 {
		t.Errorf("orderSink.Write: %v allocs/op; want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { ss.Write(ctx, ubs) }); n != 0 {
		t.Errorf("statusSink.Write: %v allocs/op; want 0", n)
	}
}
