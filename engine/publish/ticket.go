package publish

import (
	"container/heap"
	"sync"
	"sync/atomic"
)

// Ticket is one writing transaction's claim on the fast path. The store
// writes it into the rows the transaction changes (store.Ticket: the
// publisher's id and N); the publisher resolves it once every event of the
// transaction is acknowledged by the broker or its order is held in the
// outbox (outbox_held), and records how far it has resolved its tickets
// (its horizon) for the other instances, whose fast path publishes a later
// version of those orders only after that (see doc.go).
//
// Get one with Begin before the transaction and hand it back, exactly once,
// with PublishFor after it, whatever the outcome.
type Ticket struct {
	n   int64
	pub int32
	// pending counts the transaction's events not resolved yet, plus one
	// until PublishFor returns.
	pending atomic.Int64
	idx     int // position in tickets.open (the heap), -1 once resolved
	handed  bool
}

// Publisher returns the id of the publisher that issued t (0 when it was
// not registered, or for a nil Ticket: then nothing waits for t).
func (t *Ticket) Publisher() int32 {
	if t == nil {
		return 0
	}
	return t.pub
}

// N returns t's number: tickets of one publisher are numbered 1, 2, … in
// the order Begin issued them (0 for a nil Ticket).
func (t *Ticket) N() int64 {
	if t == nil {
		return 0
	}
	return t.n
}

// tickets tracks a publisher's tickets: the unresolved ones (a heap by
// number, so that the horizon is the smallest one less one) and the ones
// not handed back yet (a handful: one per transaction in progress).
type tickets struct {
	mu       sync.Mutex
	next     int64
	open     ticketHeap
	unhanded []*Ticket
	// horizon: every ticket up to it is resolved. handed: every ticket up
	// to it has been handed back (PublishFor returned). Written under mu.
	horizon atomic.Int64
	handed  atomic.Int64
}

var ticketPool = sync.Pool{New: func() any { return new(Ticket) }}

// begin issues the next ticket for publisher pub.
func (ts *tickets) begin(pub int32) *Ticket {
	t := ticketPool.Get().(*Ticket)
	t.pending.Store(1)
	t.pub, t.handed = pub, false
	ts.mu.Lock()
	ts.next++
	t.n = ts.next
	heap.Push(&ts.open, t)
	ts.unhanded = append(ts.unhanded, t)
	ts.mu.Unlock()
	return t
}

// handBack records that t's PublishFor has routed every event (their
// resolutions are counted in pending).
func (ts *tickets) handBack(t *Ticket) {
	ts.mu.Lock()
	t.handed = true
	for i, u := range ts.unhanded {
		if u == t {
			last := len(ts.unhanded) - 1
			ts.unhanded[i] = ts.unhanded[last]
			ts.unhanded[last] = nil
			ts.unhanded = ts.unhanded[:last]
			break
		}
	}
	h := ts.next
	for _, u := range ts.unhanded {
		h = min(h, u.n-1)
	}
	ts.handed.Store(h)
	ts.mu.Unlock()
}

// isHandedBack reports whether ticket n (issued) has been handed back. The
// prefix check answers at once unless a transaction older than n is still
// running; then the few tickets not handed back are looked at.
func (ts *tickets) isHandedBack(n int64) bool {
	if n <= ts.handed.Load() {
		return true
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if n > ts.next {
		return false
	}
	for _, u := range ts.unhanded {
		if u.n == n {
			return false
		}
	}
	return true
}

// release resolves one of t's events (or drops the hand-back's count); the
// last one resolves t and may move the horizon.
func (ts *tickets) release(t *Ticket) {
	if t.pending.Add(-1) != 0 {
		return
	}
	ts.mu.Lock()
	heap.Remove(&ts.open, t.idx)
	h := ts.next
	if len(ts.open) > 0 {
		h = ts.open[0].n - 1
	}
	ts.horizon.Store(h)
	ts.mu.Unlock()
	// Nothing refers to t any more: its records' promises, waits and holds
	// have all released it.
	ticketPool.Put(t)
}

// ticketHeap is a min-heap of unresolved tickets by number.
type ticketHeap []*Ticket

func (h ticketHeap) Len() int           { return len(h) }
func (h ticketHeap) Less(i, j int) bool { return h[i].n < h[j].n }
func (h ticketHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *ticketHeap) Push(x any) {
	t := x.(*Ticket)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *ticketHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.idx = -1
	*h = old[:len(old)-1]
	return t
}
