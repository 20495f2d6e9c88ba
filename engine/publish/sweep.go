package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine/order"
)

// sweepTimeout bounds one sweep (select, produce, wait for every ack,
// record the acks, commit): the time its records may take to be acknowledged
// (DeliveryTimeout) plus slack for PostgreSQL. Past it the sweep rolls back;
// its records stay in flight and their acknowledgements are recorded as they
// arrive (see produceSweep).
func (c Config) sweepTimeout() time.Duration { return c.DeliveryTimeout + 5*time.Second }

// sweepLoop is the sweeper goroutine: every SweepInterval it runs a pass,
// until ctx ends.
func (p *Publisher) sweepLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.sweepPass(ctx)
	}
}

// sweepPass sweeps page after page while pages come back full. A pass that
// reached the end has published every event committed before the time the
// store reports, which releases the gate's holds up to that moment; the
// pass then lets the store truncate what is all published.
func (p *Publisher) sweepPass(ctx context.Context) {
	for ctx.Err() == nil {
		if p.sweepInflight.Load() > 0 {
			return // an abandoned sweep's records are still in flight
		}
		before, err := p.sweepOnce(ctx)
		if errors.Is(err, errNoRoom) {
			return // the client is full (Kafka slow or away): next interval
		}
		var busy interface{ SweepBusy() bool }
		if errors.As(err, &busy) && busy.SweepBusy() {
			// Another sweep (another instance, or this one's previous
			// transaction not yet gone) holds the lock: nothing was swept,
			// so nothing may be released from the gate.
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down; the events stay for the next instance
			}
			p.sweepRunsErr.Inc()
			p.logErr("outbox sweep failed; its events stay for the next run", err)
			return
		}
		p.sweepRunsOK.Inc()
		if !before.IsZero() {
			p.gate.advance(before.Add(-clockMargin).UnixNano())
			p.reclaim(ctx)
			return
		}
	}
}

// reclaim asks the store to truncate the ring slots whose events are all
// published.
func (p *Publisher) reclaim(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, reclaimTimeout)
	defer cancel()
	n, err := p.ob.ReclaimOutbox(ctx)
	if n > 0 {
		p.m.OutboxTruncated.Add(float64(n))
	}
	if err != nil && ctx.Err() == nil {
		p.logErr("outbox truncation failed; the next pass tries again", err)
	}
}

// sweepOnce runs one SweepEvents transaction. It returns the time before
// which every committed event is published when the sweep caught up, the
// zero time when another page follows.
func (p *Publisher) sweepOnce(ctx context.Context) (time.Time, error) {
	// A page must fit whole in the client's buffer (see produceSweep): take
	// no more events than there is room for now.
	limit := int(min(int64(p.cfg.SweepLimit), int64(p.cfg.MaxBufferedRecords)-p.inflight.Load()))
	if limit <= 0 {
		return time.Time{}, errNoRoom
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.sweepTimeout())
	defer cancel()
	_, before, err := p.ob.SweepEvents(ctx, p.cfg.SweepGrace, limit, func(events []order.Event) error {
		return p.produceSweep(ctx, events)
	})
	return before, err
}

// sweepBatch tracks the acknowledgements of one sweep's records.
type sweepBatch struct {
	left      atomic.Int64 // records without a promise yet, +1 until all are produced
	done      chan struct{}
	abandoned atomic.Bool // the sweep stopped waiting and rolled back

	mu     sync.Mutex
	failed int
	err    error // the first failure
}

func (b *sweepBatch) finish(err error) {
	if err != nil {
		b.mu.Lock()
		if b.failed++; b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	if b.left.Add(-1) == 0 {
		close(b.done)
	}
}

// errNoRoom: the client's buffer cannot take a whole page now.
var errNoRoom = errors.New("kafka client buffer full: sweep postponed")

// produceSweep produces events (in the order given: the store's seq order,
// which is version order within each order) and waits until the broker acknowledged every one, or one
// failed, or ctx ended.
//
// The records carry no deadline, like the fast path's, and go in only when
// the whole page fits under the buffer bounds: a page half accepted, or a
// record failed on a deadline while a later version of its order got
// through, would publish that order out of order. So a record is never
// failed short of Shutdown; when the sweep stops waiting (ctx) it rolls back,
// the records stay in flight, and the acker records each one's
// acknowledgement as it arrives. No new sweep starts until they have all
// resolved (sweepInflight).
func (p *Publisher) produceSweep(ctx context.Context, events []order.Event) error {
	if len(events) == 0 {
		return nil
	}
	var size int64
	for i := range events {
		size += eventSize(&events[i], len(p.source))
	}
	if p.inflight.Load()+int64(len(events)) > int64(p.cfg.MaxBufferedRecords) ||
		p.inflightBytes.Load()+size > int64(p.cfg.MaxBufferedBytes) {
		return errNoRoom
	}
	b := &sweepBatch{done: make(chan struct{})}
	b.left.Store(int64(len(events)) + 1)
	now := time.Now()
	for i := range events {
		r := getRecord()
		p.fill(r, &events[i])
		r.start = now
		r.sweep = b
		p.inflight.Add(1)
		p.inflightBytes.Add(r.size)
		p.sweepInflight.Add(1)
		p.cl.TryProduce(context.Background(), &r.rec, p.sweepPromise)
	}
	b.finish(nil)
	select {
	case <-b.done:
	case <-ctx.Done():
		b.abandoned.Store(true)
		return fmt.Errorf("wait for acks of %d swept events: %w", len(events), ctx.Err())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return fmt.Errorf("publish swept events: %d of %d failed: %w", b.failed, len(events), b.err)
	}
	return nil
}

// onSweepAck is the sweeper's promise; like onFastAck it must not block.
func (p *Publisher) onSweepAck(rec *kgo.Record, err error) {
	r := rec.Context.(*pubRec)
	p.inflight.Add(-1)
	p.inflightBytes.Add(-r.size)
	p.sweepInflight.Add(-1)
	if err == nil {
		p.sweepOK.Inc()
		if r.sweep.abandoned.Load() {
			// Its sweep rolled back without recording it: record it now
			// that the broker has it.
			p.acks.add(r.seq)
		}
	} else {
		p.sweepErr.Inc()
	}
	r.sweep.finish(err)
	putRecord(r)
}
