package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

// deleteRetries is how many times the deleter tries one batch before it
// gives up on it: the rows stay and the sweeper republishes them (a
// duplicate, never a loss).
const deleteRetries = 5

// delQueue is one buffer of acknowledged rows: keys whose OrderID strings
// are views into arena, valid until reset.
type delQueue struct {
	keys  []order.EventKey
	arena bytesutil.Arena
}

func (q *delQueue) reset() {
	clear(q.keys)
	q.keys = q.keys[:0]
	q.arena.Reset(order.MaxRetainedArena)
}

// deleter batches the keys of acknowledged rows for Outbox.DeleteEvents.
// Promises append under mu (never blocking: a mutex and a slice, no channel
// send); the deleter goroutine swaps the pending queue for its spare one
// (pop-all) every DeleteInterval, or sooner when DeleteBatch keys wait.
type deleter struct {
	mu      sync.Mutex
	pending *delQueue
	spare   *delQueue // owned by whoever is deleting; guarded by delMu
	delMu   sync.Mutex
	notify  chan struct{} // size 1: "DeleteBatch keys are pending"; a full channel already says so
	batch   int
	max     int // bound of pending: past it acked rows are left for the sweeper
	dropped int // keys not queued because pending was full, under mu
}

func (d *deleter) init(cfg Config) {
	d.pending, d.spare = new(delQueue), new(delQueue)
	d.notify = make(chan struct{}, 1)
	d.batch = cfg.DeleteBatch
	d.max = max(10*cfg.DeleteBatch, cfg.MaxBufferedRecords)
}

// add queues the row (id, version) for deletion, copying id. It never
// blocks on I/O; it is called from promises.
func (d *deleter) add(id []byte, version int32) {
	d.mu.Lock()
	q := d.pending
	if len(q.keys) >= d.max {
		d.dropped++
		d.mu.Unlock()
		return
	}
	q.keys = append(q.keys, order.EventKey{OrderID: q.arena.CopyString(id), Version: version})
	full := len(q.keys) >= d.batch
	d.mu.Unlock()
	if full {
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
}

// deleteLoop is the deleter goroutine: it deletes what is pending every
// DeleteInterval or on notify, until stopDelete closes. Shutdown deletes
// what is left after the final flush.
func (p *Publisher) deleteLoop() {
	t := time.NewTicker(p.cfg.DeleteInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopDelete:
			return
		case <-t.C:
		case <-p.del.notify:
		}
		p.del.drainOnce(p, func(attempt int) (context.Context, context.CancelFunc, bool) {
			if attempt > 0 {
				// Back off 50ms, 100ms, ... unless stopping.
				select {
				case <-p.stopDelete:
					return nil, nil, false
				case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
			return ctx, cancel, true
		})
	}
}

// drain deletes everything pending with ctx (Shutdown's), trying each batch
// until ctx ends. It returns the rows deleted.
func (d *deleter) drain(ctx context.Context, p *Publisher) (int, error) {
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
		c, cancel := context.WithTimeout(ctx, deleteTimeout)
		return c, cancel, true
	})
	d.mu.Lock()
	left := len(d.pending.keys)
	d.mu.Unlock()
	if failed > 0 || left > 0 {
		if last == nil {
			last = errors.New("outbox delete failed")
		}
		return n, fmt.Errorf("delete acknowledged rows: %d left for the sweeper: %w", failed+left, last)
	}
	return n, nil
}

// drainOnce swaps out the pending queue and deletes it in DeleteBatch
// chunks. try returns the context for attempt n (0 first) of a chunk, or
// false to give up the rest. A chunk that fails deleteRetries times is
// dropped: its rows stay in the outbox and the sweeper republishes them.
// It returns the rows deleted and the rows given up.
func (d *deleter) drainOnce(p *Publisher, try func(attempt int) (context.Context, context.CancelFunc, bool)) (deleted, failed int) {
	d.delMu.Lock()
	defer d.delMu.Unlock()
	d.mu.Lock()
	q := d.pending
	d.pending, d.spare = d.spare, q
	dropped := d.dropped
	d.dropped = 0
	d.mu.Unlock()
	defer q.reset()
	if dropped > 0 {
		p.log.Warn("delete queue full: acknowledged rows left in the outbox for the sweeper (duplicates); is PostgreSQL slow?",
			"rows", dropped, "queue", d.max)
	}
	for keys := q.keys; len(keys) > 0; {
		chunk := keys[:min(len(keys), d.batch)]
		var err error
		for attempt := 0; attempt < deleteRetries; attempt++ {
			ctx, cancel, ok := try(attempt)
			if !ok {
				return deleted, failed + len(keys)
			}
			err = p.ob.DeleteEvents(ctx, chunk)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			p.log.Warn("delete acknowledged outbox rows; the sweeper republishes them", "rows", len(chunk), "err", err)
			failed += len(chunk)
		} else {
			deleted += len(chunk)
			p.m.OutboxDeleted.Add(float64(len(chunk)))
		}
		keys = keys[len(chunk):]
	}
	return deleted, failed
}
