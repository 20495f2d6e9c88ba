package publish

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clockMargin absorbs skew between this process's clock and PostgreSQL's
// now(), which the sweeper's "enqueued_at < now() - grace" uses.
const clockMargin = time.Second

// gate keeps an order's later events off the fast path while an earlier event
// of it waits in the outbox for the sweeper, so that the fast path never
// overtakes the sweeper within one order (v2 on the topic before v1).
//
// An order is held from the moment one of its events leaves the fast path
// (skipped because the buffer was full, failed by the client, or itself held)
// until the sweeper has finished a pass that covered every event committed up to
// that moment (swept). Each held event refreshes the hold, so a held order's
// events all go through the sweeper, in version order, until it catches up.
// Version 1 (order.created) is never held by the global hold: no earlier
// version of it exists.
//
// The hot path pays one atomic load while nothing is held. Safe for
// concurrent use.
type gate struct {
	active atomic.Bool // global != 0 || len(orders) > 0

	mu     sync.Mutex
	global int64 // unix ns; hold every version>1 event while global >= swept; 0 = off
	// orders maps an order id to the unix ns of its last event that left the
	// fast path. The values are pointers so that a hold is refreshed
	// without assigning to the map: for string keys an assignment to an
	// existing key also replaces the stored key with the one given, and
	// the ids callers pass are views into request memory that is reused
	// right after (the stored key would then change under the map, and the
	// hold would be lost: found by the chaos suite as orders published out
	// of version order during a Kafka outage). Keys are always copies.
	orders map[string]*int64
	swept  int64 // unix ns: every event committed before it has been published
	// parked holds the orders with a parked event (outbox_dead) for as
	// long as it is parked, whatever the sweeper covers: their later events
	// go to the sweeper, which parks them behind it. Replaced wholesale
	// from the store every interval (setParked), so a requeue releases them.
	parked map[string]int64 // order id → when this instance parked it (0: read from the store)
}

func newGate() *gate {
	return &gate{orders: make(map[string]*int64)}
}

// admit reports whether an event of order id at version may take the fast
// path at time now (unix ns). When it reports false the event is held: the
// caller leaves it to the sweeper. known says the store told what the
// previous version's event is up to (order.After other than AfterUnknown):
// the start-up hold (holdAll) is then moot. id is not retained.
func (g *gate) admit(id string, version int32, now int64, known bool) bool {
	if !g.active.Load() {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.parked[id]; ok {
		return false
	}
	if t, ok := g.orders[id]; ok {
		if *t >= g.swept {
			*t = now // refresh in place: no map assignment, no allocation
			return false
		}
		delete(g.orders, id)
	}
	if version > 1 && !known && g.global != 0 && g.global >= g.swept {
		g.orders[strings.Clone(id)] = newStamp(now) // copy: id is a view into request memory
		return false
	}
	g.setActive()
	return true
}

// hold marks order id as having an event that left the fast path at now.
// id is copied if kept.
func (g *gate) hold(id string, now int64) {
	g.mu.Lock()
	if t, ok := g.orders[id]; !ok {
		g.orders[strings.Clone(id)] = newStamp(now)
	} else if *t < now {
		*t = now
	}
	g.active.Store(true)
	g.mu.Unlock()
}

// holdAll holds every version>1 event until the sweeper has covered now:
// used at start, when events a crashed instance left behind are unknown.
func (g *gate) holdAll(now int64) {
	g.mu.Lock()
	g.global = now
	g.active.Store(true)
	g.mu.Unlock()
}

// releaseAll drops the hold that holdAll(at) set, if no later one replaced
// it: the outbox was found empty.
func (g *gate) releaseAll(at int64) {
	g.mu.Lock()
	if g.global == at {
		g.global = 0
	}
	g.setActive()
	g.mu.Unlock()
}

// advance records that every event committed before swept (unix ns) has
// been published, and forgets the holds that covers.
func (g *gate) advance(swept int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if swept <= g.swept {
		return
	}
	g.swept = swept
	for id, t := range g.orders {
		if *t < swept {
			delete(g.orders, id)
		}
	}
	if g.global != 0 && g.global < swept {
		g.global = 0
	}
	g.setActive()
}

// newStamp allocates a hold's time stamp; a separate function so that only
// the path that creates a hold allocates (taking the address of a parameter
// would move it to the heap on every call).
func newStamp(now int64) *int64 {
	p := new(int64)
	*p = now
	return p
}

// held reports how many orders are held (for tests and logs).
func (g *gate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.orders)
}

// park holds order id, parked at now (unix ns), until setParked no longer
// lists it.
func (g *gate) park(id string, now int64) {
	g.mu.Lock()
	if g.parked == nil {
		g.parked = make(map[string]int64)
	}
	g.parked[strings.Clone(id)] = now
	g.active.Store(true)
	g.mu.Unlock()
}

// setParked replaces the parked orders with ids, the store's list as read
// at readAt (unix ns); an order this instance parked after readAt stays
// (the list may predate its commit), and one that left the list becomes an
// ordinary hold from readAt.
func (g *gate) setParked(ids []string, readAt int64) {
	g.mu.Lock()
	if len(ids) == 0 && len(g.parked) == 0 {
		g.mu.Unlock()
		return
	}
	next := make(map[string]int64, len(ids))
	for id, at := range g.parked {
		if at >= readAt {
			next[id] = at
		}
	}
	for _, id := range ids {
		if _, ok := next[id]; !ok {
			next[id] = 0
		}
	}
	// An order no longer parked was requeued: its events wait for the
	// sweeper again, so its later events stay off the fast path until a
	// sweep pass covers the moment of this read (an ordinary hold).
	for id := range g.parked {
		if _, ok := next[id]; !ok {
			if t, ok := g.orders[id]; !ok {
				g.orders[id] = newStamp(readAt)
			} else if *t < readAt {
				*t = readAt
			}
		}
	}
	g.parked = next
	g.setActive()
	g.mu.Unlock()
}

// setActive must be called with mu held.
func (g *gate) setActive() {
	g.active.Store(g.global != 0 || len(g.orders) > 0 || len(g.parked) > 0)
}
