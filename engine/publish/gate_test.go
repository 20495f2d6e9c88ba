package publish

import (
	"testing"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
)

// The gate is handed order ids that are views into request memory, reused as
// soon as the call returns. A hold refreshed by assigning to the map replaced
// the stored key with such a view (Go updates string keys on assignment), so
// the next request's bytes changed the key under the map and the hold was
// lost: later versions took the fast path ahead of earlier ones (the chaos
// suite's per-order event order check). This test failed with that code.
func TestGateHoldSurvivesReuseOfCallerMemory(t *testing.T) {
	g := newGate()
	buf := []byte("ord_A")
	view := func() string { return bytesutil.String(buf) }

	g.hold(view(), 10)                 // v1 left the fast path
	if g.admit(view(), 2, 20, false) { // v2: held, and the hold refreshed in place
		t.Fatal("v2 admitted while v1 waits for the sweeper")
	}
	g.hold(view(), 30) // refresh through hold as well
	copy(buf, "ord_B") // the request memory is reused for another order
	if g.admit("ord_A", 3, 40, false) {
		t.Fatal("v3 of ord_A admitted: the hold was lost when the caller's memory was reused")
	}
	if !g.admit("ord_B", 1, 40, false) {
		t.Fatal("ord_B was never held but is refused")
	}
	g.advance(41)
	if !g.admit("ord_A", 4, 50, false) {
		t.Fatal("ord_A still held after a sweep covered its holds")
	}
}

// A parked order is held whatever the sweeper covers, until the store's
// list no longer has it; then it is held until a sweep covers that moment
// (its requeued events wait for the sweeper). An order this instance
// parked after the list was read stays parked.
func TestGateParkedOrders(t *testing.T) {
	g := newGate()
	g.park("ord_P", 10)
	g.advance(100)
	if g.admit("ord_P", 5, 110, false) {
		t.Fatal("parked order admitted after a sweep pass")
	}
	g.setParked(nil, 5) // a list read before the parking: it stays
	if g.admit("ord_P", 5, 120, false) {
		t.Fatal("parked order admitted after a list older than its parking")
	}
	g.setParked([]string{"ord_Q"}, 200) // ord_P requeued, ord_Q parked elsewhere
	if g.admit("ord_Q", 2, 210, false) {
		t.Fatal("order parked by another instance admitted")
	}
	if g.admit("ord_P", 6, 210, false) {
		t.Fatal("requeued order admitted before a sweep covered the requeue")
	}
	g.advance(300)
	if !g.admit("ord_P", 7, 310, false) {
		t.Fatal("requeued order still held after a sweep covered it")
	}
	g.setParked(nil, 400)
	g.advance(500)
	if !g.admit("ord_Q", 3, 510, false) || g.active.Load() {
		t.Fatal("gate still holding after every order left the list and a sweep covered it")
	}
}

// The start-up hold covers only events the store knew nothing about: one
// whose previous version the store could speak for (order.After) is
// decided by that, not held wholesale.
func TestGateStartupHoldSparesKnownEvents(t *testing.T) {
	g := newGate()
	g.holdAll(100)
	if !g.admit("ord_K", 2, 150, true) {
		t.Errorf("known v2 during the start-up hold: held; want admitted")
	}
	if g.admit("ord_U", 2, 150, false) {
		t.Errorf("unknown v2 during the start-up hold: admitted; want held")
	}
	if !g.admit("ord_V", 1, 150, false) {
		t.Errorf("v1 during the start-up hold: held; want admitted (no earlier version)")
	}
}
