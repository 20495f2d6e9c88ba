package order

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testReceived = time.Date(2026, 11, 25, 10, 0, 1, 123456789, time.UTC)

// item is a compact expected item: sku, qty, and client price (-1 = none).
type item struct {
	sku   string
	qty   int64
	price int64
}

// decodeFunc is the signature of the order decoders (Batch.DecodeOrder and
// the implementations behind it).
type decodeFunc func(b *Batch, body []byte, receivedAt time.Time, idempotencyKey []byte) (*Order, error)

// decodeImpls are the order decoders every DecodeOrder test runs against:
// they must give the same results.
var decodeImpls = []struct {
	name   string
	decode decodeFunc
}{
	{"scanner", (*Batch).decodeOrderScanner},
	{"jsoniter", (*Batch).DecodeOrderJsoniter},
}

// forEachImpl runs fn as subtest impl=<name> for every order decoder.
func forEachImpl(t *testing.T, fn func(t *testing.T, decode decodeFunc)) {
	t.Helper()
	for _, impl := range decodeImpls {
		t.Run("impl="+impl.name, func(t *testing.T) { fn(t, impl.decode) })
	}
}

func decodeOne(decode decodeFunc, in string) (*Order, error) {
	return decode(GetBatch(), []byte(in), testReceived, nil)
}

func itemsOf(o *Order) []item {
	var out []item
	for _, it := range o.Items {
		p := int64(-1)
		if it.HasClientPrice {
			p = it.ClientPriceCents
		}
		out = append(out, item{it.SKU, it.Qty, p})
	}
	return out
}

func TestDecodeOrderValid(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		recv := testReceived.Truncate(time.Microsecond)
		f := func(in, id, userID, currency string, createdAt time.Time, items ...item) {
			t.Helper()
			o, err := decodeOne(decode, in)
			if err != nil {
				t.Fatalf("DecodeOrder(%q): %v", in, err)
			}
			if o.ID != id || o.UserID != userID || o.Currency != currency {
				t.Fatalf("DecodeOrder(%q): got id=%q user_id=%q currency=%q; want %q %q %q", in, o.ID, o.UserID, o.Currency, id, userID, currency)
			}
			wantHas := !createdAt.IsZero()
			if !wantHas {
				createdAt = recv
			}
			if !o.CreatedAt.Equal(createdAt) || o.HasCreatedAt != wantHas || o.CreatedAt.Location() != time.UTC {
				t.Fatalf("DecodeOrder(%q): got created_at=%v (has=%v); want %v (has=%v)", in, o.CreatedAt, o.HasCreatedAt, createdAt, wantHas)
			}
			if !o.ReceivedAt.Equal(recv) {
				t.Fatalf("DecodeOrder(%q): ReceivedAt=%v; want %v", in, o.ReceivedAt, recv)
			}
			if got := itemsOf(o); fmt.Sprint(got) != fmt.Sprint(items) {
				t.Fatalf("DecodeOrder(%q): items %v; want %v", in, got, items)
			}
			if cap(o.Items) != len(o.Items) {
				t.Fatalf("DecodeOrder(%q): Items not capped: len %d cap %d", in, len(o.Items), cap(o.Items))
			}
		}
		noTime := time.Time{}
		utc := func(s string) time.Time {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				panic(err)
			}
			return tm.Truncate(time.Microsecond)
		}
		f(`{"id":"ord_8f2k1","user_id":"u_42","currency":"EUR","created_at":"2026-11-25T10:00:00Z",
	 "items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1,"price_cents":249}]}`,
			"ord_8f2k1", "u_42", "EUR", utc("2026-11-25T10:00:00Z"), item{"milk-1l", 2, -1}, item{"bread-rye", 1, 249})
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1}]}`, "a", "u", "EUR", noTime, item{"s", 1, -1})
		f(" \t\r\n{ \"items\" : [ { \"qty\" : 1000 , \"sku\" : \"A-Z.a_z:09\" } ] , \"user_id\" : \"x\" , \"id\" : \"i\" } \n\t",
			"i", "x", "EUR", noTime, item{"A-Z.a_z:09", 1000, -1})
		// Escapes.
		f(`{"id":"a","user_id":"\u00e9","items":[{"sku":"s","qty":1}]}`, "a", "é", "EUR", noTime, item{"s", 1, -1})
		f(`{"id":"a","user_id":"\"","items":[{"sku":"s","qty":1}]}`, "a", `"`, "EUR", noTime, item{"s", 1, -1})
		f(`{"id":"a","user_id":"\\","items":[{"sku":"s","qty":1}]}`, "a", `\`, "EUR", noTime, item{"s", 1, -1})
		f(`{"id":"a","user_id":"a\/b \ud83d\ude00 \u2028","items":[{"sku":"s","qty":1}]}`, "a", "a/b 😀 \u2028", "EUR", noTime, item{"s", 1, -1})
		f(`{"\u0069d":"\u0061\u003a","user_id":"u","items":[{"sku":"\u0073","qty":1}]}`, "a:", "u", "EUR", noTime, item{"s", 1, -1})
		f(`{"id":"a","user_id":"日本語 ok","items":[{"sku":"s","qty":1}]}`, "a", "日本語 ok", "EUR", noTime, item{"s", 1, -1})
		// Optional fields: null is absent; price 0 and bounds.
		f(`{"id":"a","user_id":"u","currency":null,"created_at":null,"items":[{"sku":"s","qty":1,"price_cents":null}]}`, "a", "u", "EUR", noTime, item{"s", 1, -1})
		f(`{"id":"a","user_id":"u","currency":"SEK","items":[{"sku":"s","qty":1,"price_cents":0},{"sku":"t","qty":3,"price_cents":1000000000000}]}`,
			"a", "u", "SEK", noTime, item{"s", 1, 0}, item{"t", 3, 1000000000000})
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":-0}]}`, "a", "u", "EUR", noTime, item{"s", 1, 0})
		// Unknown fields of every kind are skipped; duplicated unknown keys are fine.
		f(`{"x":{"a":[1,-2.5e-3,"\u0000",true,false,null,{}],"b":[]},"x":1,"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"note":[[["deep"]]],"note":null}]}`,
			"a", "u", "EUR", noTime, item{"s", 1, -1})
		// Times.
		f(`{"id":"a","user_id":"u","created_at":"2026-11-25T11:30:00.1234567+01:30","items":[{"sku":"s","qty":1}]}`,
			"a", "u", "EUR", utc("2026-11-25T10:00:00.123456Z"), item{"s", 1, -1})
		f(`{"id":"a","user_id":"u","created_at":"2024-02-29T23:59:59.999999999-23:59","items":[{"sku":"s","qty":1}]}`,
			"a", "u", "EUR", utc("2024-03-01T23:58:59.999999Z"), item{"s", 1, -1})
		// Limits: 64-byte id, 64-rune user_id, 100 items.
		id64 := strings.Repeat("a", 64)
		u64 := strings.Repeat("é", 64)
		var sb strings.Builder
		var many []item
		for i := range 100 {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"sku":"s%d","qty":%d}`, i, i+1)
			many = append(many, item{fmt.Sprintf("s%d", i), int64(i + 1), -1})
		}
		f(`{"id":"`+id64+`","user_id":"`+u64+`","items":[`+sb.String()+`]}`, id64, u64, "EUR", noTime, many...)
	})
}

func TestDecodeOrderErrors(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		f := func(in, code, field string) {
			t.Helper()
			b := GetBatch()
			o, err := decode(b, []byte(in), testReceived, []byte("key"))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("DecodeOrder(%q): got (%+v, %v); want *ValidationError %s", in, o, err, code)
			}
			if ve.Code != code || ve.Field != field {
				t.Fatalf("DecodeOrder(%q): got code=%q field=%q (%v); want code=%q field=%q", in, ve.Code, ve.Field, ve, code, field)
			}
			if ve.Message == "" {
				t.Fatalf("DecodeOrder(%q): empty message", in)
			}
			if o != nil || b.Len() != 0 || len(b.items) != 0 {
				t.Fatalf("DecodeOrder(%q): batch not rolled back: %d orders, %d items", in, b.Len(), len(b.items))
			}
		}
		const items = `"items":[{"sku":"s","qty":1}]`
		const ok = `"id":"a","user_id":"u",` + items

		// Not JSON, not an object, trailing data.
		f(``, "invalid_json", "")
		f(`   `, "invalid_json", "")
		f(`{`, "invalid_json", "")
		f(`{"id"`, "invalid_json", "")
		f(`{"id":}`, "invalid_json", "id")
		f(`{,}`, "invalid_json", "")
		f(`{"id":"a",}`, "invalid_json", "")
		f(`{"id":"a" "user_id":"u"}`, "invalid_json", "")
		f(`{"id" "a"}`, "invalid_json", "")
		f(`{'id':'a'}`, "invalid_json", "")
		f(`{`+ok+`,"x":tru}`, "invalid_json", "")
		f(`{`+ok+`,"x":nul}`, "invalid_json", "")
		f(`{`+ok+`,"x":01}`, "invalid_json", "")
		f(`{`+ok+`,"x":1.}`, "invalid_json", "")
		f(`{`+ok+`,"x":-}`, "invalid_json", "")
		f(`{`+ok+`,"x":1e}`, "invalid_json", "")
		f(`{`+ok+`,"x":+1}`, "invalid_json", "")
		f(`{`+ok+`,"x":.5}`, "invalid_json", "")
		f(`{`+ok+`,"x":[1,]}`, "invalid_json", "")
		f(`{`+ok+`,"x":[,1]}`, "invalid_json", "")
		f(`{`+ok+`,"x":{"a"}}`, "invalid_json", "")
		f(`{`+ok+`,"x":{"a":1,}}`, "invalid_json", "")
		f(`{`+ok+`,"x":"\x"}`, "invalid_json", "")
		f(`{`+ok+`,"x":"\u12G4"}`, "invalid_json", "")
		f("{"+ok+",\"x\":\"a\tb\"}", "invalid_json", "")
		f("{"+ok+",\"x\":\"a\x00b\"}", "invalid_json", "")
		f("{\"id\":\"a\nb\",\"user_id\":\"u\","+items+"}", "invalid_json", "id")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1}}`, "invalid_json", "items")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1]}`, "invalid_json", "items[0]")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},]}`, "invalid_json", "items[1]")
		f(`[`, "invalid_json", "")
		f(`[1]`, "not_an_object", "")
		f(`"x"`, "not_an_object", "")
		f(`null`, "not_an_object", "")
		f(`42`, "not_an_object", "")
		f(`x`, "invalid_json", "")
		f("\xef\xbb\xbf{"+ok+"}", "invalid_json", "") // BOM
		f(`{`+ok+`}}`, "trailing_data", "")
		f(`{`+ok+`} {}`, "trailing_data", "")
		f(`{`+ok+`}x`, "trailing_data", "")
		f("{"+ok+"}\x00", "trailing_data", "")
		f(`{"id":"a"} {`, "trailing_data", "")

		// Invalid UTF-8 anywhere in a string; lone surrogates.
		f("{\"id\":\"a\",\"user_id\":\"\xff\","+items+"}", "invalid_utf8", "user_id")
		f("{\"id\":\"a\",\"user_id\":\"\xc3\x28\","+items+"}", "invalid_utf8", "user_id")
		f("{\"id\":\"a\",\"user_id\":\"\xed\xa0\x80\","+items+"}", "invalid_utf8", "user_id") // UTF-8-encoded surrogate
		f("{\"id\":\"a\",\"user_id\":\"\xc0\xaf\","+items+"}", "invalid_utf8", "user_id")     // overlong
		f("{"+ok+",\"x\":\"\xff\"}", "invalid_utf8", "")
		f("{"+ok+",\"\xff\":1}", "invalid_utf8", "")
		f("{"+ok+",\"x\":{\"\xfe\":1}}", "invalid_utf8", "")
		f(`{"id":"a","user_id":"\ud800",`+items+`}`, "invalid_utf8", "user_id")
		f(`{"id":"a","user_id":"\udc00",`+items+`}`, "invalid_utf8", "user_id")
		f(`{"id":"a","user_id":"\ud800x",`+items+`}`, "invalid_utf8", "user_id")
		f(`{"id":"a","user_id":"\ud800\n",`+items+`}`, "invalid_utf8", "user_id")
		f(`{"id":"a","user_id":"\ud800\ud800",`+items+`}`, "invalid_utf8", "user_id")
		f(`{"id":"a","user_id":"\ud83d\u0041",`+items+`}`, "invalid_utf8", "user_id")
		f(`{`+ok+`,"x":"\udfff"}`, "invalid_utf8", "")

		// Duplicate keys, also spelled with escapes.
		f(`{"id":"a","id":"a","user_id":"u",`+items+`}`, "duplicate_key", "id")
		f(`{"id":"a","\u0069d":"b","user_id":"u",`+items+`}`, "duplicate_key", "id")
		f(`{`+ok+`,"user_id":"u"}`, "duplicate_key", "user_id")
		f(`{`+ok+`,"currency":null,"currency":"EUR"}`, "duplicate_key", "currency")
		f(`{`+ok+`,"created_at":null,"created_at":null}`, "duplicate_key", "created_at")
		f(`{`+ok+`,"items":[]}`, "duplicate_key", "items")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"sku":"t"}]}`, "duplicate_key", "items[0].sku")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},{"sku":"s","qty":1,"qty":2}]}`, "duplicate_key", "items[1].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":null,"price_cents":1}]}`, "duplicate_key", "items[0].price_cents")

		// Keys that differ from known ones only in case (encoding/json would take them).
		f(`{"ID":"a","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{`+ok+`,"Items":[]}`, "invalid_value", "items")
		f(`{`+ok+`,"CURRENCY":"x"}`, "invalid_value", "currency")
		f(`{"id":"a","user_id":"u","items":[{"SKU":"s","qty":1}]}`, "invalid_value", "items[0].sku")
		f(`{"id":"a","user_id":"u","items":[{"ſku":"s","qty":1}]}`, "invalid_value", "items[0].sku") // U+017F folds to s
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"Price_Cents":1}]}`, "invalid_value", "items[0].price_cents")

		// Missing and null.
		f(`{}`, "missing_field", "id")
		f(`{"user_id":"u",`+items+`}`, "missing_field", "id")
		f(`{"id":"a",`+items+`}`, "missing_field", "user_id")
		f(`{"id":"a","user_id":"u"}`, "missing_field", "items")
		f(`{"id":"a","user_id":"u","items":[{"qty":1}]}`, "missing_field", "items[0].sku")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},{"sku":"s"}]}`, "missing_field", "items[1].qty")
		f(`{"id":"a","user_id":"u","items":[{}]}`, "missing_field", "items[0].sku")
		f(`{"id":null,"user_id":"u",`+items+`}`, "null_value", "id")
		f(`{"id":"a","user_id":null,`+items+`}`, "null_value", "user_id")
		f(`{"id":"a","user_id":"u","items":null}`, "null_value", "items")
		f(`{"id":"a","user_id":"u","items":[null]}`, "null_value", "items[0]")
		f(`{"id":"a","user_id":"u","items":[{"sku":null,"qty":1}]}`, "null_value", "items[0].sku")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":null}]}`, "null_value", "items[0].qty")

		// Wrong types.
		f(`{"id":1,"user_id":"u",`+items+`}`, "wrong_type", "id")
		f(`{"id":"a","user_id":["u"],`+items+`}`, "wrong_type", "user_id")
		f(`{"id":"a","user_id":{},`+items+`}`, "wrong_type", "user_id")
		f(`{`+ok+`,"currency":true}`, "wrong_type", "currency")
		f(`{`+ok+`,"created_at":1732528800}`, "wrong_type", "created_at")
		f(`{"id":"a","user_id":"u","items":{"sku":"s","qty":1}}`, "wrong_type", "items")
		f(`{"id":"a","user_id":"u","items":"x"}`, "wrong_type", "items")
		f(`{"id":"a","user_id":"u","items":[["s",1]]}`, "wrong_type", "items[0]")
		f(`{"id":"a","user_id":"u","items":[1]}`, "wrong_type", "items[0]")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":"1"}]}`, "wrong_type", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":2.0}]}`, "wrong_type", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1e2}]}`, "wrong_type", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":true}]}`, "wrong_type", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":2.49}]}`, "wrong_type", "items[0].price_cents")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":"249"}]}`, "wrong_type", "items[0].price_cents")
		f(`{"id":"a","user_id":"u","items":[{"sku":5,"qty":1}]}`, "wrong_type", "items[0].sku")

		// Numbers that do not fit.
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":22000000000000000000}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":9223372036854775808}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":-9223372036854775809}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":0}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":-1}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1001}]}`, "number_out_of_range", "items[0].qty")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":-1}]}`, "number_out_of_range", "items[0].price_cents")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":1000000000001}]}`, "number_out_of_range", "items[0].price_cents")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":22000000000000000000}]}`, "number_out_of_range", "items[0].price_cents")

		// Field rules.
		f(`{"id":"","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"a b","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"a/b","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"é","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"\u00e9","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"`+strings.Repeat("a", 65)+`","user_id":"u",`+items+`}`, "invalid_value", "id")
		f(`{"id":"a","user_id":"",`+items+`}`, "invalid_value", "user_id")
		f(`{"id":"a","user_id":"`+strings.Repeat("é", 65)+`",`+items+`}`, "invalid_value", "user_id")
		f(`{"id":"a","user_id":"u\u0000",`+items+`}`, "invalid_value", "user_id")
		f(`{"id":"a","user_id":"u\n",`+items+`}`, "invalid_value", "user_id")
		f(`{"id":"a","user_id":"u\u007f",`+items+`}`, "invalid_value", "user_id")
		f(`{"id":"a","user_id":"u\u0085",`+items+`}`, "invalid_value", "user_id")
		f("{\"id\":\"a\",\"user_id\":\"u\x7f\","+items+"}", "invalid_value", "user_id")
		f("{\"id\":\"a\",\"user_id\":\"u\u009f\","+items+"}", "invalid_value", "user_id")
		f(`{"id":"a","user_id":"u","items":[]}`, "invalid_value", "items")
		f(`{"id":"a","user_id":"u","items":[{"sku":"","qty":1}]}`, "invalid_value", "items[0].sku")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},{"sku":"a b","qty":1}]}`, "invalid_value", "items[1].sku")
		f(`{`+ok+`,"currency":"eur"}`, "invalid_value", "currency")
		f(`{`+ok+`,"currency":"EURO"}`, "invalid_value", "currency")
		f(`{`+ok+`,"currency":""}`, "invalid_value", "currency")
		f(`{`+ok+`,"currency":"E\u0055R\u0000"}`, "invalid_value", "currency")
		for _, ts := range []string{
			"", "2026-11-25", "2026-11-25T10:00:00", "2026-11-25 10:00:00Z", "2026-11-25t10:00:00Z",
			"2026-11-25T10:00:00z", "2026-11-25T1:00:00Z", "2026-11-25T10:00:00,5Z", "2026-11-25T10:00:00.Z",
			"2026-13-25T10:00:00Z", "2026-02-29T10:00:00Z", "2026-11-31T10:00:00Z", "2026-11-25T24:00:00Z",
			"2026-11-25T10:60:00Z", "2026-11-25T10:00:60Z", "2026-11-25T10:00:00+24:00", "2026-11-25T10:00:00+01:60",
			"2026-11-25T10:00:00+0100", "2026-11-25T10:00:00+01", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01",
			"9999-12-31T23:59:59-00:01", "+2026-11-25T10:00:00Z", "2026-11-25T10:00:00ZZ", "2026-1-25T10:00:00Z",
		} {
			f(`{`+ok+`,"created_at":"`+ts+`"}`, "invalid_value", "created_at")
		}

		// Depth and size.
		f(`{`+ok+`,"x":`+strings.Repeat("[", 32)+strings.Repeat("]", 32)+`}`, "too_deep", "")
		f(`{`+ok+`,"x":`+strings.Repeat(`{"a":`, 32)+"1"+strings.Repeat("}", 32)+`}`, "too_deep", "")
		f(`{`+ok+`,"x":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`, "too_deep", "")
		f(`{`+ok+`,"x":`+strings.Repeat("[", 10000)+`}`, "too_deep", "")
		f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"x":`+strings.Repeat("[", 30)+strings.Repeat("]", 30)+`}]}`, "too_deep", "items[0]")
		var sb strings.Builder
		for i := range 101 {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(`{"sku":"s","qty":1}`)
		}
		f(`{"id":"a","user_id":"u","items":[`+sb.String()+`]}`, "too_many_items", "items")
	})
}

func TestDecodeOrderDepthLimit(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		// 30 levels inside the unknown field + the top-level object = 31 <= 32: fine.
		in := `{"id":"a","user_id":"u","items":[{"sku":"s","qty":1}],"x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`
		if _, err := decodeOne(decode, in); err != nil {
			t.Fatalf("DecodeOrder(%q): %v", in, err)
		}
		in = `{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"x":` + strings.Repeat("[", 29) + strings.Repeat("]", 29) + `}]}`
		if _, err := decodeOne(decode, in); err != nil {
			t.Fatalf("DecodeOrder(%q): %v", in, err)
		}
	})
}

// TestDecodeOrderTruncated: every proper prefix of a valid order is an error.
func TestDecodeOrderTruncated(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		for _, name := range []string{"valid.json", "valid_typical.json", "valid_escaped.json"} {
			body := strings.TrimSpace(string(readTestdata(t, name)))
			if _, err := decodeOne(decode, body); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i := range len(body) {
				if o, err := decodeOne(decode, body[:i]); err == nil {
					t.Fatalf("DecodeOrder(%q): accepted a truncated order: %+v", body[:i], o)
				}
			}
		}
	})
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeOrderGolden(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		want := map[string]struct{ code, field string }{
			"invalid_duplicate_key.json":       {"duplicate_key", "id"},
			"invalid_invalid_utf8.json":        {"invalid_utf8", "user_id"},
			"invalid_invalid_utf8_key.json":    {"invalid_utf8", ""},
			"invalid_invalid_value.json":       {"invalid_value", "id"},
			"invalid_json_truncated.json":      {"invalid_json", ""},
			"invalid_lone_surrogate.json":      {"invalid_utf8", "user_id"},
			"invalid_missing_field.json":       {"missing_field", "items"},
			"invalid_not_an_object.json":       {"not_an_object", ""},
			"invalid_nul_user_id.json":         {"invalid_value", "user_id"},
			"invalid_null_value.json":          {"null_value", "id"},
			"invalid_number_out_of_range.json": {"number_out_of_range", "items[0].qty"},
			"invalid_too_deep.json":            {"too_deep", ""},
			"invalid_too_many_items.json":      {"too_many_items", "items"},
			"invalid_trailing_data.json":       {"trailing_data", ""},
			"invalid_wrong_type.json":          {"wrong_type", "items[0].qty"},
		}
		files, _ := filepath.Glob("testdata/*.json")
		for _, path := range files {
			name := filepath.Base(path)
			t.Run(name, func(t *testing.T) {
				body := readTestdata(t, name)
				_, err := decodeOne(decode, string(body))
				switch {
				case strings.HasPrefix(name, "valid"):
					if err != nil {
						t.Fatalf("DecodeOrder(%q): %v", body, err)
					}
				case strings.HasPrefix(name, "invalid_"):
					w, ok := want[name]
					if !ok {
						t.Fatalf("no expectation for %s: add it to the table", name)
					}
					var ve *ValidationError
					if !errors.As(err, &ve) || ve.Code != w.code || ve.Field != w.field {
						t.Fatalf("DecodeOrder(%q): got %v; want %s at %q", body, err, w.code, w.field)
					}
				}
			})
		}
	})
}

func TestDecodeOrderEscaped(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		o, err := decodeOne(decode, string(readTestdata(t, "valid_escaped.json")))
		if err != nil {
			t.Fatal(err)
		}
		if o.ID != "ord_42" || o.UserID != `Renée "R" O\Brien 😀 /` || o.Currency != "USD" ||
			o.Items[0].SKU != "milk-1l" || o.Items[1].HasClientPrice {
			t.Fatalf("got %+v", o)
		}
		want := time.Date(2026, 11, 25, 10, 0, 0, 500000000, time.UTC)
		if !o.CreatedAt.Equal(want) {
			t.Fatalf("created_at %v; want %v", o.CreatedAt, want)
		}
	})
}

// TestDecodeOrderBatch: orders accumulate, a failed decode rolls back only
// itself, every string is a copy (the body may be overwritten), and the
// idempotency key is kept.
func TestDecodeOrderBatch(t *testing.T) {
	forEachImpl(t, func(t *testing.T, decode decodeFunc) {
		b := GetBatch()
		defer PutBatch(b)
		body := []byte(`{"id":"o1","user_id":"u1","items":[{"sku":"s1","qty":1},{"sku":"s2","qty":2}]}`)
		if _, err := decode(b, body, testReceived, []byte("idem-1")); err != nil {
			t.Fatal(err)
		}
		bad := []byte(`{"id":"o2","user_id":"u2","items":[{"sku":"x","qty":1},{"sku":"y","qty":0}]}`)
		if _, err := decode(b, bad, testReceived, nil); err == nil {
			t.Fatalf("DecodeOrder(%q): accepted", bad)
		}
		body2 := []byte(`{"id":"o3","user_id":"u3","items":[{"sku":"s3","qty":3}]}`)
		if _, err := decode(b, body2, testReceived, nil); err != nil {
			t.Fatal(err)
		}
		for i := range body {
			body[i] = 'X'
		}
		for i := range body2 {
			body2[i] = 'X'
		}
		if b.Len() != 2 {
			t.Fatalf("Len %d; want 2", b.Len())
		}
		o1, o3 := &b.Orders[0], &b.Orders[1]
		if o1.ID != "o1" || o1.UserID != "u1" || o1.IdempotencyKey != "idem-1" || fmt.Sprint(itemsOf(o1)) != fmt.Sprint([]item{{"s1", 1, -1}, {"s2", 2, -1}}) {
			t.Fatalf("order 0: %+v", o1)
		}
		if o3.ID != "o3" || o3.IdempotencyKey != "" || fmt.Sprint(itemsOf(o3)) != fmt.Sprint([]item{{"s3", 3, -1}}) {
			t.Fatalf("order 1: %+v", o3)
		}
		if len(b.items) != 3 {
			t.Fatalf("items %d; want 3", len(b.items))
		}
		// Appending to one order's items must not write into the next one's.
		_ = append(o1.Items, Item{SKU: "zzz"})
		if o3.Items[0].SKU != "s3" {
			t.Fatalf("Items not capped: %+v", o3.Items)
		}
	})
}

func TestDecodeStatus(t *testing.T) {
	f := func(in string, want Status, code string) {
		t.Helper()
		got, err := DecodeStatus([]byte(in))
		if code == "" {
			if err != nil || got != want {
				t.Fatalf("DecodeStatus(%q): got (%v, %v); want %v", in, got, err, want)
			}
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Code != code {
			t.Fatalf("DecodeStatus(%q): got (%v, %v); want code %s", in, got, err, code)
		}
	}
	f(`{"status":"paid"}`, StatusPaid, "")
	f(` { "status" : "created" } `, StatusCreated, "")
	f(`{"status":"assembling"}`, StatusAssembling, "")
	f(`{"status":"delivering","x":[1,{"y":null}]}`, StatusDelivering, "")
	f(`{"x":1,"x":2,"status":"delivered"}`, StatusDelivered, "")
	f(`{"status":"\u0063ancelled"}`, StatusCancelled, "")
	f(`{"st\u0061tus":"paid"}`, StatusPaid, "")
	f(`{"status":"shipped"}`, 0, "invalid_value")
	f(`{"status":"Paid"}`, 0, "invalid_value")
	f(`{"status":""}`, 0, "invalid_value")
	f(`{"status":"paid\u0000"}`, 0, "invalid_value")
	f(`{"status":"`+strings.Repeat(`\u0061`, 40)+`"}`, 0, "invalid_value")
	f(`{"status":"`+strings.Repeat(`\u00e9`, 40)+`"}`, 0, "invalid_value")
	f(`{"Status":"paid"}`, 0, "invalid_value")
	f(`{"status":"paid","status":"paid"}`, 0, "duplicate_key")
	f(`{"status":null}`, 0, "null_value")
	f(`{"status":1}`, 0, "wrong_type")
	f(`{"status":["paid"]}`, 0, "wrong_type")
	f(`{}`, 0, "missing_field")
	f(`{"x":"paid"}`, 0, "missing_field")
	f(``, 0, "invalid_json")
	f(`{"status":"paid"`, 0, "invalid_json")
	f(`{"status":"paid",}`, 0, "invalid_json")
	f(`"paid"`, 0, "not_an_object")
	f(`{"status":"paid"} x`, 0, "trailing_data")
	f("{\"status\":\"paid\",\"x\":\"\xff\"}", 0, "invalid_utf8")
	f(`{"status":"paid","x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`, 0, "too_deep")
	for _, body := range []string{`{"status":"paid"}`, `{"status":"delivered","x":1}`} {
		for i := range len(body) {
			if _, err := DecodeStatus([]byte(body[:i])); err == nil {
				t.Fatalf("DecodeStatus(%q): accepted a truncated body", body[:i])
			}
		}
	}
}

func TestDecodeStatusUpdate(t *testing.T) {
	f := func(in, wantID string, want Status, code, field string) {
		t.Helper()
		scratch := make([]byte, 2, 80)
		id, got, err := DecodeStatusUpdate([]byte(in), scratch)
		if code == "" {
			if err != nil || string(id) != wantID || got != want {
				t.Fatalf("DecodeStatusUpdate(%q): got (%q, %v, %v); want (%q, %v)", in, id, got, err, wantID, want)
			}
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Code != code || ve.Field != field || id != nil || got != 0 {
			t.Fatalf("DecodeStatusUpdate(%q): got (%q, %v, %v); want code=%s field=%q", in, id, got, err, code, field)
		}
	}
	f(`{"id":"ord_1","status":"paid"}`, "ord_1", StatusPaid, "", "")
	f(` { "status" : "cancelled" , "id" : "A-Z.a_z:09" } `, "A-Z.a_z:09", StatusCancelled, "", "")
	f(`{"id":"o","status":"delivering","x":[1,{"id":null,"status":1}],"x":2}`, "o", StatusDelivering, "", "")
	f(`{"id":"ord\u005f1","st\u0061tus":"\u0070aid"}`, "ord_1", StatusPaid, "", "")
	f(`{"\u0069d":"o","status":"paid"}`, "o", StatusPaid, "", "")
	f(`{"id":"`+strings.Repeat("a", 64)+`","status":"paid"}`, strings.Repeat("a", 64), StatusPaid, "", "")
	f(`{"id":"`+strings.Repeat(`\u0061`, 64)+`","status":"paid"}`, strings.Repeat("a", 64), StatusPaid, "", "")

	f(`{"status":"paid"}`, "", 0, "missing_field", "id")
	f(`{"id":"o"}`, "", 0, "missing_field", "status")
	f(`{}`, "", 0, "missing_field", "id")
	f(`{"id":null,"status":"paid"}`, "", 0, "null_value", "id")
	f(`{"id":1,"status":"paid"}`, "", 0, "wrong_type", "id")
	f(`{"id":["o"],"status":"paid"}`, "", 0, "wrong_type", "id")
	f(`{"id":"","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"a b","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"\u00e9","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"a\u0000","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"`+strings.Repeat("a", 65)+`","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"`+strings.Repeat(`\u0061`, 65)+`","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"\x","status":"paid"}`, "", 0, "invalid_json", "id")
	f(`{"id":"\ud800","status":"paid"}`, "", 0, "invalid_utf8", "id")
	f("{\"id\":\"\xff\",\"status\":\"paid\"}", "", 0, "invalid_utf8", "id")
	f(`{"id":"o","id":"o","status":"paid"}`, "", 0, "duplicate_key", "id")
	f(`{"id":"o","\u0069d":"p","status":"paid"}`, "", 0, "duplicate_key", "id")
	f(`{"id":"o","status":"paid","status":"paid"}`, "", 0, "duplicate_key", "status")
	f(`{"ID":"o","status":"paid"}`, "", 0, "invalid_value", "id")
	f(`{"id":"o","Status":"paid"}`, "", 0, "invalid_value", "status")
	f(`{"id":"o","status":"shipped"}`, "", 0, "invalid_value", "status")
	f(`{"id":"o","status":null}`, "", 0, "null_value", "status")
	f(`{"id":"o","status":1}`, "", 0, "wrong_type", "status")
	f(``, "", 0, "invalid_json", "")
	f(`{"id":"o","status":"paid"`, "", 0, "invalid_json", "")
	f(`{"id":"o","status":"paid",}`, "", 0, "invalid_json", "")
	f(`{"id":nul,"status":"paid"}`, "", 0, "invalid_json", "id")
	f(`{x}`, "", 0, "invalid_json", "")
	f(`{"id":"o","status":nul}`, "", 0, "invalid_json", "status")
	f(`["o","paid"]`, "", 0, "not_an_object", "")
	f(`{"id":"o","status":"paid"} x`, "", 0, "trailing_data", "")
	f("{\"id\":\"o\",\"status\":\"paid\",\"x\":\"\xff\"}", "", 0, "invalid_utf8", "")
	f(`{"id":"o","status":"paid","x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`, "", 0, "too_deep", "")
	for _, body := range []string{`{"id":"o","status":"paid"}`, `{"id":"o\u005f1","status":"delivered","x":1}`} {
		for i := range len(body) {
			if _, _, err := DecodeStatusUpdate([]byte(body[:i]), nil); err == nil {
				t.Fatalf("DecodeStatusUpdate(%q): accepted a truncated body", body[:i])
			}
		}
	}
}

// TestDecodeStatusUpdateMemory: an unescaped id is a view into the body; an
// escaped one is appended to dst (after its contents, which are kept).
func TestDecodeStatusUpdateMemory(t *testing.T) {
	body := []byte(`{"id":"ord_1","status":"paid"}`)
	id, _, err := DecodeStatusUpdate(body, nil)
	if err != nil || &id[0] != &body[7] || cap(id) != len(id) {
		t.Fatalf("DecodeStatusUpdate(%q): id %q (cap %d), %v; want a capped view into the body", body, id, cap(id), err)
	}
	body = []byte(`{"id":"ord\u005f1","status":"paid"}`)
	dst := append(make([]byte, 0, 64), "prev"...)
	id, _, err = DecodeStatusUpdate(body, dst)
	if err != nil || string(id) != "ord_1" || &id[0] != &dst[:5][4] || string(dst[:4]) != "prev" {
		t.Fatalf("DecodeStatusUpdate(%q, dst): id %q, %v; want ord_1 appended to dst", body, id, err)
	}
}
