package loadtest

import (
	"encoding/json"
	"testing"
)

func TestAppendBody(t *testing.T) {
	p := newPayload(Config{RunID: "r1", Items: 3}.WithDefaults())
	f := func(n uint64, wantID string) {
		t.Helper()
		body := p.appendBody(nil, n)
		var o struct {
			ID       string `json:"id"`
			UserID   string `json:"user_id"`
			Currency string `json:"currency"`
			Items    []struct {
				SKU string `json:"sku"`
				Qty int    `json:"qty"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatalf("appendBody(%d) = %s: not JSON: %v", n, body, err)
		}
		if o.ID != wantID || o.UserID == "" || o.Currency != "EUR" || len(o.Items) != 3 {
			t.Fatalf("appendBody(%d) = %s: got %+v; want id %q, a user, EUR, 3 items", n, body, o, wantID)
		}
		for _, it := range o.Items {
			if it.Qty < 1 || it.Qty > 5 || !validToken(it.SKU, 64) {
				t.Fatalf("appendBody(%d) = %s: item %+v out of range", n, body, it)
			}
		}
		if again := p.appendBody([]byte("junk"), n); string(again[4:]) != string(body) {
			t.Fatalf("appendBody(%d) is not deterministic: %s vs %s", n, body, again[4:])
		}
		if got := OrderID("r1", n); got != wantID {
			t.Fatalf("OrderID(r1, %d) = %q; want %q", n, got, wantID)
		}
	}
	f(1, "lt_r1_1")
	f(2, "lt_r1_2")
	f(18446744073709551615, "lt_r1_18446744073709551615")
	if key := string(p.appendKey(nil, 7)); key != "k_r1_7" {
		t.Fatalf("appendKey(7) = %q; want k_r1_7", key)
	}
}

func TestAppendBodySpreadsSKUs(t *testing.T) {
	p := newPayload(Config{RunID: "r", Items: 1}.WithDefaults())
	seen := map[string]bool{}
	for n := uint64(1); n <= 200; n++ {
		var o struct{ Items []struct{ SKU string } }
		if err := json.Unmarshal(p.appendBody(nil, n), &o); err != nil {
			t.Fatal(err)
		}
		seen[o.Items[0].SKU] = true
	}
	if len(seen) != len(DefaultSKUs) {
		t.Fatalf("200 one-item orders used SKUs %v; want all %d of the catalog", seen, len(DefaultSKUs))
	}
}
