package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

// Outbox is the outbox as the publisher sees it. *store.Store implements
// it. Implementations must be safe for concurrent use.
type Outbox interface {
	// AckEvents records that the broker acknowledged the events with these
	// seqs; unknown or repeated seqs are not an error. seqs are valid only
	// during the call.
	AckEvents(ctx context.Context, seqs []int64) error

	// SweepEvents, in one transaction, selects up to limit unacknowledged
	// events in seq order, stopping at the first one enqueued less than
	// olderThan ago, and calls fn with them (events valid only during fn).
	// If fn returns nil it records them as acknowledged and commits;
	// otherwise it rolls back and returns fn's error, unless that error has
	// a method ParkedEvents() []order.ParkedEvent: then it parks those
	// events, records the others as acknowledged and commits (and parks,
	// without calling fn, the events of orders with a parked event). It
	// returns the number
	// of events fn published and, when the sweep reached the end of what it
	// may publish, a time before which every committed event is published
	// (zero when another page follows).
	SweepEvents(ctx context.Context, olderThan time.Duration, limit int, fn func(events []order.Event) error) (int, time.Time, error)

	// OutboxStats returns the number of unacknowledged events and the age
	// of the oldest.
	OutboxStats(ctx context.Context) (backlog int64, oldestAge time.Duration, err error)

	// ReclaimOutbox frees the storage of events that are all published
	// (truncating whole partitions) and returns how many it freed.
	ReclaimOutbox(ctx context.Context) (int, error)
}

// Tracer starts a span per record produced (Config.Tracer; nil: off). Its
// StartPublish is called when a record of ev is handed to the client, with
// path "fast" or "sweep"; the function it returns is called once, from the
// record's promise (so it must not block), with where the record landed or
// why it failed. Implementations must be safe for concurrent use.
type Tracer interface {
	StartPublish(ev *order.Event, path string) func(partition int32, offset int64, err error)
}

// deadLister is implemented by an Outbox that parks events (the store):
// the number of parked events and the ids of their orders, whose later
// events stay off the fast path while they are parked.
type deadLister interface {
	DeadOrders(ctx context.Context) (int64, []string, error)
}

// SweepEvents may refuse to sweep because another sweep is running; it then
// returns an error with a method SweepBusy() bool reporting true. The
// publisher retries at the next interval and, above all, does not take the
// empty result for a caught-up outbox.

// Timeouts of the background Outbox calls.
const (
	ackTimeout     = 5 * time.Second
	backlogTimeout = 5 * time.Second
	reclaimTimeout = 10 * time.Second
	// errLogEvery rate-limits the log lines for per-record failures; the
	// counters have every one.
	errLogEvery = 5 * time.Second
)

// Constant CloudEvents header values, converted once.
var (
	hdrSpecVersion   = []byte("1.0")
	hdrContentType   = []byte("application/json")
	hdrCreated       = []byte(order.EventCreated)
	hdrStatusChanged = []byte(order.EventStatusChanged)
)

// ceTimeLayout is ce_time: RFC 3339, UTC, always with microseconds (the
// precision orderflow stores times with).
const ceTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// counter is the part of a Prometheus counter the hot path uses; resolving
// label values once keeps the lookup off it.
type counter interface{ Inc() }

// Publisher relays committed outbox events to Kafka: a fast path for the
// events the writers just committed, an acker that records what the broker
// acknowledged, and a sweeper for everything else. Create it with New, call
// Start, and Shutdown when done. Its methods are safe for concurrent use.
type Publisher struct {
	cfg    Config
	ob     Outbox
	cl     *kgo.Client
	klog   *kgoLogger // the client's logger and hooks
	log    *slog.Logger
	m      *metrics.Metrics
	gate   *gate
	source []byte // ce_source, read-only once New returns

	fastOK, fastErr, sweepOK, sweepErr counter
	sweepRunsOK, sweepRunsErr          counter

	// inflight and inflightBytes count records handed to the client whose
	// promise has not run: the fast path's own bound check, so that a full
	// client fails fast here instead of queueing an ErrMaxBuffered promise.
	inflight      atomic.Int64
	inflightBytes atomic.Int64

	fastPromise  func(*kgo.Record, error) // method values, bound once
	sweepPromise func(*kgo.Record, error)

	// sweepInflight counts swept records handed to the client whose promise
	// has not run. A sweep starts only when it is 0: a sweep that gave up
	// waiting leaves its records in flight (they are never failed, see
	// produceSweep), and sweeping again would only queue duplicates.
	sweepInflight atomic.Int64

	acks acker

	// Order across the fleet (fleet.go, ticket.go). fleet is nil unless
	// Register found an Outbox that keeps it; id is then this publisher's.
	fleet           fleetOutbox
	id              int32
	tickets         tickets
	holds           holds
	waits           waits
	waiting         atomic.Int64 // len(waits.list), read without the lock
	recordedHorizon atomic.Int64 // the largest horizon recorded in the store
	lastHorizonAt   time.Time    // keeper only: when it last recorded one itself

	orderWaitPublished, orderWaitHeld counter

	startNanos  int64 // when New ran: the holdAll mark
	cancelSweep context.CancelFunc
	cancelKeep  context.CancelFunc
	stopAck     chan struct{}
	sweepWG     sync.WaitGroup // sweeper and gauge loops
	keepWG      sync.WaitGroup // keeper
	ackWG       sync.WaitGroup // acker
	started     atomic.Bool
	shut        atomic.Bool
	lastErrLog  atomic.Int64
}

// New validates cfg (zero fields take their defaults) and creates the Kafka
// client; it does not contact the brokers. m nil means a private
// metrics.New(); log nil means slog.Default(). Call Start, then Shutdown.
func New(cfg Config, ob Outbox, m *metrics.Metrics, log *slog.Logger) (*Publisher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ob == nil {
		return nil, errors.New("publish: nil Outbox")
	}
	if m == nil {
		m = metrics.New()
	}
	if log == nil {
		log = slog.Default()
	}
	sec, err := cfg.Security.kgoOpts()
	if err != nil {
		return nil, err
	}
	klog := newKgoLogger(log, m.KafkaAuthFailures, cfg.Security)
	cl, err := kgo.NewClient(append(cfg.kgoOpts(klog), sec...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	p := &Publisher{
		cfg:                cfg,
		ob:                 ob,
		cl:                 cl,
		klog:               klog,
		log:                log,
		m:                  m,
		gate:               newGate(),
		source:             []byte(cfg.Source),
		fastOK:             m.Published.WithLabelValues("fast", "ok"),
		fastErr:            m.Published.WithLabelValues("fast", "error"),
		sweepOK:            m.Published.WithLabelValues("sweep", "ok"),
		sweepErr:           m.Published.WithLabelValues("sweep", "error"),
		sweepRunsOK:        m.SweepRuns.WithLabelValues("ok"),
		sweepRunsErr:       m.SweepRuns.WithLabelValues("error"),
		orderWaitPublished: m.OrderWaits.WithLabelValues("published"),
		orderWaitHeld:      m.OrderWaits.WithLabelValues("held"),
		startNanos:         time.Now().UnixNano(),
		stopAck:            make(chan struct{}),
	}
	p.fastPromise = p.onFastAck
	p.sweepPromise = p.onSweepAck
	p.acks.init(cfg)
	// Events a crashed instance left behind are unknown until the first
	// backlog count: until then (or until the sweeper has covered this
	// moment) status changes stay off the fast path. See gate.
	p.gate.holdAll(p.startNanos)
	return p, nil
}

// Client returns the underlying Kafka client, for metrics and tests. Do
// not produce through it, flush it or close it.
func (p *Publisher) Client() *kgo.Client { return p.cl }

// Start starts the acker, the sweeper and the backlog gauges. Call it once;
// Shutdown stops them.
func (p *Publisher) Start() {
	if p.started.Swap(true) || p.shut.Load() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancelSweep = cancel
	p.sweepWG.Go(func() { p.sweepLoop(ctx) })
	p.sweepWG.Go(func() { p.gaugeLoop(ctx) })
	p.ackWG.Go(p.ackLoop)
	p.sweepWG.Go(func() { p.probe(ctx) })
	kctx, kcancel := context.WithCancel(context.Background())
	p.cancelKeep = kcancel
	p.keepWG.Go(func() { p.keepLoop(kctx) })
}

// Shutdown stops the sweeper (a sweep in progress is abandoned and its
// events stay for the next run), flushes the client so that every event
// handed to it is acknowledged or failed, records the acknowledgements,
// closes the client and waits for every goroutine. Call it after the writers
// stopped calling Publish. It returns the first of the flush and ack errors, e.g.
// ctx's when the deadline came first; the client is closed either way.
// Calling it again returns nil at once.
func (p *Publisher) Shutdown(ctx context.Context) error {
	if p.shut.Swap(true) {
		return nil
	}
	t := time.Now()
	if p.cancelSweep != nil {
		p.cancelSweep()
	}
	p.sweepWG.Wait()
	p.log.Info("publish shutdown: sweeper stopped", "took", time.Since(t).String())
	if p.cancelKeep != nil {
		p.cancelKeep()
	}
	p.keepWG.Wait()
	// Nothing decides the waiting events any more: leave them to the
	// sweeper (holding their orders) before their tickets are counted.
	p.deferAllWaiters()

	t = time.Now()
	buffered := p.cl.BufferedProduceRecords()
	ferr := p.cl.Flush(ctx)
	if ferr != nil {
		ferr = fmt.Errorf("flush kafka client with %d records buffered: %w", buffered, ferr)
	}
	p.log.Info("publish shutdown: kafka client flushed", "records", buffered, "took", time.Since(t).String(), "err", ferr)

	t = time.Now()
	close(p.stopAck)
	p.ackWG.Wait()
	n, derr := p.acks.drain(ctx, p)
	p.log.Info("publish shutdown: acknowledgements recorded", "events", n, "took", time.Since(t).String(), "err", derr)

	t = time.Now()
	p.cl.Close()
	p.log.Info("publish shutdown: kafka client closed", "took", time.Since(t).String())

	// Close failed what the flush left: their orders are queued for holds.
	// Commit them and record the final horizon, so that other instances
	// need not wait for this one (with a budget of its own: the flush may
	// have used up ctx, and a hold not written only makes them wait).
	var kerr error
	if p.fleet != nil {
		t = time.Now()
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepTimeout)
		kerr = p.keepOnce(kctx, true)
		cancel()
		p.log.Info("publish shutdown: holds and horizon recorded", "horizon", p.tickets.horizon.Load(), "took", time.Since(t).String(), "err", kerr)
	}
	return errors.Join(ferr, derr, kerr)
}

// Publish is PublishFor with a ticket of its own, for events committed
// without one.
func (p *Publisher) Publish(events []order.Event) {
	p.PublishFor(p.Begin(), events, nil)
}

// PublishFor hands back tk, the ticket of a transaction that just ended,
// with the events it committed (nil if none) and the ids of the orders
// whose outcome is unknown (the commit may or may not have happened), and
// hands the events to the fast path. It returns at once: it never blocks on
// Kafka or PostgreSQL. It copies what it keeps, so the events may be reused
// as soon as it returns; tk must not be used after it. Call it in commit
// order: events of one order reach Kafka in the order PublishFor saw them.
//
// An event is left in the outbox for the sweeper, and counted in
// PublishDropped, when the client's buffer is at its bound, while an
// earlier event of its order is waiting for the sweeper (the gate), or when
// its order is held (order.AfterHeld); its order is then held, durably,
// before tk is resolved. An event whose previous version another publisher
// had not resolved (order.AfterTicket) waits for it (see doc.go, "Across the
// fleet"). The orders in unsure are held too.
func (p *Publisher) PublishFor(tk *Ticket, events []order.Event, unsure []string) {
	now := time.Now()
	nowNanos := now.UnixNano()
	for i := range events {
		tk.pending.Add(1)
		p.route(tk, &events[i], now, nowNanos)
	}
	for _, id := range unsure {
		tk.pending.Add(1)
		p.holdLater(id, 0, tk, nowNanos)
	}
	p.tickets.handBack(tk)
	p.tickets.release(tk)
}

// route sends one event of tk (its pending count already taken) to the
// fast path, the waiters or the sweeper.
func (p *Publisher) route(tk *Ticket, ev *order.Event, now time.Time, nowNanos int64) {
	if ev.After.Kind == order.AfterHeld {
		p.m.PublishDropped.Inc()
		p.holdLater(ev.OrderID, ev.Seq, tk, nowNanos)
		return
	}
	if p.waiting.Load() > 0 {
		// An earlier event of its order waiting here: queue behind it.
		queued, full := p.waitBehind(tk, ev, now)
		if queued {
			return
		}
		if full {
			p.orderWaitHeld.Inc()
			p.holdLater(ev.OrderID, ev.Seq, tk, nowNanos)
			return
		}
	}
	if !p.gate.admit(ev.OrderID, ev.Version, nowNanos, ev.After.Kind != order.AfterUnknown) {
		p.m.PublishDropped.Inc()
		p.holdLater(ev.OrderID, ev.Seq, tk, nowNanos)
		return
	}
	if ev.After.Kind == order.AfterTicket && !p.passed(ev.After) {
		if !p.wait(tk, ev, now) {
			p.orderWaitHeld.Inc()
			p.holdLater(ev.OrderID, ev.Seq, tk, nowNanos)
		}
		return
	}
	size := eventSize(ev, len(p.source))
	if p.inflight.Load() >= int64(p.cfg.MaxBufferedRecords) || p.inflightBytes.Load()+size > int64(p.cfg.MaxBufferedBytes) {
		p.m.PublishDropped.Inc()
		p.holdLater(ev.OrderID, ev.Seq, tk, nowNanos)
		return
	}
	r := getRecord()
	p.fill(r, ev)
	r.start, r.tk = now, tk
	if p.cfg.Tracer != nil {
		r.span = p.cfg.Tracer.StartPublish(ev, "fast")
	}
	p.inflight.Add(1)
	p.inflightBytes.Add(r.size)
	// No deadline: a record handed to the client stays there until the
	// broker acknowledges it (or Shutdown closes the client). A record
	// failed on a deadline while a later event of its order, produced
	// after it, is delivered would put that order's versions out of
	// order on the topic (the chaos suite caught exactly that); the
	// client keeps a partition's records in order as long as none fails.
	// Memory stays bounded by the inflight checks above.
	p.cl.TryProduce(context.Background(), &r.rec, p.fastPromise)
}

// onFastAck is the fast path's promise. It runs serially on the client's
// promise goroutine and must not block.
func (p *Publisher) onFastAck(rec *kgo.Record, err error) {
	r := rec.Context.(*pubRec)
	if r.span != nil {
		r.span(rec.Partition, rec.Offset, err)
	}
	p.inflight.Add(-1)
	p.inflightBytes.Add(-r.size)
	switch {
	case err == nil:
		p.fastOK.Inc()
		p.m.PublishSeconds.Observe(time.Since(r.start).Seconds())
		p.acks.add(r.seq)
		if r.tk != nil {
			p.tickets.release(r.tk)
		}
	case errors.Is(err, kgo.ErrMaxBuffered):
		// Our bound check raced the client's; same outcome.
		p.m.PublishDropped.Inc()
		p.holdRecord(r)
	default:
		p.fastErr.Inc()
		p.holdRecord(r)
		p.logErr("fast path record failed; the sweeper republishes it", err)
	}
	putRecord(r)
}

// holdRecord leaves a failed fast-path record's event to the sweeper.
func (p *Publisher) holdRecord(r *pubRec) {
	now := time.Now().UnixNano()
	if r.tk == nil {
		p.gate.hold(bytesutil.String(r.key), now)
		return
	}
	p.holdLater(bytesutil.String(r.key), r.seq, r.tk, now)
}

// logErr logs at most one failure line per errLogEvery.
func (p *Publisher) logErr(msg string, err error) {
	now := time.Now().UnixNano()
	last := p.lastErrLog.Load()
	if now-last < int64(errLogEvery) || !p.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn(msg, "err", err)
}

// gaugeLoop updates OutboxBacklog, OutboxOldestAge and ProducerBuffered
// every SweepInterval, starting at once. The first count also settles the
// start-up hold: an empty outbox means nothing was left behind.
func (p *Publisher) gaugeLoop(ctx context.Context) {
	first := true
	t := time.NewTicker(p.cfg.SweepInterval)
	defer t.Stop()
	for {
		p.m.ProducerBuffered.Set(float64(p.cl.BufferedProduceRecords()))
		cctx, cancel := context.WithTimeout(ctx, backlogTimeout)
		n, age, err := p.ob.OutboxStats(cctx)
		cancel()
		if err == nil {
			p.m.OutboxBacklog.Set(float64(n))
			p.m.OutboxOldestAge.Set(age.Seconds())
			if first && n == 0 {
				p.gate.releaseAll(p.startNanos)
			}
			first = false
		} else if ctx.Err() == nil {
			p.log.Warn("count outbox backlog", "err", err)
		}
		if p.fleet != nil {
			cctx, cancel := context.WithTimeout(ctx, backlogTimeout)
			n, err := p.fleet.HeldOrders(cctx)
			cancel()
			if err == nil {
				p.m.OutboxHeld.Set(float64(n))
			} else if ctx.Err() == nil {
				p.log.Warn("count held orders", "err", err)
			}
		}
		if d, ok := p.ob.(deadLister); ok {
			readAt := time.Now().UnixNano()
			cctx, cancel := context.WithTimeout(ctx, backlogTimeout)
			n, ids, err := d.DeadOrders(cctx)
			cancel()
			if err == nil {
				p.m.OutboxDead.Set(float64(n))
				p.gate.setParked(ids, readAt)
			} else if ctx.Err() == nil {
				p.log.Warn("count parked outbox events", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pubRec is a pooled record with the buffers its Key, Value and headers
// point into. rec.Context points back at the pubRec itself (kgo documents
// Record.Context as the place for per-record enrichment), which is how a
// promise finds it without a map or a closure per record; as a context it is
// context.Background, so it never cancels the record.
type pubRec struct {
	context.Context

	rec  kgo.Record
	hdrs [8]kgo.RecordHeader

	key, value, id, ts, typ []byte
	traceParent             order.TraceParent // the traceparent header's value
	traceState              []byte            // the tracestate header's value

	seq   int64                                          // the event's outbox seq, for its acknowledgement
	tk    *Ticket                                        // a fast-path record's ticket (resolved by its promise)
	span  func(partition int32, offset int64, err error) // ends the record's span (tracing on)
	idx   int                                            // a swept record's index in its page
	size  int64                                          // rec's key+value+header bytes, as kgo counts them
	start time.Time                                      // hand-off time, for PublishSeconds
	sweep *sweepBatch
}

// maxPooledBuf is the largest buffer a pooled record keeps (64 KiB, the
// request-sized cap of STYLE.md).
const maxPooledBuf = 64 << 10

var recPool = sync.Pool{New: func() any { return &pubRec{Context: context.Background()} }}

// getRecord returns an empty record. Follow with putRecord, only once its
// promise has run.
func getRecord() *pubRec { return recPool.Get().(*pubRec) }

// putRecord resets r and returns it to the pool. Only call it from r's
// promise (or for a record never produced): after that kgo no longer reads r.
func putRecord(r *pubRec) {
	r.reset()
	recPool.Put(r)
}

func (r *pubRec) reset() {
	r.rec = kgo.Record{}
	r.hdrs = [8]kgo.RecordHeader{}
	r.traceParent = order.TraceParent{}
	r.traceState = capBuf(r.traceState)
	r.key = capBuf(r.key)
	r.value = capBuf(r.value)
	r.id = capBuf(r.id)
	r.ts = capBuf(r.ts)
	r.typ = capBuf(r.typ)
	r.seq, r.tk, r.idx, r.size, r.start, r.sweep, r.span = 0, nil, 0, 0, time.Time{}, nil, nil
}

func capBuf(b []byte) []byte {
	if cap(b) > maxPooledBuf {
		return nil
	}
	return b[:0]
}

// fill copies ev into r's buffers and sets up r.rec as api/asyncapi.yaml
// describes (key, CloudEvents headers, and traceparent/tracestate when the
// event has them).
func (p *Publisher) fill(r *pubRec, ev *order.Event) {
	r.key = append(r.key[:0], ev.OrderID...)
	r.value = append(r.value[:0], ev.Payload...)
	r.id = append(r.id[:0], ev.OrderID...)
	r.id = append(r.id, '/')
	r.id = strconv.AppendInt(r.id, int64(ev.Version), 10)
	r.ts = ev.Time.UTC().AppendFormat(r.ts[:0], ceTimeLayout)
	var typ []byte
	switch ev.Type {
	case order.EventCreated:
		typ = hdrCreated
	case order.EventStatusChanged:
		typ = hdrStatusChanged
	default:
		r.typ = append(r.typ[:0], ev.Type...)
		typ = r.typ
	}
	r.hdrs = [8]kgo.RecordHeader{
		{Key: "ce_specversion", Value: hdrSpecVersion},
		{Key: "ce_type", Value: typ},
		{Key: "ce_source", Value: p.source},
		{Key: "ce_id", Value: r.id},
		{Key: "ce_time", Value: r.ts},
		{Key: "content-type", Value: hdrContentType},
	}
	n := 6
	if ev.TraceParent.Valid() {
		r.traceParent = ev.TraceParent
		r.hdrs[n] = kgo.RecordHeader{Key: hdrTraceParent, Value: r.traceParent[:]}
		n++
		if ev.TraceState != "" {
			r.traceState = append(r.traceState[:0], ev.TraceState...)
			r.hdrs[n] = kgo.RecordHeader{Key: hdrTraceState, Value: r.traceState}
			n++
		}
	}
	r.rec = kgo.Record{
		Key:       r.key,
		Value:     r.value,
		Headers:   r.hdrs[:n],
		Timestamp: ev.Time,
		Context:   r,
	}
	r.seq = ev.Seq
	var size int
	for _, h := range r.hdrs[:n] {
		size += len(h.Key) + len(h.Value)
	}
	r.size = int64(len(r.key) + len(r.value) + size)
}

// fixedHeaderBytes is the header bytes of a record that do not depend on the
// event: keys, ce_specversion, content-type, and "/" in ce_id.
var fixedHeaderBytes = len("ce_specversion") + len("ce_type") + len("ce_source") + len("ce_id") + len("ce_time") +
	len("content-type") + len(hdrSpecVersion) + len(hdrContentType) + 1

// The W3C trace context headers, sent only for an event that has them
// (lowercase names, as W3C Trace Context asks).
const (
	hdrTraceParent = "traceparent"
	hdrTraceState  = "tracestate"
)

// eventSize estimates (from above, within a few bytes) the bytes kgo will
// count for ev's record, before filling one.
func eventSize(ev *order.Event, sourceLen int) int64 {
	n := 2*len(ev.OrderID) + len(ev.Payload) + len(ev.Type) + sourceLen + len(ceTimeLayout) + 11 + fixedHeaderBytes
	if ev.TraceParent.Valid() {
		n += len(hdrTraceParent) + order.TraceParentLen
		if ev.TraceState != "" {
			n += len(hdrTraceState) + len(ev.TraceState)
		}
	}
	return int64(n)
}
