package publish

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine/order"
)

// sweepTimeout bounds one sweep (select, produce, wait for every ack,
// delete, commit): twice the time a record may take to be acknowledged or
// failed, plus slack for PostgreSQL. Past it the sweep rolls back and its
// rows wait for the next run.
func (c Config) sweepTimeout() time.Duration { return 2*c.DeliveryTimeout + 5*time.Second }

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

// sweepPass sweeps page after page while pages come back full. A pass whose
// last page was short has published every row older than SweepGrace as of
// that page's start, which releases the gate's holds up to that moment.
func (p *Publisher) sweepPass(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		n, err := p.sweepOnce(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down; the rows stay for the next instance
			}
			p.sweepRunsErr.Inc()
			p.logErr("outbox sweep failed; its rows stay for the next run", err)
			return
		}
		p.sweepRunsOK.Inc()
		if n < p.cfg.SweepLimit {
			p.gate.advance(start.Add(-p.cfg.SweepGrace - clockMargin).UnixNano())
			return
		}
	}
}

// sweepOnce runs one SweepEvents transaction.
func (p *Publisher) sweepOnce(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.sweepTimeout())
	defer cancel()
	return p.ob.SweepEvents(ctx, p.cfg.SweepGrace, p.cfg.SweepLimit, func(events []order.Event) error {
		return p.produceSweep(ctx, events)
	})
}

// sweepBatch tracks the acknowledgements of one sweep's records.
type sweepBatch struct {
	left atomic.Int64 // records without a promise yet, +1 until all are produced
	done chan struct{}

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

// produceSweep produces events (in the order given: the store's
// order id, version order) and waits until the broker acknowledged every one,
// or one failed, or ctx ended. Produce blocks while the client's buffer is
// full: the sweeper may wait, unlike the fast path. Records still in flight
// when it gives up finish on their own; their rows are republished by a later
// sweep (at least once).
func (p *Publisher) produceSweep(ctx context.Context, events []order.Event) error {
	if len(events) == 0 {
		return nil
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
		p.cl.Produce(ctx, &r.rec, p.sweepPromise)
	}
	b.finish(nil)
	select {
	case <-b.done:
	case <-ctx.Done():
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
	if err == nil {
		p.sweepOK.Inc()
	} else {
		p.sweepErr.Inc()
	}
	r.sweep.finish(err)
	putRecord(r)
}
