package engine

import (
	"context"
	"sync"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/engine/store"
)

// orderSink commits order batches and hands the committed events to the
// publisher's fast path. Write runs on several writer goroutines at once.
type orderSink struct {
	store *store.Store
	pub   *publish.Publisher
}

// statusSink commits status-change batches and hands each new version's
// event to the publisher. The status pipeline runs one writer by default, so
// events reach the publisher in commit order.
type statusSink struct {
	store *store.Store
	pub   *publish.Publisher
}

func (s *statusSink) Write(ctx context.Context, batches []*order.UpdateBatch) {
	s.store.WriteStatus(ctx, batches)
	publishCommitted(s.pub, func(events []order.Event) []order.Event {
		for _, b := range batches {
			for i := range b.Updates {
				if u := &b.Updates[i]; u.Outcome == order.UpdateApplied {
					events = append(events, u.ChangedEvent())
				}
			}
		}
		return events
	})
}

// publishCommitted hands the events collect appends (those of one committed
// batch) to the publisher's fast path, through a pooled slice. Publish
// copies what it keeps and never blocks.
func publishCommitted(pub *publish.Publisher, collect func([]order.Event) []order.Event) {
	evp := eventsPool.Get().(*[]order.Event)
	events := collect((*evp)[:0])
	if len(events) > 0 {
		pub.Publish(events)
	}
	putEvents(evp, events)
}

func putEvents(evp *[]order.Event, events []order.Event) {
	clear(events)
	if cap(events) <= 1<<14 {
		*evp = events[:0]
		eventsPool.Put(evp)
	}
}

var eventsPool = sync.Pool{New: func() any { s := make([]order.Event, 0, 256); return &s }}

func (s *orderSink) Write(ctx context.Context, batches []*order.Batch) {
	s.store.WriteOrders(ctx, batches)
	publishCommitted(s.pub, func(events []order.Event) []order.Event {
		for _, b := range batches {
			for i := range b.Orders {
				if o := &b.Orders[i]; o.Result.Outcome == order.OutcomeCreated {
					events = append(events, o.CreatedEvent())
				}
			}
		}
		return events
	})
}
