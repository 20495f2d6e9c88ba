package publish

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/order"
)

// fleetOutbox is implemented by an Outbox that keeps each order's events in
// version order across instances (the store): see doc.go, "Across the
// fleet". Without it a publisher keeps order within its own process only.
type fleetOutbox interface {
	// RegisterPublisher adds this process as a publisher and returns its id.
	RegisterPublisher(ctx context.Context) (int32, error)
	// RecordHorizon records that publisher id resolved every ticket up to
	// horizon. Called only after the holds those tickets needed returned.
	RecordHorizon(ctx context.Context, id int32, horizon int64) error
	// AckEventsHorizon is AckEvents and RecordHorizon in one statement.
	AckEventsHorizon(ctx context.Context, seqs []int64, id int32, horizon int64) error
	// HoldOrders holds orders (ids) until the sweeper has published their
	// events up to seqs (0: every seq handed out so far); durable on nil.
	HoldOrders(ctx context.Context, ids []string, seqs []int64) error
	// PublisherHorizons reads the recorded horizons of pubs (-1: unknown).
	PublisherHorizons(ctx context.Context, pubs []int32) ([]int64, error)
	// BlockedOrders returns which of ids are held or parked (sorted).
	BlockedOrders(ctx context.Context, ids []string) ([]string, error)
	// HeldOrders counts the held orders.
	HeldOrders(ctx context.Context) (int64, error)
}

// Timeouts and bounds of the fleet bookkeeping.
const (
	keepTimeout = 5 * time.Second
	// horizonBeat: the horizon is recorded at least this often even when
	// it did not move (it also notes the publisher as alive).
	horizonBeat = time.Second
	// maxWaiters bounds the events waiting for another publisher; past it
	// an event that would wait is left to the sweeper at once.
	maxWaiters = 10000
)

// Register makes the publisher known to the outbox as one of the fleet's
// publishers (when the Outbox keeps order across instances; otherwise it
// does nothing). Call it once, before Start and before the first Begin.
func (p *Publisher) Register(ctx context.Context) error {
	f, ok := p.ob.(fleetOutbox)
	if !ok {
		return nil
	}
	id, err := f.RegisterPublisher(ctx)
	if err != nil {
		return err
	}
	p.fleet, p.id = f, id
	p.log.Info("registered as outbox publisher", "publisher", id)
	return nil
}

// ID returns the publisher's id (0 before Register).
func (p *Publisher) ID() int32 { return p.id }

// Begin issues the ticket of a writing transaction that is about to start:
// write its Publisher and N with the transaction's rows, then hand it back
// with PublishFor. Safe for concurrent use.
func (p *Publisher) Begin() *Ticket { return p.tickets.begin(p.id) }

// holds is the queue of orders to hold durably, filled by the fast path and
// the promises (never blocking) and flushed by the keeper.
type holds struct {
	mu   sync.Mutex
	ids  []string
	seqs []int64
	tks  []*Ticket // resolved (one event each) once the hold is committed
}

// holdLater leaves order id's event seq (0: unknown) to the sweeper: this
// process at once (the gate), every instance once the keeper has committed
// the hold and released tk's count for the event. It never blocks; id is
// copied.
func (p *Publisher) holdLater(id string, seq int64, tk *Ticket, now int64) {
	p.gate.hold(id, now)
	if p.fleet == nil {
		p.tickets.release(tk)
		return
	}
	id = strings.Clone(id)
	p.holds.mu.Lock()
	p.holds.ids = append(p.holds.ids, id)
	p.holds.seqs = append(p.holds.seqs, seq)
	p.holds.tks = append(p.holds.tks, tk)
	p.holds.mu.Unlock()
}

// flushHolds commits the queued holds in one statement and resolves their
// events; on failure they stay queued for the next pass.
func (p *Publisher) flushHolds(ctx context.Context) error {
	p.holds.mu.Lock()
	ids, seqs, tks := p.holds.ids, p.holds.seqs, p.holds.tks
	p.holds.ids, p.holds.seqs, p.holds.tks = nil, nil, nil
	p.holds.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, keepTimeout)
	err := p.fleet.HoldOrders(cctx, ids, seqs)
	cancel()
	if err != nil {
		p.holds.mu.Lock()
		p.holds.ids = append(ids, p.holds.ids...)
		p.holds.seqs = append(seqs, p.holds.seqs...)
		p.holds.tks = append(tks, p.holds.tks...)
		p.holds.mu.Unlock()
		return err
	}
	for _, tk := range tks {
		p.tickets.release(tk)
	}
	return nil
}

// waiter is an event whose previous version another publisher (or this
// one's transaction still being handed back) had not resolved when the
// event was committed: the fast path publishes it once that is done, or
// leaves it to the sweeper.
type waiter struct {
	r       *pubRec // filled, not produced
	tk      *Ticket
	id      string // copy
	version int32
	after   order.After
	since   int64       // unix ns
	ev      order.Event // what the tracer reads (tracing on): copies, no payload
}

// waits is the queue of waiters, in the order their events reached Publish
// (so each order's events stay in version order behind its first waiter).
type waits struct {
	mu     sync.Mutex
	list   []*waiter
	orders map[string]int // order id → waiters queued
}

// wait queues ev behind its predecessor. It reports false when the queue is
// full (the caller leaves ev to the sweeper).
func (p *Publisher) wait(tk *Ticket, ev *order.Event, now time.Time) bool {
	p.waits.mu.Lock()
	defer p.waits.mu.Unlock()
	return p.waitLocked(tk, ev, now)
}

// waitLocked queues ev: after the waiters of its order that come before it,
// before those that wait for its own ticket (their events came later in
// version order; with several writers, tk's PublishFor may run after a
// later version's).
func (p *Publisher) waitLocked(tk *Ticket, ev *order.Event, now time.Time) bool {
	if len(p.waits.list) >= maxWaiters {
		return false
	}
	r := getRecord()
	p.fill(r, ev)
	r.start, r.tk = now, tk
	w := &waiter{r: r, tk: tk, id: strings.Clone(ev.OrderID), version: ev.Version, after: ev.After, since: now.UnixNano()}
	if p.cfg.Tracer != nil {
		w.ev = order.Event{Seq: ev.Seq, OrderID: w.id, Version: ev.Version, Type: strings.Clone(ev.Type), Time: ev.Time,
			TraceParent: ev.TraceParent, TraceState: strings.Clone(ev.TraceState)}
	}
	if p.waits.orders == nil {
		p.waits.orders = make(map[string]int)
	}
	at := len(p.waits.list)
	if p.waits.orders[w.id] > 0 {
		for i, o := range p.waits.list {
			if o.id == w.id && o.version > w.version {
				at = i
				break
			}
		}
	}
	p.waits.list = slices.Insert(p.waits.list, at, w)
	p.waits.orders[w.id]++
	p.waiting.Add(1)
	return true
}

// waitBehind queues ev if an event of its order is waiting: ev must not
// overtake an earlier one, and a later one waits for ev's ticket. It
// reports whether it did; false with full set when the queue had no room.
func (p *Publisher) waitBehind(tk *Ticket, ev *order.Event, now time.Time) (queued, full bool) {
	p.waits.mu.Lock()
	defer p.waits.mu.Unlock()
	if p.waits.orders[ev.OrderID] == 0 {
		return false, false
	}
	if !p.waitLocked(tk, ev, now) {
		return false, true
	}
	return true, false
}

// passed reports whether the predecessor named by a (AfterTicket) is
// known, here, to be out of the way: only for this publisher's own tickets
// (handed back: their events are in the client ahead, held, or waiting).
// Another publisher's ticket is checked against the store (pollWaits).
func (p *Publisher) passed(a order.After) bool {
	return a.Publisher == p.id && p.id != 0 && p.tickets.isHandedBack(a.Ticket)
}

// foreign reports whether w waits for another publisher's ticket.
func (p *Publisher) foreign(w *waiter) bool {
	return w.after.Kind == order.AfterTicket && w.after.Publisher != p.id
}

// heads returns the first waiter of each order (the only ones that can be
// decided), in queue order. Call with waits.mu held.
func (p *Publisher) heads() []*waiter {
	var hs []*waiter
	seen := make(map[string]bool, len(p.waits.orders))
	for _, w := range p.waits.list {
		if !seen[w.id] {
			seen[w.id] = true
			hs = append(hs, w)
		}
	}
	return hs
}

// pollWaits decides the waiters whose predecessor is settled. It reads the
// horizons of the publishers the first waiter of each order waits for;
// for those whose predecessor's ticket is resolved, it then reads whether
// their orders are held or parked (a later snapshot than the horizons, so
// it sees any hold their publisher counted on: see BlockedOrders). Such a
// waiter is published if its order is not held, left to the sweeper if it
// is; one whose predecessor is this publisher's own goes once its ticket
// is handed back; one that waited longer than OrderWait goes to the
// sweeper. An order's later waiters stay behind its first.
func (p *Publisher) pollWaits(ctx context.Context) error {
	if p.waiting.Load() == 0 {
		return nil
	}
	p.waits.mu.Lock()
	var pubs []int32
	for _, w := range p.heads() {
		if p.foreign(w) && !slices.Contains(pubs, w.after.Publisher) {
			pubs = append(pubs, w.after.Publisher)
		}
	}
	p.waits.mu.Unlock()

	// settled: foreign waiters whose predecessor's ticket is resolved, and
	// whether their order is held.
	var (
		settled map[*waiter]bool
		err     error
	)
	if len(pubs) > 0 && p.fleet != nil {
		settled, err = p.settledWaiters(ctx, pubs)
	}

	now := time.Now()
	nowNanos := now.UnixNano()
	maxWait := int64(p.cfg.OrderWait)
	p.waits.mu.Lock()
	defer p.waits.mu.Unlock()
	kept := p.waits.list[:0]
	behind := map[string]bool{} // orders with a waiter kept in this pass
	for _, w := range p.waits.list {
		if behind[w.id] {
			kept = append(kept, w)
			continue
		}
		blocked, known := settled[w]
		release, hold := false, false
		switch {
		case w.after.Kind != order.AfterTicket:
			release = true // behind an earlier waiter of its order that went on
		case !p.foreign(w):
			release = p.passed(w.after)
		case known:
			release, hold = !blocked, blocked
		case nowNanos-w.since > maxWait:
			hold = true // the other publisher is slow, stuck or gone: the sweeper
		}
		switch {
		case hold:
			p.orderWaitHeld.Inc()
			p.deferRecord(w.r, w.id, now)
		case release:
			if w.after.Kind == order.AfterTicket {
				p.orderWaitPublished.Inc()
			}
			p.produceWaiter(w, nowNanos)
		default:
			behind[w.id] = true
			kept = append(kept, w)
			continue
		}
		if p.waits.orders[w.id]--; p.waits.orders[w.id] == 0 {
			delete(p.waits.orders, w.id)
		}
		p.waiting.Add(-1)
	}
	clear(p.waits.list[len(kept):])
	p.waits.list = kept
	return err
}

// settledWaiters reads the horizons of pubs, then, for the first waiter of
// each order whose predecessor's ticket they cover, whether its order is
// held or parked.
func (p *Publisher) settledWaiters(ctx context.Context, pubs []int32) (map[*waiter]bool, error) {
	cctx, cancel := context.WithTimeout(ctx, keepTimeout)
	defer cancel()
	horizons, err := p.fleet.PublisherHorizons(cctx, pubs)
	if err != nil {
		return nil, fmt.Errorf("read the horizons of %d publishers: %w", len(pubs), err)
	}
	var resolved []*waiter
	p.waits.mu.Lock()
	for _, w := range p.heads() {
		if i := slices.Index(pubs, w.after.Publisher); p.foreign(w) && i >= 0 && horizons[i] >= w.after.Ticket {
			resolved = append(resolved, w)
		}
	}
	p.waits.mu.Unlock()
	if len(resolved) == 0 {
		return nil, nil
	}
	ids := make([]string, len(resolved))
	for i, w := range resolved {
		ids[i] = w.id
	}
	blocked, err := p.fleet.BlockedOrders(cctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read holds of %d orders: %w", len(ids), err)
	}
	settled := make(map[*waiter]bool, len(resolved))
	for _, w := range resolved {
		_, settled[w] = slices.BinarySearch(blocked, w.id)
	}
	return settled, nil
}

// produceWaiter hands a released waiter's record to the client, or leaves
// it to the sweeper if the gate holds its order or the buffer is full.
func (p *Publisher) produceWaiter(w *waiter, nowNanos int64) {
	if !p.gate.admit(w.id, w.version, nowNanos, w.after.Kind != order.AfterUnknown) ||
		p.inflight.Load() >= int64(p.cfg.MaxBufferedRecords) || p.inflightBytes.Load()+w.r.size > int64(p.cfg.MaxBufferedBytes) {
		p.m.PublishDropped.Inc()
		p.deferRecord(w.r, w.id, time.Unix(0, nowNanos))
		return
	}
	if p.cfg.Tracer != nil {
		w.r.span = p.cfg.Tracer.StartPublish(&w.ev, "fast")
	}
	p.inflight.Add(1)
	p.inflightBytes.Add(w.r.size)
	p.cl.TryProduce(context.Background(), &w.r.rec, p.fastPromise)
}

// deferRecord leaves an unproduced record's event to the sweeper (holding
// its order) and frees the record.
func (p *Publisher) deferRecord(r *pubRec, id string, now time.Time) {
	p.holdLater(id, r.seq, r.tk, now.UnixNano())
	putRecord(r)
}

// deferAllWaiters leaves every waiting event to the sweeper (at shutdown).
func (p *Publisher) deferAllWaiters() {
	p.waits.mu.Lock()
	defer p.waits.mu.Unlock()
	now := time.Now()
	for _, w := range p.waits.list {
		p.deferRecord(w.r, w.id, now)
		p.waiting.Add(-1)
	}
	clear(p.waits.list)
	p.waits.list = p.waits.list[:0]
	clear(p.waits.orders)
}

// recordHorizon writes the horizon when it moved past what the acker last
// recorded with its acknowledgements (ackEvents), or every horizonBeat.
func (p *Publisher) recordHorizon(ctx context.Context, force bool) error {
	h := p.tickets.horizon.Load()
	now := time.Now()
	if !force && h <= p.recordedHorizon.Load() && now.Sub(p.lastHorizonAt) < horizonBeat {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, keepTimeout)
	defer cancel()
	if err := p.fleet.RecordHorizon(cctx, p.id, h); err != nil {
		return err
	}
	p.noteHorizon(h)
	p.lastHorizonAt = now
	return nil
}

// noteHorizon remembers that horizon h is recorded.
func (p *Publisher) noteHorizon(h int64) {
	for {
		old := p.recordedHorizon.Load()
		if h <= old || p.recordedHorizon.CompareAndSwap(old, h) {
			return
		}
	}
}

// ackEvents records acknowledgements, with the horizon when the Outbox
// keeps order across instances: most horizon moves then cost no statement
// of their own. Any horizon read now is safe to record: a ticket counts
// as resolved only once the holds it needed are committed.
func (p *Publisher) ackEvents(ctx context.Context, seqs []int64) error {
	if p.fleet == nil {
		return p.ob.AckEvents(ctx, seqs)
	}
	h := p.tickets.horizon.Load()
	if err := p.fleet.AckEventsHorizon(ctx, seqs, p.id, h); err != nil {
		return err
	}
	p.noteHorizon(h)
	return nil
}

// keepOnce is one pass of the keeper: decide the waiters, commit the holds
// (theirs and the fast path's), then record the horizon those holds
// allowed. In that order: a horizon is recorded only after every hold it
// counts on is committed.
func (p *Publisher) keepOnce(ctx context.Context, force bool) error {
	werr := p.pollWaits(ctx)
	if p.fleet == nil {
		return werr
	}
	herr := p.flushHolds(ctx)
	if herr != nil {
		return herr
	}
	if err := p.recordHorizon(ctx, force); err != nil {
		return err
	}
	return werr
}

// keepLoop runs the keeper every DeleteInterval until ctx ends.
func (p *Publisher) keepLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.DeleteInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.keepOnce(ctx, false); err != nil && ctx.Err() == nil {
			p.logErr("outbox order keeping (holds, horizon) failed; the next pass tries again", err)
		}
	}
}
