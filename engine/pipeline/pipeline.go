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

// Config tunes a Pipeline. The zero value of each field means its default.
type Config struct {
	// Name labels the pipeline in logs and metrics ("orders", "status").
	Name string
	// Writers is the number of goroutines committing batches concurrently;
	// each holds one database connection while it commits. Default: 2 (the
	// measured best on a 2-core box; more adds latency, not throughput).
	Writers int
	// QueueRows bounds the rows waiting for a writer. TrySubmit fails with
	// ErrOverloaded beyond it. Default: 20000.
	QueueRows int
	// MaxBatchRows caps the rows one transaction takes. Default: 2000.
	MaxBatchRows int
	// MaxBatchBytes caps the request bytes one transaction takes. A single
	// item larger than this still goes through alone. Default: 8 MiB.
	MaxBatchBytes int
	// Linger is how long a writer that found fewer than MaxBatchRows rows
	// waits for more before committing. Default: 0: a writer takes what is
	// queued at once (natural batching: requests pile up while the other
	// writers commit).
	Linger time.Duration
	// WriteTimeout bounds one Sink.Write call (retries included). Default: 10s.
	WriteTimeout time.Duration

	// OnDepth, when set, is called with the queued row count after every
	// change (for a gauge). It is called with the queue's lock held, so that
	// calls arrive in the order of the changes and the last one is the
	// current depth: it must be cheap and must not block or call back into
	// the pipeline.
	OnDepth func(rows int)
	// OnBatch, when set, is called with each batch's rows and bytes before it
	// is written.
	OnBatch func(rows, bytes int)
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Writers: 2, QueueRows: 20000, MaxBatchRows: 2000, MaxBatchBytes: 8 << 20, WriteTimeout: 10 * time.Second}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Writers == 0 {
		c.Writers = d.Writers
	}
	if c.QueueRows == 0 {
		c.QueueRows = d.QueueRows
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = d.MaxBatchRows
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = d.MaxBatchBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
}

// Validate reports a configuration that cannot work, naming the flag. Zero
// fields are checked with their default values.
func (c Config) Validate() error {
	eff := c // the values New will use
	eff.fill()
	switch {
	case c.Writers < 0:
		return fmt.Errorf("-pipeline.writers must be ≥ 1, got %d", c.Writers)
	case c.QueueRows < 0:
		return fmt.Errorf("-pipeline.queue-rows must be ≥ 1, got %d", c.QueueRows)
	case c.MaxBatchRows < 0:
		return fmt.Errorf("-pipeline.batch-max-rows must be ≥ 1, got %d", c.MaxBatchRows)
	case c.MaxBatchBytes < 0:
		return fmt.Errorf("-pipeline.batch-max-bytes must be ≥ 1, got %d", c.MaxBatchBytes)
	case c.Linger < 0:
		return fmt.Errorf("-pipeline.linger must be ≥ 0, got %s", c.Linger)
	case c.WriteTimeout < 0:
		return fmt.Errorf("-pipeline.write-timeout must be > 0, got %s", c.WriteTimeout)
	case eff.MaxBatchRows > eff.QueueRows:
		return fmt.Errorf("-pipeline.batch-max-rows (%d) must not exceed -pipeline.queue-rows (%d)", eff.MaxBatchRows, eff.QueueRows)
	}
	return nil
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

	// notify wakes one waiting writer. Size 1: a pending wake-up is enough,
	// since a writer takes everything (up to the limits) and re-notifies
	// when it leaves items behind.
	notify  chan struct{}
	closing chan struct{} // closed by Close: wakes every writer to drain
	wg      sync.WaitGroup
}

// New returns a pipeline writing to sink. Call Start before submitting.
func New[T Item](cfg Config, sink Sink[T]) (*Pipeline[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
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
	if p.cfg.Linger > 0 {
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
}

// next waits for work and takes up to the batch limits. It returns an empty
// batch only when the pipeline is closed and drained.
func (p *Pipeline[T]) next(batch []T, linger *time.Timer) []T {
	var deadline time.Time
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			full := p.rows >= p.cfg.MaxBatchRows || p.bytes >= p.cfg.MaxBatchBytes
			if linger == nil || full || p.closed {
				break // take now, lock held
			}
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(p.cfg.Linger)
			}
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
	p.mu.Unlock()
	if left {
		p.wake() // let another writer take the rest
	}
	return batch
}
