package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ackRetries is how many times the acker tries to record one batch before
// it gives up on it: the events stay unacknowledged and the sweeper
// republishes them (a duplicate, never a loss).
const ackRetries = 5

// maxPooledSeqs caps the queue a drained acker keeps for reuse.
const maxPooledSeqs = 1 << 16

// ackQueue is one buffer of acknowledged events' seqs.
type ackQueue struct {
	seqs []int64
}

func (q *ackQueue) reset() {
	if cap(q.seqs) > maxPooledSeqs {
		q.seqs = nil
		return
	}
	q.seqs = q.seqs[:0]
}

// acker batches the seqs of acknowledged events for Outbox.AckEvents.
// Promises append under mu (never blocking: a mutex and a slice, no channel
// send); the acker goroutine swaps the pending queue for its spare one
// (pop-all) every DeleteInterval, or sooner when DeleteBatch seqs wait.
type acker struct {
	mu      sync.Mutex
	pending *ackQueue
	spare   *ackQueue // owned by whoever is recording; guarded by ackMu
	ackMu   sync.Mutex
	notify  chan struct{} // size 1: "DeleteBatch seqs are pending"; a full channel already says so
	batch   int
	max     int // bound of pending: past it acked events are left for the sweeper
	dropped int // seqs not queued because pending was full, under mu
}

func (d *acker) init(cfg Config) {
	d.pending, d.spare = new(ackQueue), new(ackQueue)
	d.notify = make(chan struct{}, 1)
	d.batch = cfg.DeleteBatch
	d.max = max(10*cfg.DeleteBatch, cfg.MaxBufferedRecords)
}

// add queues seq as acknowledged. It never blocks on I/O; it is called
// from promises.
func (d *acker) add(seq int64) {
	d.mu.Lock()
	q := d.pending
	if len(q.seqs) >= d.max {
		d.dropped++
		d.mu.Unlock()
		return
	}
	q.seqs = append(q.seqs, seq)
	full := len(q.seqs) >= d.batch
	d.mu.Unlock()
	if full {
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
}

// ackLoop is the acker goroutine: it records what is pending every
// DeleteInterval or on notify, until stopAck closes. Shutdown records
// what is left after the final flush.
func (p *Publisher) ackLoop() {
	t := time.NewTicker(p.cfg.DeleteInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopAck:
			return
		case <-t.C:
		case <-p.acks.notify:
		}
		p.acks.drainOnce(p, func(attempt int) (context.Context, context.CancelFunc, bool) {
			if attempt > 0 {
				// Back off 50ms, 100ms, ... unless stopping.
				select {
				case <-p.stopAck:
					return nil, nil, false
				case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
			return ctx, cancel, true
		})
	}
}

// drain records everything pending with ctx (Shutdown's), trying each batch
// until ctx ends. It returns the acknowledgements recorded.
func (d *acker) drain(ctx context.Context, p *Publisher) (int, error) {
	var last error
	n, failed := d.drainOnce(p, func(attempt int) (context.Context, context.CancelFunc, bool) {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				last = ctx.Err()
				return nil, nil, false
			case <-time.After(time.Duration(25<<min(attempt, 6)) * time.Millisecond):
			}
		}
		c, cancel := context.WithTimeout(ctx, ackTimeout)
		return c, cancel, true
	})
	d.mu.Lock()
	left := len(d.pending.seqs)
	d.mu.Unlock()
	if failed > 0 || left > 0 {
		if last == nil {
			last = errors.New("recording outbox acknowledgements failed")
		}
		return n, fmt.Errorf("record acknowledgements: %d events left for the sweeper: %w", failed+left, last)
	}
	return n, nil
}

// drainOnce swaps out the pending queue and records it in DeleteBatch
// chunks. try returns the context for attempt n (0 first) of a chunk, or
// false to give up the rest. A chunk that fails ackRetries times is
// dropped: its events stay unacknowledged and the sweeper republishes them.
// It returns the acknowledgements recorded and those given up.
func (d *acker) drainOnce(p *Publisher, try func(attempt int) (context.Context, context.CancelFunc, bool)) (recorded, failed int) {
	d.ackMu.Lock()
	defer d.ackMu.Unlock()
	d.mu.Lock()
	q := d.pending
	d.pending, d.spare = d.spare, q
	dropped := d.dropped
	d.dropped = 0
	d.mu.Unlock()
	defer q.reset()
	if dropped > 0 {
		p.log.Warn("acknowledgement queue full: acknowledged events left for the sweeper (duplicates); is PostgreSQL slow?",
			"events", dropped, "queue", d.max)
	}
	for seqs := q.seqs; len(seqs) > 0; {
		chunk := seqs[:min(len(seqs), d.batch)]
		var err error
		for attempt := 0; attempt < ackRetries; attempt++ {
			ctx, cancel, ok := try(attempt)
			if !ok {
				return recorded, failed + len(seqs)
			}
			err = p.ackEvents(ctx, chunk)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			p.log.Warn("record outbox acknowledgements; the sweeper republishes those events", "events", len(chunk), "err", err)
			failed += len(chunk)
		} else {
			recorded += len(chunk)
			p.m.OutboxDeleted.Add(float64(len(chunk)))
		}
		seqs = seqs[len(chunk):]
	}
	return recorded, failed
}
