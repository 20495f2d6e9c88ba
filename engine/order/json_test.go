package order

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(AppendString([]byte("x"), in))
		if got != "x"+want {
			t.Fatalf("AppendString(%q) = %s; want %s", in, got[1:], want)
		}
		var back string
		if err := json.Unmarshal([]byte(got[1:]), &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: encoding/json: %v", in, got[1:], err)
		}
		if utf8.ValidString(in) && back != in {
			t.Fatalf("AppendString(%q) = %s decodes to %q", in, got[1:], back)
		}
	}
	f("", `""`)
	f("abc", `"abc"`)
	f(`a"b`, `"a\"b"`)
	f(`a\b`, `"a\\b"`)
	f("a\nb\rc\td", `"a\nb\rc\td"`)
	f("\x00\x01\x1f\x7f", `"\u0000\u0001\u001f`+"\x7f"+`"`)
	f("é日本😀", `"é日本😀"`)
	f("</script>&", `"</script>&"`)
	f("\u2028\u2029", `"\u2028\u2029"`)
	f("a\xffb", `"a\ufffdb"`)
	f("\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`)
	f("/", `"/"`)
}

func TestAppendJSON(t *testing.T) {
	o := Order{
		ID:         "ord_1",
		UserID:     "Renée \"R\" O'Brien\\\n\t\x01 😀 \u2028",
		Currency:   "SEK",
		Status:     StatusDelivering,
		Version:    4,
		TotalCents: 1234567,
		CreatedAt:  time.Date(2026, 11, 25, 10, 0, 0, 120000000, time.FixedZone("x", 3600)),
		UpdatedAt:  time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Items: []Item{
			{SKU: "milk-1l", Qty: 2, PriceCents: 119},
			{SKU: "a:b.c_d-e", Qty: 1000, PriceCents: 0},
		},
	}
	out := o.AppendJSON(nil)
	var got struct {
		ID         string `json:"id"`
		UserID     string `json:"user_id"`
		Status     string `json:"status"`
		Currency   string `json:"currency"`
		TotalCents int64  `json:"total_cents"`
		Version    int32  `json:"version"`
		CreatedAt  string `json:"created_at"`
		UpdatedAt  string `json:"updated_at"`
		Items      []struct {
			SKU        string `json:"sku"`
			Qty        int64  `json:"qty"`
			PriceCents int64  `json:"price_cents"`
		} `json:"items"`
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("AppendJSON = %s: %v", out, err)
	}
	if got.ID != o.ID || got.UserID != o.UserID || got.Status != "delivering" || got.Currency != "SEK" ||
		got.TotalCents != 1234567 || got.Version != 4 ||
		got.CreatedAt != "2026-11-25T09:00:00.12Z" || got.UpdatedAt != "2026-11-25T12:00:00Z" ||
		len(got.Items) != 2 || got.Items[0].SKU != "milk-1l" || got.Items[0].Qty != 2 || got.Items[0].PriceCents != 119 ||
		got.Items[1].SKU != "a:b.c_d-e" || got.Items[1].Qty != 1000 || got.Items[1].PriceCents != 0 {
		t.Fatalf("AppendJSON = %s; decoded %+v", out, got)
	}
	// Key order is the contract's.
	want := `{"id":"ord_1","user_id":`
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), `,"status":"delivering","currency":"SEK","total_cents":1234567,"version":4,"created_at":"2026-11-25T09:00:00.12Z","updated_at":"2026-11-25T12:00:00Z","items":[{"sku":"milk-1l","qty":2,"price_cents":119},{"sku":"a:b.c_d-e","qty":1000,"price_cents":0}]}`) {
		t.Fatalf("AppendJSON = %s", out)
	}
}

func TestAppendResponses(t *testing.T) {
	f := func(got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Fatalf("got %s; want %s", got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("not valid JSON: %s", got)
		}
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 1000, time.UTC)
	f(AppendCreatedResponse(nil, "ord_1", StatusCreated, 487, "EUR"), `{"id":"ord_1","status":"created","total_cents":487,"currency":"EUR"}`)
	f(AppendCreatedResponse(nil, "o", StatusPaid, 0, "SEK"), `{"id":"o","status":"paid","total_cents":0,"currency":"SEK"}`)
	f(AppendStatusChangedEvent(nil, "ord_1", StatusPaid, StatusCreated, 2, at), `{"order_id":"ord_1","status":"paid","previous_status":"created","version":2,"at":"2026-11-25T10:00:00.000001Z"}`)
	f(AppendStatusResponse(nil, "ord_1", StatusCancelled, 3), `{"id":"ord_1","status":"cancelled","version":3}`)
	f(AppendError(nil, "invalid_value", `must be "x"`, "items[0].sku"), `{"error":{"code":"invalid_value","message":"must be \"x\"","field":"items[0].sku"}}`)
	f(AppendError(nil, "order_not_found", "no such order", ""), `{"error":{"code":"order_not_found","message":"no such order"}}`)
	f(AppendError([]byte("prefix "), "a", "b", "")[7:], `{"error":{"code":"a","message":"b"}}`)
}
