//go:build !race

package order

import (
	"testing"
)

func assertNoAllocs(t *testing.T, name string, fn func()) {
	t.Helper()
	if n := testing.AllocsPerRun(200, fn); n != 0 {
		t.Errorf("%s: %v allocs per run; want 0", name, n)
	}
}

func TestZeroAllocs(t *testing.T) {
	typical := readTestdata(t, "valid_typical.json")
	escaped := readTestdata(t, "valid_escaped.json")
	key := []byte("idem-key-1")
	pb := priceMap{"milk-1l": 119, "bread-rye": 249, "apple.gala:kg": 399}
	b := GetBatch()
	defer PutBatch(b)
	decode := func(body []byte) *Order {
		b.reset()
		o, err := b.DecodeOrder(body, testReceived, key)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	decode(typical) // grow the batch once

	assertNoAllocs(t, "DecodeOrder(typical 3-item order)", func() { decode(typical) })
	assertNoAllocs(t, "DecodeOrder(escaped)", func() { decode(escaped) })
	for range 10 { // a batch of many orders, reused
		b.DecodeOrder(typical, testReceived, key)
	}
	assertNoAllocs(t, "DecodeOrder(10 orders into one batch)", func() {
		b.reset()
		for range 10 {
			if _, err := b.DecodeOrder(typical, testReceived, key); err != nil {
				t.Fatal(err)
			}
		}
	})

	// The jsoniter decoder (decode_jsoniter.go): 0 on bodies without
	// escapes. On valid_escaped.json jsoniter's own Skip allocates while
	// skipping the unknown fields "note" (an escaped string: ReadString) and
	// "meta" (an object holding one: ReadObjectCB + ReadString); the known
	// fields are read without allocating.
	decodeJ := func(body []byte) {
		b.reset()
		if _, err := b.DecodeOrderJsoniter(body, testReceived, key); err != nil {
			t.Fatal(err)
		}
	}
	decodeJ(typical)
	decodeJ(escaped)
	assertNoAllocs(t, "DecodeOrderJsoniter(typical 3-item order)", func() { decodeJ(typical) })
	escapedKnown := []byte(`{"id":"ord\u005f42","user_id":"Ren\u00e9e \"R\" O\\Brien","currency":"USD","items":[{"sku":"\u006dilk-1l","qty":2}]}`)
	decodeJ(escapedKnown)
	assertNoAllocs(t, "DecodeOrderJsoniter(escapes in known fields only)", func() { decodeJ(escapedKnown) })
	if n := testing.AllocsPerRun(200, func() { decodeJ(escaped) }); n != 4 {
		t.Errorf("DecodeOrderJsoniter(valid_escaped.json): %v allocs per run; want 4 (jsoniter's Skip of escaped unknown fields)", n)
	}

	o := decode(typical)
	assertNoAllocs(t, "Price", func() {
		if err := o.Price(pb); err != nil {
			t.Fatal(err)
		}
	})
	assertNoAllocs(t, "decode+Price+Seal", func() {
		o := decode(typical)
		if err := o.Price(pb); err != nil {
			t.Fatal(err)
		}
		b.Seal(o)
	})
	o = decode(typical)
	o.Price(pb)
	b.Seal(o)
	buf := make([]byte, 0, 4096)
	assertNoAllocs(t, "AppendJSON", func() { buf = o.AppendJSON(buf[:0]) })
	assertNoAllocs(t, "AppendCreatedResponse", func() {
		buf = AppendCreatedResponse(buf[:0], o.ID, o.Status, o.TotalCents, o.Currency)
	})
	assertNoAllocs(t, "AppendStatusChangedEvent", func() {
		buf = AppendStatusChangedEvent(buf[:0], o.ID, StatusPaid, StatusCreated, 2, o.ReceivedAt)
	})
	assertNoAllocs(t, "AppendStatusResponse", func() { buf = AppendStatusResponse(buf[:0], o.ID, StatusPaid, 2) })
	assertNoAllocs(t, "AppendError", func() { buf = AppendError(buf[:0], "invalid_value", "must be \"x\"", "items[0].sku") })

	status := []byte(`{"status":"delivering","note":"x"}`)
	statusEsc := []byte(`{"st\u0061tus":"deliver\u0069ng"}`)
	assertNoAllocs(t, "DecodeStatus", func() {
		if st, err := DecodeStatus(status); err != nil || st != StatusDelivering {
			t.Fatal(st, err)
		}
	})
	assertNoAllocs(t, "DecodeStatus(escaped)", func() {
		if st, err := DecodeStatus(statusEsc); err != nil || st != StatusDelivering {
			t.Fatal(st, err)
		}
	})

	update := []byte(`{"id":"ord_1","status":"paid","note":"x"}`)
	updateEsc := []byte(`{"\u0069d":"ord\u005f1","status":"p\u0061id"}`)
	idBuf := make([]byte, 0, MaxIDLen)
	assertNoAllocs(t, "DecodeStatusUpdate", func() {
		if id, st, err := DecodeStatusUpdate(update, idBuf[:0]); err != nil || st != StatusPaid || string(id) != "ord_1" {
			t.Fatal(id, st, err)
		}
	})
	assertNoAllocs(t, "DecodeStatusUpdate(escaped)", func() {
		if id, st, err := DecodeStatusUpdate(updateEsc, idBuf[:0]); err != nil || st != StatusPaid || string(id) != "ord_1" {
			t.Fatal(id, st, err)
		}
	})

	ndjson := readTestdata(t, "batch.ndjson")
	array := readTestdata(t, "batch_array.json")
	n := 0
	count := func(int, []byte) bool { n++; return true }
	assertNoAllocs(t, "SplitNDJSON", func() { SplitNDJSON(ndjson, count) })
	assertNoAllocs(t, "SplitArray", func() { SplitArray(array, count) })
}

// The trace context parsers allocate nothing: a traceparent goes into a
// fixed array, a tracestate into the caller's buffer.
func TestTraceContextAllocs(t *testing.T) {
	tp := []byte(" " + tpValid)
	states := [][]byte{[]byte("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"), []byte("foo@bar=1")}
	var buf [MaxTraceStateLen]byte
	var sink TraceParent
	assertNoAllocs(t, "ParseTraceParent", func() {
		p, ok := ParseTraceParent(tp)
		if !ok {
			t.Fatal("refused")
		}
		sink = p
	})
	assertNoAllocs(t, "AppendTraceState", func() {
		if _, ok := AppendTraceState(buf[:0], states...); !ok {
			t.Fatal("refused")
		}
	})
	_ = sink
}
