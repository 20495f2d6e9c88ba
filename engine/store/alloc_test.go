//go:build !race

package store

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/engine/order"
)

// TestCopySourcesAllocateNothing pins the claim behind the CopyFrom sources:
// Values refills a reused row of pgtype pointers, and pgx encodes those
// pointers without allocating, so a COPY costs 0 allocations per row (boxing
// raw int64/string values would cost one per value).
func TestCopySourcesAllocateNothing(t *testing.T) {
	var set []*order.Order
	for i := range 100 {
		o := testOrder(fmt.Sprintf("ord_%03d", i), uint64(i))
		if i%2 == 0 {
			o.IdempotencyKey = fmt.Sprintf("key_%d", i)
		}
		if i%3 == 0 { // trace context columns, set and NULL
			o.TraceParent = mustTraceParent(t, traceA)
			o.TraceState = stateA
		}
		set = append(set, &o)
	}
	w := getWriteState()
	defer putWriteState(w)
	m := pgtype.NewMap()
	buf := make([]byte, 0, 4096)
	f := func(name string, src interface {
		Next() bool
		Values() ([]any, error)
	}, reset func(), oids ...uint32) {
		t.Helper()
		rows := 0
		run := func(encode bool) {
			reset()
			rows = 0
			for src.Next() {
				vals, err := src.Values()
				if err != nil {
					t.Fatal(err)
				}
				rows++
				if !encode {
					continue
				}
				for i, v := range vals {
					// Encode returns nil for NULL, as in pgx's COPY path.
					nb, err := m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf[:0])
					if err != nil {
						t.Fatalf("%s: encode column %d: %v", name, i, err)
					}
					if nb != nil {
						buf = nb
					}
				}
			}
		}
		if a := testing.AllocsPerRun(20, func() { run(false) }); a != 0 {
			t.Fatalf("%s: Values allocates %v per %d rows; want 0", name, a, rows)
		}
		if a := testing.AllocsPerRun(20, func() { run(true) }); a != 0 {
			t.Fatalf("%s: Values + pgx binary encoding allocate %v per %d rows; want 0", name, a, rows)
		}
		if rows == 0 {
			t.Fatalf("%s: no rows", name)
		}
	}
	const (
		int4, int8, text, tstz, bytea = pgtype.Int4OID, pgtype.Int8OID, pgtype.TextOID, pgtype.TimestamptzOID, pgtype.ByteaOID
	)
	f("stage", &w.stage, func() { w.stage.reset(set) }, int4, text, text, text, int8, tstz, tstz, text, int8)
	f("items", &w.items, func() { w.items.reset(set) }, text, int4, text, int4, int8)
	f("outbox", &w.outbox, func() {
		w.events = createdEvents(w.events[:0], set)
		w.outbox.reset(w.events)
		for i := range w.events {
			w.events[i].Seq = int64(i + 1)
			w.outbox.slots = append(w.outbox.slots, 0)
		}
	}, int8, int4, text, int4, text, tstz, bytea, text, text)
}

// TestWireParamsAllocateNothing pins the reason wireParams exists: once
// its buffers have grown, encoding a group commit's parameters allocates
// nothing (pgx's array encoding allocated one per element).
func TestWireParamsAllocateNothing(t *testing.T) {
	var set []*order.Order
	for i := range 100 {
		o := testOrder(fmt.Sprintf("ord_%03d", i), uint64(i))
		if i%2 == 0 {
			o.IdempotencyKey = fmt.Sprintf("key_%d", i)
		}
		set = append(set, &o)
	}
	var p wireParams
	p.fill(set, 3, 9)
	if a := testing.AllocsPerRun(20, func() { p.fill(set, 3, 9) }); a != 0 {
		t.Fatalf("wireParams.fill allocates %v per 100 orders; want 0", a)
	}
}
