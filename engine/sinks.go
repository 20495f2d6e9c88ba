package engine

import (
	"context"
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/engine/tracing"
)

// What the sinks call: *store.Store and *publish.Publisher (interfaces, so
// that a test can measure the sinks' own cost without a database).
type (
	orderWriter interface {
		WriteOrdersFor(context.Context, store.Ticket, []*order.Batch)
	}
	statusWriter interface {
		WriteStatusFor(context.Context, store.Ticket, []*order.UpdateBatch)
	}
	eventPublisher interface {
		Begin() *publish.Ticket
		PublishFor(tk *publish.Ticket, events []order.Event, unsure []string)
	}
)

var (
	_ orderWriter    = (*store.Store)(nil)
	_ statusWriter   = (*store.Store)(nil)
	_ eventPublisher = (*publish.Publisher)(nil)
)

// orderSink commits order batches and hands the committed events to the
// publisher's fast path. Write runs on several writer goroutines at once.
type orderSink struct {
	store  orderWriter
	pub    eventPublisher
	tracer *tracing.Tracer // nil: tracing off
}

// statusSink commits status-change batches and hands each new version's
// event to the publisher. The status pipeline runs one writer by default, so
// events reach the publisher in commit order.
type statusSink struct {
	store  statusWriter
	pub    eventPublisher
	tracer *tracing.Tracer // nil: tracing off
}

func (s *statusSink) Write(ctx context.Context, batches []*order.UpdateBatch) {
	var end func(committed, failed int)
	if s.tracer != nil {
		end = startStatusCommit(s.tracer, batches)
	}
	tk := s.pub.Begin()
	s.store.WriteStatusFor(ctx, storeTicket(tk), batches)
	if end != nil {
		end(statusCounts(batches))
	}
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

// storeTicket is tk as the store writes it.
func storeTicket(tk *publish.Ticket) store.Ticket {
	return store.Ticket{Publisher: tk.Publisher(), N: tk.N()}
}

// publishCommitted hands tk back with the events collect appends (those of
// one committed batch) and the orders whose commit is unknown, through
// pooled slices. PublishFor copies what it keeps and never blocks.
func publishCommitted(pub eventPublisher, tk *publish.Ticket, collect func([]order.Event, []string) ([]order.Event, []string)) {
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
	var end func(committed, failed int)
	if s.tracer != nil {
		end = startOrdersCommit(s.tracer, batches)
	}
	tk := s.pub.Begin()
	s.store.WriteOrdersFor(ctx, storeTicket(tk), batches)
	if end != nil {
		end(orderCounts(batches))
	}
	publishCommitted(s.pub, tk, func(events []order.Event, unsure []string) ([]order.Event, []string) {
		for _, b := range batches {
			for i := range b.Orders {
				switch o := &b.Orders[i]; {
				case o.Result.Outcome == order.OutcomeCreated:
					events = append(events, o.CreatedEvent())
				case o.Result.Outcome == order.OutcomeFailed && store.CommitUnknown(o.Result.Err),
					o.Result.Outcome == order.OutcomeDuplicate && o.Result.LeftToSweeper:
					unsure = append(unsure, o.ID)
				}
			}
		}
		return events, unsure
	})
}

// Commit spans (tracing on), called only with a tracer. The parents
// iterator is a closure over the batches; StartCommit only ranges over it,
// so it stays on the stack (TestSinksAllocateNothingTracingOff).

// startOrdersCommit starts the span of one orders group commit, linked to
// the request span of each order (its traceparent).
func startOrdersCommit(t *tracing.Tracer, batches []*order.Batch) func(committed, failed int) {
	rows := 0
	for _, b := range batches {
		rows += b.Len()
	}
	return t.StartCommit("orders commit", time.Now(), rows, func(yield func(order.TraceParent) bool) {
		for _, b := range batches {
			for i := range b.Orders {
				if !yield(b.Orders[i].TraceParent) {
					return
				}
			}
		}
	})
}

// startStatusCommit is startOrdersCommit for status changes.
func startStatusCommit(t *tracing.Tracer, batches []*order.UpdateBatch) func(committed, failed int) {
	rows := 0
	for _, b := range batches {
		rows += b.Len()
	}
	return t.StartCommit("status commit", time.Now(), rows, func(yield func(order.TraceParent) bool) {
		for _, b := range batches {
			for i := range b.Updates {
				if !yield(b.Updates[i].TraceParent) {
					return
				}
			}
		}
	})
}

// orderCounts counts the orders a commit created and those it failed.
func orderCounts(batches []*order.Batch) (created, failed int) {
	for _, b := range batches {
		for i := range b.Orders {
			switch b.Orders[i].Result.Outcome {
			case order.OutcomeCreated:
				created++
			case order.OutcomeFailed:
				failed++
			}
		}
	}
	return created, failed
}

// statusCounts counts the status changes a commit applied and those it
// failed.
func statusCounts(batches []*order.UpdateBatch) (applied, failed int) {
	for _, b := range batches {
		for i := range b.Updates {
			switch b.Updates[i].Outcome {
			case order.UpdateApplied:
				applied++
			case order.UpdateFailed:
				failed++
			}
		}
	}
	return applied, failed
}
