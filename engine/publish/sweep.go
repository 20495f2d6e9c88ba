package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
	var parked int
	_, before, err := p.ob.SweepEvents(ctx, p.cfg.SweepGrace, limit, func(events []order.Event) error {
		parked = 0
		err := p.produceSweep(ctx, events)
		if pe, ok := err.(*parkError); ok {
			parked = pe.dead
		}
		return err
	})
	if err == nil && parked > 0 {
		p.m.OutboxDeadLettered.Add(float64(parked))
	}
	return before, err
}

// sweepBatch tracks the acknowledgements of one sweep's records.
type sweepBatch struct {
	left      atomic.Int64 // records without a promise yet, +1 until all are produced
	done      chan struct{}
	abandoned atomic.Bool // the sweep stopped waiting and rolled back

	mu     sync.Mutex
	failed int
	err    error   // the first failure
	errs   []error // per record, by its index in the page
}

func (b *sweepBatch) finish(idx int, err error) {
	if err != nil {
		b.mu.Lock()
		if b.failed++; b.err == nil {
			b.err = err
		}
		if idx >= 0 {
			b.errs[idx] = err
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
	b, err := p.produceWait(ctx, events)
	if err != nil {
		return err
	}
	if b.err == nil {
		return nil
	}
	for _, e := range b.errs {
		if e != nil && !permanent(e) {
			return fmt.Errorf("publish swept events: %d of %d failed: %w", b.failed, len(events), b.err)
		}
	}
	return p.isolate(ctx, events, b.errs)
}

// produceWait produces events and waits for every promise (see
// produceSweep); the batch's errs hold each record's failure.
func (p *Publisher) produceWait(ctx context.Context, events []order.Event) (*sweepBatch, error) {
	var size int64
	for i := range events {
		size += eventSize(&events[i], len(p.source))
	}
	if p.inflight.Load()+int64(len(events)) > int64(p.cfg.MaxBufferedRecords) ||
		p.inflightBytes.Load()+size > int64(p.cfg.MaxBufferedBytes) {
		return nil, errNoRoom
	}
	b := &sweepBatch{done: make(chan struct{}), errs: make([]error, len(events))}
	b.left.Store(int64(len(events)) + 1)
	now := time.Now()
	for i := range events {
		r := getRecord()
		p.fill(r, &events[i])
		r.start = now
		if p.cfg.Tracer != nil {
			r.span = p.cfg.Tracer.StartPublish(&events[i], "sweep")
		}
		r.sweep = b
		r.idx = i
		p.inflight.Add(1)
		p.inflightBytes.Add(r.size)
		p.sweepInflight.Add(1)
		p.cl.TryProduce(context.Background(), &r.rec, p.sweepPromise)
	}
	b.finish(-1, nil)
	select {
	case <-b.done:
	case <-ctx.Done():
		b.abandoned.Store(true)
		return nil, fmt.Errorf("wait for acks of %d swept events: %w", len(events), ctx.Err())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b, nil
}

// permanent reports whether the broker (or the client, for a record over
// its batch limit) refused a record for good: a Kafka error that is not
// retriable, such as MESSAGE_TOO_LARGE or TOPIC_AUTHORIZATION_FAILED.
// Errors about the producer's own state, an unknown server error, and
// anything that is not a Kafka error code (a closed client, a timeout)
// are not.
func permanent(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) || ke.Retriable {
		return false
	}
	switch ke {
	case kerr.UnknownServerError, kerr.OutOfOrderSequenceNumber, kerr.UnknownProducerID,
		kerr.InvalidProducerIDMapping, kerr.InvalidProducerEpoch, kerr.DuplicateSequenceNumber,
		kerr.ProducerFenced, kerr.InvalidTxnState:
		return false
	}
	return true
}

// sweepAttempts is how many times a refused record is produced (with its
// page, then alone) before it is parked.
const sweepAttempts = 2

// isolate runs after a page whose failures were all permanent. A refused
// batch fails every record in it, and the client fails every record queued
// behind it in the partition, so most of those records are good: each
// failed record is produced again alone, in seq order. One refused again
// for good fails on its own and is parked; the later events of its order in
// the page are parked behind it without being produced (a consumer never
// sees a version without the one before). It returns nil when every record
// got through, a parkError listing what to park, or an error (the sweep
// rolls back and the next one starts over) when a retry failed otherwise.
func (p *Publisher) isolate(ctx context.Context, events []order.Event, errs []error) error {
	var parked []order.ParkedEvent
	var stuck map[string]int32 // order id → the parked version
	for i := range events {
		if errs[i] == nil {
			continue
		}
		ev := &events[i]
		if v, ok := stuck[ev.OrderID]; ok {
			parked = append(parked, order.ParkedEvent{Seq: ev.Seq, Err: fmt.Sprintf("waits behind parked version %d", v)})
			continue
		}
		b, err := p.produceWait(ctx, events[i:i+1])
		if err != nil {
			return fmt.Errorf("publish refused event %s/%d alone: %w", ev.OrderID, ev.Version, err)
		}
		if b.err == nil {
			continue
		}
		if !permanent(b.err) {
			return fmt.Errorf("publish refused event %s/%d alone: %w", ev.OrderID, ev.Version, b.err)
		}
		if stuck == nil {
			stuck = make(map[string]int32)
		}
		stuck[ev.OrderID] = ev.Version
		parked = append(parked, order.ParkedEvent{Seq: ev.Seq, Err: b.err.Error(), Attempts: sweepAttempts})
		p.gate.park(ev.OrderID, time.Now().UnixNano())
		p.log.Warn("outbox event refused by the broker for good: parked", "order_id", ev.OrderID, "version", ev.Version, "err", b.err)
	}
	if len(parked) == 0 {
		return nil
	}
	return &parkError{parked: parked, dead: len(stuck)}
}

// parkError is produceSweep's answer when some events of the page are
// refused for good: the store parks the events it lists (ParkedEvents) and
// records every other event of the page as published.
type parkError struct {
	parked []order.ParkedEvent
	dead   int // events refused themselves (the others wait behind them)
}

func (e *parkError) Error() string {
	return fmt.Sprintf("%d outbox events refused by the broker for good, %d parked", e.dead, len(e.parked))
}

func (e *parkError) ParkedEvents() []order.ParkedEvent { return e.parked }

// onSweepAck is the sweeper's promise; like onFastAck it must not block.
func (p *Publisher) onSweepAck(rec *kgo.Record, err error) {
	r := rec.Context.(*pubRec)
	if r.span != nil {
		r.span(rec.Partition, rec.Offset, err)
	}
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
	r.sweep.finish(r.idx, err)
	putRecord(r)
}
