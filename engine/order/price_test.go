package order

import (
	"errors"
	"math"
	"testing"
)

type priceMap map[string]int64

func (m priceMap) Price(sku string) (int64, bool) {
	c, ok := m[sku]
	return c, ok
}

func TestPrice(t *testing.T) {
	pb := priceMap{"milk": 119, "bread": 249, "free": 0, "gold": math.MaxInt64 / 2, "neg": -1}
	f := func(in string, wantTotal int64, code, field string) {
		t.Helper()
		o, err := decodeOne((*Batch).DecodeOrder, in)
		if err != nil {
			t.Fatalf("DecodeOrder(%q): %v", in, err)
		}
		err = o.Price(pb)
		if code == "" {
			if err != nil || o.TotalCents != wantTotal {
				t.Fatalf("Price(%q): total %d, %v; want %d", in, o.TotalCents, err, wantTotal)
			}
			for _, it := range o.Items {
				if it.PriceCents != pb[it.SKU] {
					t.Fatalf("Price(%q): item %s priced %d; want %d", in, it.SKU, it.PriceCents, pb[it.SKU])
				}
			}
			return
		}
		var ce *CatalogError
		if !errors.As(err, &ce) || ce.Code != code || ce.Field != field || ce.Message == "" {
			t.Fatalf("Price(%q): got %v; want %s at %s", in, err, code, field)
		}
	}
	f(`{"id":"a","user_id":"u","items":[{"sku":"milk","qty":2},{"sku":"bread","qty":1,"price_cents":249}]}`, 487, "", "")
	f(`{"id":"a","user_id":"u","items":[{"sku":"free","qty":1000,"price_cents":0}]}`, 0, "", "")
	f(`{"id":"a","user_id":"u","items":[{"sku":"milk","qty":1},{"sku":"nope","qty":1}]}`, 0, "unknown_sku", "items[1].sku")
	f(`{"id":"a","user_id":"u","items":[{"sku":"milk","qty":1,"price_cents":118}]}`, 0, "price_mismatch", "items[0].price_cents")
	f(`{"id":"a","user_id":"u","items":[{"sku":"bread","qty":1},{"sku":"milk","qty":1,"price_cents":0}]}`, 0, "price_mismatch", "items[1].price_cents")
	f(`{"id":"a","user_id":"u","items":[{"sku":"gold","qty":3}]}`, 0, "amount_out_of_range", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"gold","qty":1},{"sku":"gold","qty":1},{"sku":"gold","qty":1}]}`, 0, "amount_out_of_range", "total_cents")
	f(`{"id":"a","user_id":"u","items":[{"sku":"gold","qty":2}]}`, math.MaxInt64-1, "", "")
	f(`{"id":"a","user_id":"u","items":[{"sku":"neg","qty":1}]}`, 0, "amount_out_of_range", "items[0].sku")
}
