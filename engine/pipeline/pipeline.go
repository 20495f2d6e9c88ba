package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrOverloaded is returned by TrySubmit when the queue holds its limit of
// rows. Nothing was queued; the caller answers 503 with Retry-After.
var ErrOverloaded = errors.New("pipeline queue full: raise -pipeline.queue-rows or add writer capacity")

// ErrClosed is returned by TrySubmit once Close has begun.
var ErrClosed = errors.New("pipeline closed")

// Item is what the pipeline queues: a group of rows that is committed
// together and whose submitter waits for Complete.
type Item interface {
	// Len is the number of rows the item counts as (orders, status changes).
	Len() int
	// Bytes is the memory the item holds, counted against MaxBatchBytes.
	Bytes() int
	// Complete is called exactly once per submit, after the sink wrote the
	// item's results. It must not block.
	Complete()
}

// Sink commits a batch of items. Write must set a result on every item of the
// batch before it returns (there is no error to return: a failure is a result
// of its own for each item). ctx carries the per-batch deadline.
//
// Write is called from several writer goroutines at once.
type Sink[T Item] interface {
	Write(ctx context.Context, batch []T)
}

// Pipeline is a bounded queue of items drained by a fixed set of writer
// goroutines, each of which takes everything queued up to the batch limits,
// hands it to the Sink as one batch and completes each item.
//
// TrySubmit never blocks. Pipeline is safe for concurrent use.
type Pipeline[T Item] struct {
	cfg  Config
	sink Sink[T]

	mu      sync.Mutex // guards the fields below
	queue   []T
	rows    int // Σ Len() over queue
	bytes   int // Σ Bytes() over queue
	closed  bool
	started bool
	// committing counts the writers between taking a batch and completing
	// it (BusyLinger waits while it is above 0).
	committing int

	// notify wakes one waiting writer. Size 1: a pending wake-up is enough,
	// since a writer takes everything (up to the limits) and re-notifies
	// when it leaves items behind.
	notify  chan struct{}
	closing chan struct{} // closed by Close: wakes every writer to drain
	wg      sync.WaitGroup
}

// New returns a pipeline writing to sink. Call Start before submitting.
func New[T Item](cfg Config, sink Sink[T]) (*Pipeline[T], error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pipeline[T]{
		cfg:     cfg,
		sink:    sink,
		queue:   make([]T, 0, 1024),
		notify:  make(chan struct{}, 1),
		closing: make(chan struct{}),
	}, nil
}

// Start launches the writers. It may be called once.
func (p *Pipeline[T]) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		panic("BUG: pipeline started twice")
	}
	p.started = true
	for range p.cfg.Writers {
		p.wg.Go(p.writer)
	}
}

// TrySubmit queues it, or fails at once with ErrOverloaded (queue at its row
// limit) or ErrClosed. After a nil return the pipeline owns it until it calls
// it.Complete. An item larger than the whole queue is admitted when the
// queue is empty, so that it is not refused forever.
func (p *Pipeline[T]) TrySubmit(it T) error {
	n := it.Len()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.rows+n > p.cfg.QueueRows && len(p.queue) > 0 {
		p.mu.Unlock()
		return ErrOverloaded
	}
	p.queue = append(p.queue, it)
	p.rows += n
	p.bytes += it.Bytes()
	if p.cfg.OnDepth != nil {
		p.cfg.OnDepth(p.rows) // under the lock: see Config.OnDepth
	}
	p.mu.Unlock()
	p.wake()
	return nil
}

// Depth reports the rows queued and not yet taken by a writer.
func (p *Pipeline[T]) Depth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rows
}

// Capacity reports the queue's row limit.
func (p *Pipeline[T]) Capacity() int { return p.cfg.QueueRows }

func (p *Pipeline[T]) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Close stops intake (TrySubmit fails with ErrClosed from now on), lets the
// writers commit everything already queued, and waits for them. If ctx ends
// first it returns ctx's error; the writers keep draining in the background
// and every queued item is still completed.
func (p *Pipeline[T]) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pipeline %s: drain: %w", p.cfg.Name, ctx.Err())
	}
}

// writer is one writer goroutine's loop.
func (p *Pipeline[T]) writer() {
	batch := make([]T, 0, 64)
	var linger *time.Timer
	if p.cfg.Linger > 0 || p.cfg.BusyLinger > 0 && p.cfg.Writers > 1 {
		linger = time.NewTimer(time.Hour)
		linger.Stop()
	}
	for {
		batch = p.next(batch[:0], linger)
		if len(batch) == 0 {
			return
		}
		p.write(batch)
		clear(batch)
	}
}

func (p *Pipeline[T]) write(batch []T) {
	if p.cfg.OnBatch != nil {
		rows, bytes := 0, 0
		for _, it := range batch {
			rows += it.Len()
			bytes += it.Bytes()
		}
		p.cfg.OnBatch(rows, bytes)
	}
	// Not derived from any request's context: a client that goes away must
	// not cancel a commit that other requests in the batch wait for.
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.WriteTimeout)
	p.sink.Write(ctx, batch)
	cancel()
	for _, it := range batch {
		it.Complete()
	}
	p.mu.Lock()
	p.committing--
	wake := p.committing == 0 && len(p.queue) > 0
	p.mu.Unlock()
	if wake {
		p.wake() // a writer waiting for this commit (BusyLinger) goes now
	}
}

// next waits for work and takes up to the batch limits. It returns an empty
// batch only when the pipeline is closed and drained.
func (p *Pipeline[T]) next(batch []T, linger *time.Timer) []T {
	var first time.Time // when this writer first found rows
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			full := p.rows >= p.cfg.MaxBatchRows || p.bytes >= p.cfg.MaxBatchBytes
			wait := p.cfg.Linger
			if p.committing > 0 {
				wait = max(wait, p.cfg.BusyLinger)
			}
			if linger == nil || wait == 0 || full || p.closed {
				break // take now, lock held
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			deadline := first.Add(wait)
			if !now.Before(deadline) {
				break
			}
			p.mu.Unlock()
			linger.Reset(deadline.Sub(now))
			select {
			case <-p.notify:
			case <-linger.C:
			case <-p.closing:
			}
			linger.Stop()
			continue
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return batch
		}
		select {
		case <-p.notify:
		case <-p.closing:
		}
	}
	// p.mu is held here and the queue is not empty.
	rows, bytes, k := 0, 0, 0
	for ; k < len(p.queue); k++ {
		it := p.queue[k]
		n, sz := it.Len(), it.Bytes()
		if k > 0 && (rows+n > p.cfg.MaxBatchRows || bytes+sz > p.cfg.MaxBatchBytes) {
			break
		}
		rows += n
		bytes += sz
		batch = append(batch, it)
	}
	rest := copy(p.queue, p.queue[k:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	p.rows -= rows
	p.bytes -= bytes
	if p.cfg.OnDepth != nil {
		p.cfg.OnDepth(p.rows) // under the lock: see Config.OnDepth
	}
	left := rest > 0
	p.committing++ // until write has completed the batch
	p.mu.Unlock()
	if left {
		p.wake() // let another writer take the rest
	}
	return batch
}
