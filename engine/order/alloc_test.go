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

	ndjson := readTestdata(t, "batch.ndjson")
	array := readTestdata(t, "batch_array.json")
	n := 0
	count := func(int, []byte) bool { n++; return true }
	assertNoAllocs(t, "SplitNDJSON", func() { SplitNDJSON(ndjson, count) })
	assertNoAllocs(t, "SplitArray", func() { SplitArray(array, count) })
}
