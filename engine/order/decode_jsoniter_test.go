package order

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestDecodeJsoniterLayers checks which layer of DecodeOrderJsoniter decides
// a body: semantic errors on well-formed JSON must come from the jsoniter
// layer (jsoniterSafe accepts the body), syntax-level ones from the scanner
// (jsoniterSafe refuses it), and both must match decodeOrderScanner.
func TestDecodeJsoniterLayers(t *testing.T) {
	f := func(in string, safe bool, code, field string) {
		t.Helper()
		if got := jsoniterSafe([]byte(in)); got != safe {
			t.Fatalf("jsoniterSafe(%q) = %v; want %v", in, got, safe)
		}
		b := GetBatch()
		defer PutBatch(b)
		o, err := b.DecodeOrderJsoniter([]byte(in), testReceived, nil)
		if code == "" {
			if err != nil || o == nil {
				t.Fatalf("DecodeOrderJsoniter(%q): %v", in, err)
			}
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Code != code || ve.Field != field {
			t.Fatalf("DecodeOrderJsoniter(%q): got %v; want %s at %q", in, err, code, field)
		}
	}
	const items = `"items":[{"sku":"s","qty":1}]`
	const ok = `"id":"a","user_id":"u",` + items

	// Layer 2 (jsoniter) decides.
	f(`{`+ok+`}`, true, "", "")
	f(`{`+ok+`,"x":{"y":[1,"\"",{"z":null}]},"\"":1}`, true, "", "")
	f(`{"id":"a","user_id":"u\"","items":[{"sku":"s","qty":1,"\u0078":"\\"}]}`, true, "", "")
	f(`{"id":"a","user_id":"u\\","items":[{"sku":"s","qty":1}]}`, true, "", "")
	f(`{"ID\u0000":1,`+ok+`}`, true, "", "") // escaped unknown key: compared raw, still unknown
	f(`{}`, true, "missing_field", "id")
	f(`{"id":"a","items":[]}`, true, "invalid_value", "items")
	f(`{"id":"a","id":"b"}`, true, "duplicate_key", "id")
	f(`{"id":1,"ID":2}`, false, "wrong_type", "id") // case variant: the scanner reports the earlier error
	f(`{"id":null}`, true, "null_value", "id")
	f(`{"id":"a b"}`, true, "invalid_value", "id")
	f(`{"id":"a","user_id":"u","currency":"eur",`+items+`}`, true, "invalid_value", "currency")
	f(`{"id":"a","user_id":"u","created_at":"x",`+items+`}`, true, "invalid_value", "created_at")
	f(`{"id":"a","user_id":"u","created_at":1,`+items+`}`, true, "wrong_type", "created_at")
	f(`{"id":"a","user_id":"u","items":{}}`, true, "wrong_type", "items")
	f(`{"id":"a","user_id":"u","items":null}`, true, "null_value", "items")
	f(`{"id":"a","user_id":"u","items":[null]}`, true, "null_value", "items[0]")
	f(`{"id":"a","user_id":"u","items":[[]]}`, true, "wrong_type", "items[0]")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},{"qty":1}]}`, true, "missing_field", "items[1].sku")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s"}]}`, true, "missing_field", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","sku":"t"}]}`, true, "duplicate_key", "items[0].sku")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":null}]}`, true, "null_value", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":"1"}]}`, true, "wrong_type", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1.0}]}`, true, "wrong_type", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":12345678901234567890123456789012345678901234567890}]}`, true, "number_out_of_range", "items[0].qty")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":-1}]}`, true, "number_out_of_range", "items[0].price_cents")
	f(`{"id":"a","user_id":"u","items":[{"sku":"\u00e9","qty":1}]}`, true, "invalid_value", "items[0].sku")
	f(`{"id":"a","user_id":"u","items":[`+strings.Repeat(`{"sku":"s","qty":1},`, 100)+`{"sku":"s","qty":1}]}`, true, "too_many_items", "items")

	// Layer 1 refuses; the scanner decides.
	f(`{"\u0069d":"a","user_id":"u",`+items+`}`, false, "", "") // known key spelled with escapes
	f(`{"Id":"a",`+ok+`}`, false, "invalid_value", "id")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","QTY":1}]}`, false, "invalid_value", "items[0].qty")
	f(`[]`, false, "not_an_object", "")
	f(`{`+ok+`} x`, false, "trailing_data", "")
	f(`{"id":2,`+ok+`,"x":tru}`, false, "wrong_type", "id") // semantic error before the syntax error
	f(`{`+ok+`,"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`, false, "too_deep", "")

	// jsoniter refuses what layer 1 accepted (its Skip cannot skip a number
	// outside float64 range): the scanner decides.
	f(`{`+ok+`,"x":1e999}`, true, "", "")
	f(`{"x":1e999,"id":1,"user_id":"u",`+items+`}`, true, "wrong_type", "id")
	f(`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1e999}]}`, true, "wrong_type", "items[0].qty")
}

// TestJsoniterPitfalls pins the jsoniter v1.1.12 behaviour decode_jsoniter.go
// is built around.
func TestJsoniterPitfalls(t *testing.T) {
	// ReadStringAsSlice stops at an escaped quote (hence the \u0022 rewrite).
	iter := jsonAPI.BorrowIterator([]byte(`"a\"b"`))
	if got := string(iter.ReadStringAsSlice()); got != `a\` {
		t.Fatalf(`ReadStringAsSlice("a\"b") = %q; want "a\\"`, got)
	}
	jsonAPI.ReturnIterator(iter)

	// ReadInt64 wraps silently (hence SkipAndAppendBytes + intValue).
	iter = jsonAPI.BorrowIterator([]byte(`22000000000000000000`))
	if v := iter.ReadInt64(); v != 3553255926290448384 || (iter.Error != nil && iter.Error != io.EOF) {
		t.Fatalf("ReadInt64(22000000000000000000) = %d, %v; want the silent wrap", v, iter.Error)
	}
	jsonAPI.ReturnIterator(iter)

	// Skip refuses 1e999, which is valid JSON (hence the scanner fallback).
	iter = jsonAPI.BorrowIterator([]byte(`[1e999]`))
	iter.Skip()
	if iter.Error == nil {
		t.Fatal("Skip([1e999]) succeeded: the fallback test above no longer covers divergence")
	}
	jsonAPI.ReturnIterator(iter)

	// The DTOs get the general struct decoder, which compares raw key bytes:
	// a key with the same FNV-1a hash as "id" (here the same name, escaped)
	// is not taken for id. The 1-10 field decoders would match it by hash.
	b := GetBatch()
	defer PutBatch(b)
	o, _, _ := b.beginOrder()
	st := getJSONState(b, o)
	iter = jsonAPI.BorrowIterator([]byte(`{"\u0069d":"a"}`))
	iter.Attachment = st
	iter.ReadVal(&st.order)
	if st.seen != 0 || iter.Error != nil {
		t.Fatalf(`ReadVal({"\u0069d":"a"}): seen %b, %v; want the key treated as unknown`, st.seen, iter.Error)
	}
	jsonAPI.ReturnIterator(iter)
	putJSONState(st)

}

func TestAppendQuoteEscapesAsU(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(appendQuoteEscapesAsU([]byte("x"), []byte(in))); got != "x"+want {
			t.Fatalf("appendQuoteEscapesAsU(%q) = %q; want %q", in, got, "x"+want)
		}
	}
	f(`{}`, `{}`)
	f(`{"a":"\""}`, `{"a":"\u0022"}`)
	f(`{"a":"\\"}`, `{"a":"\\"}`)
	f(`{"a":"\\\"x\n"}`, `{"a":"\\\u0022x\n"}`)
	f(`"\"\"`, `"\u0022\u0022`)
}

// TestDecodeJsoniterLargeEscaped: a body larger than the rewrite buffer a
// pooled state keeps decodes like with the scanner, and the buffer is not
// retained.
func TestDecodeJsoniterLargeEscaped(t *testing.T) {
	in := `{"id":"a","user_id":"\"u\"","x":"` + strings.Repeat(`\"`, maxRetainedRewrite) + `","items":[{"sku":"s","qty":1}]}`
	b := GetBatch()
	defer PutBatch(b)
	o, err := b.DecodeOrderJsoniter([]byte(in), testReceived, nil)
	if err != nil || o.UserID != `"u"` {
		t.Fatalf("DecodeOrderJsoniter(%d-byte body): %+v, %v", len(in), o, err)
	}
	st := &jsonState{rewritten: make([]byte, 10, maxRetainedRewrite+1)}
	st.reset()
	if st.rewritten != nil {
		t.Fatalf("reset kept a %d-byte rewrite buffer", cap(st.rewritten))
	}
	st = &jsonState{rewritten: make([]byte, 10, 100), err: errEOF}
	st.reset()
	if len(st.rewritten) != 0 || cap(st.rewritten) != 100 || st.err != nil {
		t.Fatalf("reset: rewritten len %d cap %d, err %v; want an empty 100-byte buffer and no error", len(st.rewritten), cap(st.rewritten), st.err)
	}
}
