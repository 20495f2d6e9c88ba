package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// BatcherConfig configures a Batcher. The zero value of a field means its
// default.
type BatcherConfig struct {
	// MaxOrders flushes a batch when it holds this many orders. Default: 500
	// (the server takes up to 10,000).
	MaxOrders int
	// MaxBytes flushes a batch before its NDJSON body passes this size.
	// Default: 1 MiB (the server takes up to 16 MiB).
	MaxBytes int
	// Linger is how long the first order of a batch waits for company
	// before the batch is sent anyway. Default: 2ms.
	Linger time.Duration
	// MaxInflight bounds the batch requests in flight at once; while all
	// are busy, orders keep gathering into the next batch. Default: 4.
	MaxInflight int
	// BatchTimeout bounds one batch's request, retries included. A caller
	// whose own context ends earlier stops waiting (its order may still be
	// committed: the outcome is unknown). Default: 1 minute.
	BatchTimeout time.Duration
}

// ErrClosed is returned by Batcher.CreateOrder after Close.
var ErrClosed = errors.New("orderflow client: batcher closed")

// Batcher coalesces concurrent CreateOrder calls into POST /v1/order-batches
// requests: an order waits at most Linger for others, a batch goes out when
// it holds MaxOrders orders or MaxBytes bytes, and each caller gets its own
// order's result, as Client.CreateOrder would give it (items the server
// answered 503 are resent by the batch's retries). Create it with
// Client.NewBatcher, stop it with Close. Safe for concurrent use.
type Batcher struct {
	c   *Client
	cfg BatcherConfig

	mu     sync.RWMutex // held shared while sending to in; exclusively by Close
	closed bool
	in     chan *pendingOrder // capacity MaxOrders: a full channel makes callers wait (backpressure)
	sem    chan struct{}      // batch requests in flight
	done   chan struct{}      // closed when the dispatcher has flushed everything
}

// pendingOrder is one caller's order waiting for its batch.
type pendingOrder struct {
	line []byte
	res  *Created
	err  error
	done chan struct{}
}

// NewBatcher starts a Batcher that sends through c.
func (c *Client) NewBatcher(cfg BatcherConfig) *Batcher {
	if cfg.MaxOrders <= 0 {
		cfg.MaxOrders = 500
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 4
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = time.Minute
	}
	b := &Batcher{
		c:    c,
		cfg:  cfg,
		in:   make(chan *pendingOrder, cfg.MaxOrders),
		sem:  make(chan struct{}, cfg.MaxInflight),
		done: make(chan struct{}),
	}
	go b.dispatch()
	return b
}

// CreateOrder adds o to the next batch and waits for its result. It blocks
// while MaxOrders orders are already waiting (backpressure), and returns
// when the order's result is in or ctx ends; in the latter case the order
// may still be committed (an *Error with OutcomeKnown false), and a retry
// with the same id converges. o.IdempotencyKey is not sent: the id is the
// key. The bulk endpoint answers with the id and status code only: the
// Created has no TotalCents, and no Status on a replay.
func (b *Batcher) CreateOrder(ctx context.Context, o Order) (*Created, error) {
	line, err := json.Marshal(o)
	if err != nil {
		return nil, &Error{Err: err, OutcomeKnown: true}
	}
	p := &pendingOrder{line: line, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, &Error{Err: ErrClosed, OutcomeKnown: true}
	}
	select {
	case b.in <- p:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return nil, &Error{Err: context.Cause(ctx), OutcomeKnown: true}
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return nil, &Error{Err: context.Cause(ctx)}
	}
}

// Close stops taking orders, sends what is waiting, and returns once every
// batch has its answer (or ctx ends).
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("orderflow client: batcher close: %w", context.Cause(ctx))
	}
}

// dispatch gathers orders into batches and hands each to a sender. It owns
// every batch until then and exits once in is closed and drained and every
// sender is done.
func (b *Batcher) dispatch() {
	var wg sync.WaitGroup
	defer close(b.done)
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*pendingOrder
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		timer.Stop()
		b.sem <- struct{}{}
		out := batch
		batch, size = nil, 0
		wg.Go(func() {
			defer func() { <-b.sem }()
			b.send(out)
		})
	}
	for {
		select {
		case p, ok := <-b.in:
			if !ok {
				flush()
				return
			}
			if size+len(p.line)+1 > b.cfg.MaxBytes {
				flush()
			}
			if len(batch) == 0 {
				timer.Reset(b.cfg.Linger)
			}
			batch = append(batch, p)
			size += len(p.line) + 1
			if len(batch) >= b.cfg.MaxOrders {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// send posts one batch and answers each of its callers.
func (b *Batcher) send(batch []*pendingOrder) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.BatchTimeout)
	defer cancel()
	lines := make([][]byte, len(batch))
	for i, p := range batch {
		lines[i] = p.line
	}
	res, err := b.c.bulk(ctx, "/v1/order-batches", lines)
	for i, p := range batch {
		switch {
		case err != nil:
			p.err = err
		case res.Results[i].Err != nil:
			p.err = res.Results[i].Err
		default:
			p.res, p.err = createdFrom(p.line, res.Results[i])
		}
		close(p.done)
	}
}

// createdFrom builds a caller's Created from its bulk result. A bulk
// result carries the id and the status code only, so TotalCents is 0 and,
// on a replay, Status is empty (GetOrder reads the stored order).
func createdFrom(line []byte, r ItemResult) (*Created, error) {
	var o struct {
		Currency string `json:"currency"`
	}
	_ = json.Unmarshal(line, &o)
	if o.Currency == "" {
		o.Currency = "EUR"
	}
	c := &Created{ID: r.ID, Currency: o.Currency, Replayed: r.Status == http.StatusOK}
	if !c.Replayed {
		c.Status = StatusCreated
	}
	return c, nil
}
