package order

import (
	"encoding/json"
	"testing"

	jsoniter "github.com/json-iterator/go"
)

// BenchmarkDecode compares the two order decoders (impl=orderflow_scanner:
// decodeOrderScanner; impl=orderflow_jsoniter: DecodeOrderJsoniter, the
// scanner's validate-only walk plus jsoniter's Iterator) with encoding/json
// and jsoniter's ConfigFastest decoding into a tagged struct (which validate
// much less: no duplicate keys, no UTF-8, no field rules, and allocate every
// string). body=typical is a 3-item order without escapes, body=escaped
// takes the unescaping path.
func BenchmarkDecode(b *testing.B) {
	bodies := []struct{ name, file string }{
		{"typical", "valid_typical.json"},
		{"escaped", "valid_escaped.json"},
	}
	for _, body := range bodies {
		payload := readTestdata(b, body.file)
		for _, impl := range []struct {
			name   string
			decode decodeFunc
		}{{"orderflow_scanner", (*Batch).decodeOrderScanner}, {"orderflow_jsoniter", (*Batch).DecodeOrderJsoniter}} {
			b.Run("impl="+impl.name+"/body="+body.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				batch := GetBatch()
				defer PutBatch(batch)
				key := []byte("idem-key-1")
				for b.Loop() {
					batch.reset()
					if _, err := impl.decode(batch, payload, testReceived, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run("impl=encoding_json/body="+body.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			var ref refOrder
			for b.Loop() {
				ref = refOrder{Items: ref.Items[:0]}
				if err := json.Unmarshal(payload, &ref); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("impl=jsoniter_fastest/body="+body.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			var ref refOrder
			for b.Loop() {
				ref = refOrder{Items: ref.Items[:0]}
				if err := jsoniter.ConfigFastest.Unmarshal(payload, &ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeStatus measures the status body decoder.
func BenchmarkDecodeStatus(b *testing.B) {
	payload := []byte(`{"status":"delivering"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := DecodeStatus(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func sealedTypical(b *testing.B) (*Batch, *Order) {
	batch := GetBatch()
	o, err := batch.DecodeOrder(readTestdata(b, "valid_typical.json"), testReceived, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := o.Price(priceMap{"milk-1l": 119, "bread-rye": 249, "apple.gala:kg": 399}); err != nil {
		b.Fatal(err)
	}
	batch.Seal(o)
	return batch, o
}

// BenchmarkAppendJSON measures encoding the GET body of a 3-item order.
func BenchmarkAppendJSON(b *testing.B) {
	batch, o := sealedTypical(b)
	defer PutBatch(batch)
	buf := o.AppendJSON(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = o.AppendJSON(buf[:0])
	}
}

// BenchmarkSeal measures the content hash plus the order.created event.
func BenchmarkSeal(b *testing.B) {
	batch, o := sealedTypical(b)
	defer PutBatch(batch)
	b.ReportAllocs()
	b.SetBytes(int64(len(o.Event)))
	for b.Loop() {
		batch.arena.Reset(MaxRetainedArena)
		batch.Seal(o)
	}
}

// BenchmarkSplit measures finding item boundaries in bulk bodies.
func BenchmarkSplit(b *testing.B) {
	for _, c := range []struct {
		name  string
		file  string
		split func([]byte, func(int, []byte) bool) error
	}{{"format=ndjson", "batch.ndjson", SplitNDJSON}, {"format=array", "batch_array.json", SplitArray}} {
		payload := readTestdata(b, c.file)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				c.split(payload, func(int, []byte) bool { return true })
			}
		})
	}
}
