package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// refOrder is what encoding/json makes of an order: the same field types,
// optional fields as pointers.
type refOrder struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Currency  *string   `json:"currency"`
	CreatedAt *string   `json:"created_at"`
	Items     []refItem `json:"items"`
}

type refItem struct {
	SKU        string `json:"sku"`
	Qty        int64  `json:"qty"`
	PriceCents *int64 `json:"price_cents"`
}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, path := range files {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	for _, s := range []string{
		`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1}]}`,
		`{"id":"a","user_id":"\u00e9\"\\","currency":"SEK","created_at":"2026-11-25T10:00:00.5+01:00","items":[{"sku":"s","qty":1,"price_cents":249}]}`,
		`{"ID":"a","user_id":"u","items":[{"sku":"s","qty":1}]}`,
		`{"\u0069d":"a","user_id":"u","items":[{"sku":"s","qty":1e0}]}`,
		`{"status":"paid"}`,
		`[{"a":1},{"b":"]"}]`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode: DecodeOrder never panics; every error is a *ValidationError;
// whatever it accepts, encoding/json accepts too and decodes to the same
// values (one-way differential: we are stricter); accepted orders
// round-trip through AppendJSON; and no decoded string aliases the body.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		in := bytes.Clone(body)
		b := GetBatch()
		defer PutBatch(b)
		o, err := b.DecodeOrder(in, testReceived, []byte("k"))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Code == "" || ve.Message == "" || b.Len() != 0 {
				t.Fatalf("DecodeOrder(%q): bad error %#v (batch len %d)", body, err, b.Len())
			}
			return
		}
		for i := range in { // the decoded order must not point into the body
			in[i] = 'X'
		}

		var ref refOrder
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("DecodeOrder(%q) accepted what encoding/json rejects: %v", body, err)
		}
		cur := DefaultCurrency
		if ref.Currency != nil {
			cur = *ref.Currency
		}
		if o.ID != ref.ID || o.UserID != ref.UserID || o.Currency != cur || len(o.Items) != len(ref.Items) {
			t.Fatalf("DecodeOrder(%q) = %+v; encoding/json = %+v", body, o, ref)
		}
		if ref.CreatedAt != nil {
			want, err := time.Parse(time.RFC3339Nano, *ref.CreatedAt)
			if err != nil || !o.HasCreatedAt || !o.CreatedAt.Equal(want.Truncate(time.Microsecond)) {
				t.Fatalf("DecodeOrder(%q): created_at %v; time.Parse(%q) = %v, %v", body, o.CreatedAt, *ref.CreatedAt, want, err)
			}
		} else if o.HasCreatedAt || !o.CreatedAt.Equal(o.ReceivedAt) {
			t.Fatalf("DecodeOrder(%q): created_at %v without one in the body", body, o.CreatedAt)
		}
		for i, it := range o.Items {
			r := ref.Items[i]
			if it.SKU != r.SKU || it.Qty != r.Qty || it.HasClientPrice != (r.PriceCents != nil) ||
				(r.PriceCents != nil && *r.PriceCents != it.ClientPriceCents) {
				t.Fatalf("DecodeOrder(%q): item %d = %+v; encoding/json = %+v", body, i, it, r)
			}
		}

		// Round trip: price with the client's prices, encode, decode again.
		for i := range o.Items {
			o.Items[i].PriceCents = o.Items[i].ClientPriceCents
		}
		out := o.AppendJSON(nil)
		b2 := GetBatch()
		defer PutBatch(b2)
		o2, err := b2.DecodeOrder(out, testReceived.Add(time.Hour), nil)
		if err != nil {
			t.Fatalf("DecodeOrder(%q) = %+v; AppendJSON = %s does not decode: %v", body, o, out, err)
		}
		if o2.ID != o.ID || o2.UserID != o.UserID || o2.Currency != o.Currency || !o2.CreatedAt.Equal(o.CreatedAt) || len(o2.Items) != len(o.Items) {
			t.Fatalf("round trip of %q via %s: %+v; want %+v", body, out, o2, o)
		}
		for i, it := range o2.Items {
			w := o.Items[i]
			if it.SKU != w.SKU || it.Qty != w.Qty || !it.HasClientPrice || it.ClientPriceCents != w.PriceCents {
				t.Fatalf("round trip of %q via %s: item %d = %+v; want %+v", body, out, i, it, w)
			}
		}
		if !json.Valid(out) {
			t.Fatalf("AppendJSON = %s: not valid JSON", out)
		}
	})
}

// FuzzDecodeImpls: the scanner and jsoniter decoders agree on every body:
// both accept or both reject; rejections are the same error (Code, Field
// and Message: the client hears all three);
// accepted orders have the same fields and items, in arena memory (not
// aliasing the body).
func FuzzDecodeImpls(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`{"id":"a","user_id":"u\"","items":[{"sku":"s","qty":1,"x":"\\\""}],"\"":1}`,
		`{"x":1e999,"id":"a","user_id":"u","items":[{"sku":"s","qty":1}]}`,
		`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1,"price_cents":1e999}]}`,
		`{"id":"a","user_id":"u","items":[{"sku":"s","qty":1},{"sku":"t","qty":null}]}`,
		`{"id":"a","user_id":"u","items":[{"SKU":"s","qty":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		bs, bj := GetBatch(), GetBatch()
		defer PutBatch(bs)
		defer PutBatch(bj)
		inS, inJ := bytes.Clone(body), bytes.Clone(body)
		os, errS := bs.decodeOrderScanner(inS, testReceived, []byte("k"))
		oj, errJ := bj.DecodeOrderJsoniter(inJ, testReceived, []byte("k"))
		if (errS == nil) != (errJ == nil) {
			t.Fatalf("body %q: scanner %v; jsoniter %v", body, errS, errJ)
		}
		if errS != nil {
			var vs, vj *ValidationError
			if !errors.As(errS, &vs) || !errors.As(errJ, &vj) || *vs != *vj || vj.Message == "" {
				t.Fatalf("body %q: scanner %#v; jsoniter %#v", body, errS, errJ)
			}
			if bj.Len() != 0 || len(bj.items) != 0 {
				t.Fatalf("body %q: jsoniter left %d orders, %d items after an error", body, bj.Len(), len(bj.items))
			}
			return
		}
		for i := range inJ {
			inJ[i] = 'X'
		}
		if os.ID != oj.ID || os.UserID != oj.UserID || os.Currency != oj.Currency || os.IdempotencyKey != oj.IdempotencyKey ||
			!os.CreatedAt.Equal(oj.CreatedAt) || os.HasCreatedAt != oj.HasCreatedAt || !os.ReceivedAt.Equal(oj.ReceivedAt) ||
			len(os.Items) != len(oj.Items) || cap(oj.Items) != len(oj.Items) {
			t.Fatalf("body %q: scanner %+v; jsoniter %+v", body, os, oj)
		}
		for i := range os.Items {
			if os.Items[i] != oj.Items[i] {
				t.Fatalf("body %q: item %d: scanner %+v; jsoniter %+v", body, i, os.Items[i], oj.Items[i])
			}
		}
	})
}

// FuzzDecodeStatus: DecodeStatus and DecodeStatusUpdate never panic; what
// they accept encoding/json decodes to the same status name (and id).
func FuzzDecodeStatus(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		`{"id":"ord_1","status":"paid"}`,
		`{"\u0069d":"ord\u005f1","status":"p\u0061id","x":[{"id":1}]}`,
		`{"id":"ord_1","ID":"x","status":"paid"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dst := []byte("dst")
		id, ust, err := DecodeStatusUpdate(body, dst)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Code == "" || id != nil || ust != 0 {
				t.Fatalf("DecodeStatusUpdate(%q): bad result %q, %v, %#v", body, id, ust, err)
			}
		} else {
			var ref struct {
				ID     *string `json:"id"`
				Status *string `json:"status"`
			}
			if err := json.Unmarshal(body, &ref); err != nil || ref.ID == nil || *ref.ID != string(id) || !validID(id) ||
				ref.Status == nil || *ref.Status != ust.String() || string(dst) != "dst" {
				t.Fatalf("DecodeStatusUpdate(%q) = %q, %v; encoding/json: %v, %v, %v", body, id, ust, ref.ID, ref.Status, err)
			}
		}

		st, err := DecodeStatus(body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Code == "" {
				t.Fatalf("DecodeStatus(%q): bad error %#v", body, err)
			}
			return
		}
		var ref struct {
			Status *string `json:"status"`
		}
		if err := json.Unmarshal(body, &ref); err != nil || ref.Status == nil || *ref.Status != st.String() {
			t.Fatalf("DecodeStatus(%q) = %v; encoding/json: %v, %v", body, st, ref.Status, err)
		}
	})
}

// FuzzSplitArray: never panics; on a valid JSON array it yields exactly the
// elements encoding/json finds.
func FuzzSplitArray(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var got [][]byte
		err := SplitArray(body, func(i int, item []byte) bool {
			got = append(got, item)
			return true
		})
		var ref []json.RawMessage
		if json.Unmarshal(body, &ref) != nil || len(ref) == 0 {
			if err == nil && len(ref) == 0 && json.Valid(body) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("[")) {
				t.Fatalf("SplitArray(%q): accepted an empty array", body)
			}
			return
		}
		if err != nil || len(got) != len(ref) {
			t.Fatalf("SplitArray(%q) = %q, %v; encoding/json found %d elements", body, got, err, len(ref))
		}
		for i := range got {
			if !bytes.Equal(got[i], bytes.TrimSpace(ref[i])) {
				t.Fatalf("SplitArray(%q): element %d = %q; want %q", body, i, got[i], ref[i])
			}
		}
	})
}

// FuzzParseRFC3339: what parseRFC3339 accepts, time.Parse accepts too, as
// the same instant.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456789+01:30", "2024-02-29T23:59:59-23:59",
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9Z", "2026-11-25T10:00:00,5Z", "2026-11-25T1:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRFC3339([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || !got.Equal(want) || got.Location() != time.UTC) {
			t.Fatalf("parseRFC3339(%q) = %v; time.Parse = %v, %v", s, got, want, err)
		}
		// The canonical form of anything time.Parse accepts in range parses.
		if err == nil {
			if y := want.UTC().Year(); y >= 1 && y <= 9999 {
				canon := want.UTC().Format(time.RFC3339Nano)
				if g, ok := parseRFC3339([]byte(canon)); !ok || !g.Equal(want) {
					t.Fatalf("parseRFC3339(%q) (canonical of %q) = %v, %v", canon, s, g, ok)
				}
			}
		}
	})
}
