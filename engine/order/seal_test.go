package order

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"testing"
	"time"
)

func sealOne(t *testing.T, in string, recv time.Time, key string) *Order {
	t.Helper()
	b := GetBatch()
	o, err := b.DecodeOrder([]byte(in), recv, []byte(key))
	if err != nil {
		t.Fatalf("DecodeOrder(%q): %v", in, err)
	}
	if err := o.Price(priceMap{"milk": 119, "bread": 249}); err != nil {
		t.Fatal(err)
	}
	b.Seal(o)
	return o
}

func TestSealHash(t *testing.T) {
	base := `{"id":"ord_1","user_id":"u_42","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`
	o := sealOne(t, base, testReceived, "")
	// The hash is stored, so it must never change: pin it.
	const golden = 0x915b900face18672
	// And it is what the doc says: FNV-1a 64 over the documented bytes.
	ref := fnv.New64a()
	ref.Write([]byte("orderflow.order.v1"))
	for _, s := range []string{"ord_1", "u_42", "EUR"} {
		ref.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
		ref.Write([]byte(s))
	}
	ref.Write([]byte{0})
	ref.Write(binary.LittleEndian.AppendUint32(nil, 2))
	for _, it := range []struct {
		sku string
		qty uint64
	}{{"milk", 2}, {"bread", 1}} {
		ref.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(it.sku))))
		ref.Write([]byte(it.sku))
		ref.Write(binary.LittleEndian.AppendUint64(nil, it.qty))
	}
	if ref.Sum64() != golden {
		t.Fatalf("reference FNV-1a = %#x; want %#x", ref.Sum64(), uint64(golden))
	}
	if o.Hash != golden {
		t.Fatalf("Hash = %#x; want %#x (the content hash must be stable across versions)", o.Hash, uint64(golden))
	}
	same := func(in string, recv time.Time, key string) {
		t.Helper()
		if h := sealOne(t, in, recv, key).Hash; h != o.Hash {
			t.Fatalf("hash of %q = %#x; want %#x (same order)", in, h, o.Hash)
		}
	}
	differ := func(in string) {
		t.Helper()
		if h := sealOne(t, in, testReceived, "").Hash; h == o.Hash {
			t.Fatalf("hash of %q equals the base order's", in)
		}
	}
	same(base, testReceived.Add(time.Hour), "other-key")
	same(`{"items":[{"qty":2,"sku":"milk"},{"sku":"bread","qty":1,"price_cents":249}],"user_id":"u_42","id":"ord_1","currency":"EUR","x":1}`, testReceived, "k")
	same(`{"id":"ord\u005f1","user_id":"u_42","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`, testReceived, "")
	differ(`{"id":"ord_2","user_id":"u_42","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`)
	differ(`{"id":"ord_1","user_id":"u_43","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`)
	differ(`{"id":"ord_1","user_id":"u_42","currency":"SEK","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`)
	differ(`{"id":"ord_1","user_id":"u_42","items":[{"sku":"milk","qty":3},{"sku":"bread","qty":1}]}`)
	differ(`{"id":"ord_1","user_id":"u_42","items":[{"sku":"bread","qty":1},{"sku":"milk","qty":2}]}`)
	differ(`{"id":"ord_1","user_id":"u_42","items":[{"sku":"milk","qty":2}]}`)
	differ(`{"id":"ord_1","user_id":"u_42","created_at":"2026-11-25T10:00:01.123456Z","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1}]}`)
	// Length prefixes keep field boundaries apart.
	a := sealOne(t, `{"id":"ab","user_id":"c","items":[{"sku":"milk","qty":1}]}`, testReceived, "").Hash
	b := sealOne(t, `{"id":"a","user_id":"bc","items":[{"sku":"milk","qty":1}]}`, testReceived, "").Hash
	if a == b {
		t.Fatal("hash ignores field boundaries")
	}
	// Same instant, other offset: the same created_at.
	c1 := sealOne(t, `{"id":"a","user_id":"u","created_at":"2026-11-25T10:00:00Z","items":[{"sku":"milk","qty":1}]}`, testReceived, "").Hash
	c2 := sealOne(t, `{"id":"a","user_id":"u","created_at":"2026-11-25T11:00:00+01:00","items":[{"sku":"milk","qty":1}]}`, testReceived, "").Hash
	if c1 != c2 {
		t.Fatal("created_at hashed by its text, not its instant")
	}
}

func TestSealEvent(t *testing.T) {
	o := sealOne(t, `{"id":"ord_1","user_id":"u \"q\"","created_at":"2026-11-25T10:00:00Z","items":[{"sku":"milk","qty":2}]}`, testReceived, "")
	if o.Status != StatusCreated || o.Version != 1 || !o.UpdatedAt.Equal(o.ReceivedAt) {
		t.Fatalf("Seal: status %v version %d updated_at %v", o.Status, o.Version, o.UpdatedAt)
	}
	want := `{"order":{"id":"ord_1","user_id":"u \"q\"","status":"created","currency":"EUR","total_cents":238,"version":1,"created_at":"2026-11-25T10:00:00Z","updated_at":"2026-11-25T10:00:01.123456Z","items":[{"sku":"milk","qty":2,"price_cents":119}]}}`
	if string(o.Event) != want {
		t.Fatalf("Event = %s; want %s", o.Event, want)
	}
	if !json.Valid(o.Event) {
		t.Fatalf("Event not valid JSON: %s", o.Event)
	}
	if cap(o.Event) != len(o.Event) {
		t.Fatalf("Event not capped")
	}
}
