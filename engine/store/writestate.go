package store

import (
	"sync"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/order"
)

// writeState is the working memory of one WriteOrders call, pooled between
// calls. It holds views into the caller's batches only during the call:
// putWriteState clears them.
type writeState struct {
	all     []*order.Order // every order of the call, sorted by id then arrival
	created []*order.Order // created by the current attempt
	stage   stageSource
	wire    wireParams
	items   itemSource
	outbox  outboxSource
	events  []order.Event // outbox rows of the current attempt
	ids     []string
	keys    []string
	stored  []storedOrder
	arena   bytesutil.Arena
	// The call's Ticket, passed by pointer (no boxing per statement), and
	// the argument list that points at it (insertOrdersSQL's).
	pubID      pgtype.Int4
	pubTicket  pgtype.Int8
	ticketArgs []any
}

var writeStatePool = sync.Pool{New: func() any {
	w := &writeState{}
	w.ticketArgs = []any{&w.pubID, &w.pubTicket}
	w.stage.init()
	w.items.init()
	w.outbox.init()
	return w
}}

func getWriteState() *writeState { return writeStatePool.Get().(*writeState) }

// maxPooledOrders caps the slices a pooled writeState keeps.
const maxPooledOrders = 1 << 16

// maxPooledWireBytes caps the parameter buffer a pooled writeState keeps.
const maxPooledWireBytes = 8 << 20

func putWriteState(w *writeState) {
	if cap(w.all) > maxPooledOrders || cap(w.stored) > maxPooledOrders || cap(w.wire.buf) > maxPooledWireBytes {
		return
	}
	w.reset()
	writeStatePool.Put(w)
}

func (w *writeState) reset() {
	w.all, w.created = reuse(w.all), reuse(w.created)
	w.ids, w.keys = reuse(w.ids), reuse(w.keys)
	w.stored, w.events = reuse(w.stored), reuse(w.events)
	w.stage.reset(nil)
	w.wire.reset()
	w.items.reset(nil)
	w.outbox.reset(nil)
	w.arena.Reset(1 << 20)
}

// reuse returns s empty, with its capacity, for the next call of a pooled
// state. It clears the elements first, so that the pool holds no references
// into the memory a call was handed (STYLE: clear, then s[:0]).
func reuse[S ~[]E, E any](s S) S {
	clear(s)
	return s[:0]
}
