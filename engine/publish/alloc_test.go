//go:build !race

package publish

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine/metrics"
)

// TestAllocs pins the zero-allocation parts of the fast path in steady
// state: building a pooled record, the ordering gate while nothing is held,
// a transaction's ticket, and queueing an acknowledged event for the acker. What kgo allocates per
// record is measured by BenchmarkPublish (allocs/event).
func TestAllocs(t *testing.T) {
	var s eventSet
	s.add(42, 1, time.Now())
	s.add(42, 2, time.Now())
	s.add(43, 1, time.Now()) // no trace context (42: traceparent and tracestate)
	p := &Publisher{source: []byte("orderflow"), gate: newGate(), m: metrics.New()}
	p.acks.init(DefaultConfig())

	f := func(name string, fn func()) {
		t.Helper()
		fn() // warm the pool and buffers
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per run; want 0", name, n)
		}
	}
	f("getRecord+fill+putRecord", func() {
		for i := range s.evs {
			r := getRecord()
			p.fill(r, &s.evs[i])
			putRecord(r)
		}
	})
	now := time.Now().UnixNano()
	f("gate.admit inactive", func() {
		if !p.gate.admit(s.evs[1].OrderID, 2, now, false) {
			t.Fatal("admit: held; want admitted")
		}
	})
	f("ticket begin+handBack+release", func() {
		tk := p.tickets.begin(3)
		tk.pending.Add(1) // one event acknowledged
		p.tickets.handBack(tk)
		p.tickets.release(tk)
		p.tickets.release(tk)
	})
	f("acker.add+reset", func() {
		for i := range 100 {
			p.acks.add(int64(i))
		}
		p.acks.mu.Lock()
		p.acks.pending.reset()
		p.acks.mu.Unlock()
	})
}
