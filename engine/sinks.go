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
	tk := s.pub.Begin()
	s.store.WriteStatusFor(ctx, store.Ticket{Publisher: tk.Publisher(), N: tk.N()}, batches)
	publishCommitted(s.pub, tk, func(events []order.Event, unsure []string) ([]order.Event, []string) {
		for _, b := range batches {
			for i := range b.Updates {
				switch u := &b.Updates[i]; {
				case u.Outcome == order.UpdateApplied:
					events = append(events, u.ChangedEvent())
				case u.Outcome == order.UpdateFailed && store.CommitUnknown(u.Err):
					unsure = append(unsure, u.OrderID)
				}
			}
		}
		return events, unsure
	})
}

// publishCommitted hands tk back with the events collect appends (those of
// one committed batch) and the orders whose commit is unknown, through
// pooled slices. PublishFor copies what it keeps and never blocks.
func publishCommitted(pub *publish.Publisher, tk *publish.Ticket, collect func([]order.Event, []string) ([]order.Event, []string)) {
	evp := eventsPool.Get().(*eventBufs)
	events, unsure := collect(evp.events[:0], evp.unsure[:0])
	pub.PublishFor(tk, events, unsure)
	clear(events)
	clear(unsure)
	if cap(events) <= 1<<14 && cap(unsure) <= 1<<14 {
		evp.events, evp.unsure = events[:0], unsure[:0]
		eventsPool.Put(evp)
	}
}

type eventBufs struct {
	events []order.Event
	unsure []string
}

var eventsPool = sync.Pool{New: func() any { return &eventBufs{events: make([]order.Event, 0, 256)} }}

func (s *orderSink) Write(ctx context.Context, batches []*order.Batch) {
	tk := s.pub.Begin()
	s.store.WriteOrdersFor(ctx, store.Ticket{Publisher: tk.Publisher(), N: tk.N()}, batches)
	publishCommitted(s.pub, tk, func(events []order.Event, unsure []string) ([]order.Event, []string) {
		for _, b := range batches {
			for i := range b.Orders {
				switch o := &b.Orders[i]; {
				case o.Result.Outcome == order.OutcomeCreated:
					events = append(events, o.CreatedEvent())
				case o.Result.Outcome == order.OutcomeFailed && store.CommitUnknown(o.Result.Err):
					unsure = append(unsure, o.ID)
				}
			}
		}
		return events, unsure
	})
}
