package order

import (
	"bytes"
	"io"
	"reflect"
	"sync"
	"time"

	jsoniter "github.com/json-iterator/go"
)

// This file holds DecodeOrderJsoniter, DecodeOrder built on jsoniter's
// Iterator as the design card asks. It is a supported alternative to the
// scanner decoder (decode.go): the ingest server uses it for order bodies
// with -ingest.decoder=jsoniter; DecodeOrder's doc comment says why the
// scanner is the default.
//
// It is two layers, because jsoniter v1.1.12 checks too little on its own:
//
//  1. jsoniterSafe, a validate-only walk on the strict scanner (scan.go): the
//     whole body is strict JSON (syntax, escapes, UTF-8 in every string and
//     key, unknown fields included, no lone surrogates, no raw control
//     characters), nests at most 32 levels (checked before jsoniter's
//     recursive Skip sees it), has no trailing data and is an object; no key
//     of the order object or of an item object is a case variant of a known
//     field (encoding/json would take it; jsoniter, case-sensitive, would
//     silently skip it) or a known field spelled with escapes (the key
//     reader below compares raw bytes). jsoniter checks none of these
//     (PITFALLS.md). A body that fails any of them is decoded by the
//     scanner decoder instead: the first error in document order - which
//     the contract fixes, and which may be a semantic error that comes
//     before the syntax error - is then exactly what DecodeOrder reports.
//     Such bodies are all invalid except for known keys spelled with escapes.
//  2. jsoniter, on a body layer 1 accepted: one frozen config whose extension
//     replaces the field decoders of two small DTOs (jsonOrder, jsonItem)
//     with ours, which keep their state in Iterator.Attachment. jsoniter
//     walks the objects, matches keys and skips unknown fields; our field
//     decoders read values through the Iterator (WhatIsNext, ReadNil,
//     ReadArray, ReadStringAsSlice, SkipAndAppendBytes) and check, in
//     document order as the scanner decoder does: duplicate keys (jsoniter
//     calls a field decoder once per occurrence), null for required fields,
//     types, exact integers (the number's bytes are captured and parsed
//     strictly: ReadInt64 wraps silently), ranges, field rules, the item
//     limit and missing fields.
//
// Keys: jsoniter's struct decoders for 1-10 fields dispatch on a 64-bit
// FNV-1a hash of the key (readFieldHash), so an unknown key whose hash
// collides with "id" would be decoded as id. The DTOs therefore have more
// than 10 fields (the extra ones have names no body can spell: a raw NUL
// byte, refused by layer 1), which makes jsoniter use its general struct
// decoder; with ObjectFieldMustBeSimpleString it reads each key with
// ReadStringAsSlice and looks the exact bytes up in a map, without
// allocating. TestJsoniterKeyMatching pins this.
//
// Strings: ReadStringAsSlice returns the raw bytes between the quotes and
// stops at the first '"' byte, even an escaped one. A body without a
// backslash is read as is and each string copied into the arena. A body
// with escapes is first rewritten into a pooled buffer with every \"
// spelled \u0022 (the same JSON), so ReadStringAsSlice always stops at the
// closing quote; its raw bytes are then unescaped into the arena by the
// scanner's unescape.
//
// If jsoniter ever refuses what layer 1 accepted (its strict Skip rejects
// numbers outside float64 range, such as 1e999, in unknown fields), the
// scanner decoder decides instead. Allocations: none for a body without
// escapes; jsoniter's own Skip allocates when it skips an escaped string or
// an object-valued unknown field (ReadString, ReadObjectCB), see
// alloc_test.go.

// jsonAPI is the frozen jsoniter config of the decoder. CaseSensitive: key
// case variants are layer 1's business. Not used for anything else.
var jsonAPI = func() jsoniter.API {
	api := jsoniter.Config{CaseSensitive: true, ObjectFieldMustBeSimpleString: true}.Froze()
	api.RegisterExtension(&jsonExtension{})
	return api
}()

// jsonOrder and jsonItem only name the fields for jsoniter: their field
// decoders (jsonExtension) write into the Order and Item in jsonState, not
// into the DTO. The p fields push the field count above 10 (see the file
// comment); their names hold a raw NUL byte, which no body that passed
// layer 1 can contain in a key, so they are never matched.
type jsonOrder struct {
	ID        struct{} `json:"id"`
	UserID    struct{} `json:"user_id"`
	Currency  struct{} `json:"currency"`
	CreatedAt struct{} `json:"created_at"`
	Items     struct{} `json:"items"`
	P1        struct{} `json:"\x001"`
	P2        struct{} `json:"\x002"`
	P3        struct{} `json:"\x003"`
	P4        struct{} `json:"\x004"`
	P5        struct{} `json:"\x005"`
	P6        struct{} `json:"\x006"`
}

type jsonItem struct {
	SKU        struct{} `json:"sku"`
	Qty        struct{} `json:"qty"`
	PriceCents struct{} `json:"price_cents"`
	P1         struct{} `json:"\x001"`
	P2         struct{} `json:"\x002"`
	P3         struct{} `json:"\x003"`
	P4         struct{} `json:"\x004"`
	P5         struct{} `json:"\x005"`
	P6         struct{} `json:"\x006"`
	P7         struct{} `json:"\x007"`
	P8         struct{} `json:"\x008"`
}

var (
	jsonOrderType = reflect.TypeFor[jsonOrder]()
	jsonItemType  = reflect.TypeFor[jsonItem]()
)

// jsonExtension installs our field decoders on the DTOs.
type jsonExtension struct{ jsoniter.DummyExtension }

// UpdateStructDescriptor replaces the decoders of the DTOs' known fields.
func (*jsonExtension) UpdateStructDescriptor(sd *jsoniter.StructDescriptor) {
	for _, b := range sd.Fields {
		var fn func(*jsoniter.Iterator)
		switch t, name := sd.Type.Type1(), b.Field.Name(); {
		case t == jsonOrderType && name == "ID":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).orderField(it, fID, "id") }
		case t == jsonOrderType && name == "UserID":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).orderField(it, fUserID, "user_id") }
		case t == jsonOrderType && name == "Currency":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).orderField(it, fCurrency, "currency") }
		case t == jsonOrderType && name == "CreatedAt":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).orderField(it, fCreatedAt, "created_at") }
		case t == jsonOrderType && name == "Items":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).orderField(it, fItems, "items") }
		case t == jsonItemType && name == "SKU":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).itemField(it, fSKU, "sku") }
		case t == jsonItemType && name == "Qty":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).itemField(it, fQty, "qty") }
		case t == jsonItemType && name == "PriceCents":
			fn = func(it *jsoniter.Iterator) { jsonStateOf(it).itemField(it, fPriceCents, "price_cents") }
		default:
			continue
		}
		b.Decoder = valDecoder(b.Field.UnsafeGet, fn)
	}
}

// fieldDecoder adapts fn to jsoniter.ValDecoder, whose Decode method takes
// the field's address as an unsafe.Pointer. Our decoders never use it (the
// DTO fields are empty); P is inferred as unsafe.Pointer from
// reflect2.StructField.UnsafeGet, so this package needs no unsafe import
// (STYLE.md: unsafe only in internal/bytesutil).
type fieldDecoder[P any] func(*jsoniter.Iterator)

// Decode calls the decoder.
func (f fieldDecoder[P]) Decode(_ P, iter *jsoniter.Iterator) { f(iter) }

func valDecoder[P any](_ func(P) P, fn func(*jsoniter.Iterator)) jsoniter.ValDecoder {
	var d any = fieldDecoder[P](fn)
	return d.(jsoniter.ValDecoder)
}

// jsonState is one decode's state, reached from the field decoders through
// Iterator.Attachment. Pooled: Attachment is an interface, so a state on the
// caller's stack would escape to the heap on every decode.
type jsonState struct {
	b         *Batch
	o         *Order
	it        *Item
	itemIdx   int   // index of the item being decoded
	seen      uint8 // order fields seen (fID...)
	itemSeen  uint8 // item fields seen (fSKU...)
	escaped   bool  // the body holds a backslash: unescape strings
	diverged  bool  // jsoniter had refused the body before our first error
	err       *ValidationError
	order     jsonOrder
	itemDTO   jsonItem
	num       [32]byte // a number's bytes; longer ones are out of range anyway
	rewritten []byte   // the body with \" spelled \u0022
}

// maxRetainedRewrite caps the rewrite buffer a pooled state keeps (64 KiB).
const maxRetainedRewrite = 64 << 10

var jsonStatePool = sync.Pool{New: func() any { return new(jsonState) }}

func getJSONState(b *Batch, o *Order) *jsonState {
	st := jsonStatePool.Get().(*jsonState)
	st.b, st.o = b, o
	return st
}

func putJSONState(st *jsonState) {
	st.reset()
	jsonStatePool.Put(st)
}

func (st *jsonState) reset() {
	rw := st.rewritten[:0]
	if cap(rw) > maxRetainedRewrite {
		rw = nil
	}
	*st = jsonState{rewritten: rw}
}

func jsonStateOf(iter *jsoniter.Iterator) *jsonState { return iter.Attachment.(*jsonState) }

// fail records err (the first one wins) and stops jsoniter: the iterator is
// reset to an empty input, so every read after this one hits EOF and the
// struct decoders return. The iterator is not used again before it goes
// back to the pool (which resets it).
func (st *jsonState) fail(iter *jsoniter.Iterator, err *ValidationError) {
	if st.err != nil {
		return
	}
	st.err = err
	st.diverged = iter.Error != nil && iter.Error != io.EOF
	iter.ResetBytes(nil)
}

// DecodeOrderJsoniter is DecodeOrder on jsoniter's Iterator, with the same
// contract and results; see the comment at the top of this file for what
// each layer checks. Not safe for concurrent use on one Batch.
func (b *Batch) DecodeOrderJsoniter(body []byte, receivedAt time.Time, idempotencyKey []byte) (*Order, error) {
	if !jsoniterSafe(body) {
		return b.decodeOrderScanner(body, receivedAt, idempotencyKey)
	}
	o, n0, i0 := b.beginOrder()
	st := getJSONState(b, o)
	in := body
	if st.escaped = bytes.IndexByte(body, '\\') >= 0; st.escaped && bytes.Contains(body, quoteEscape) {
		st.rewritten = appendQuoteEscapesAsU(st.rewritten[:0], body)
		in = st.rewritten
	}
	iter := jsonAPI.BorrowIterator(in)
	iter.Attachment = st
	iter.ReadVal(&st.order)
	if st.err == nil {
		if iter.Error != nil && iter.Error != io.EOF {
			st.diverged = true
		} else {
			st.checkOrder()
		}
	}
	err, diverged := st.err, st.diverged
	iter.ResetBytes(nil) // ReturnIterator keeps buf: a pooled iterator must not pin the body
	jsonAPI.ReturnIterator(iter)
	putJSONState(st)
	if diverged {
		b.abortOrder(n0, i0)
		return b.decodeOrderScanner(body, receivedAt, idempotencyKey)
	}
	if err != nil {
		b.abortOrder(n0, i0)
		return nil, err
	}
	b.commitOrder(o, i0, receivedAt, idempotencyKey)
	return o, nil
}

var quoteEscape = []byte(`\"`)

// appendQuoteEscapesAsU appends body to dst with every \" escape spelled
// \u0022. body must be valid JSON, where a backslash only appears inside a
// string, starting an escape of at least two bytes.
func appendQuoteEscapesAsU(dst, body []byte) []byte {
	for {
		i := bytes.IndexByte(body, '\\')
		if i < 0 || i+1 >= len(body) {
			return append(dst, body...)
		}
		dst = append(dst, body[:i]...)
		if body[i+1] == '"' {
			dst = append(dst, `\u0022`...)
		} else {
			dst = append(dst, body[i], body[i+1])
		}
		body = body[i+2:]
	}
}

// checkOrder reports a missing required field once the order object ended.
func (st *jsonState) checkOrder() {
	switch {
	case st.seen&fID == 0:
		st.err = verr(CodeMissingField, "id", "required")
	case st.seen&fUserID == 0:
		st.err = verr(CodeMissingField, "user_id", "required")
	case st.seen&fItems == 0:
		st.err = verr(CodeMissingField, "items", "required")
	}
}

// orderField decodes the value of order field f; jsoniter has consumed the
// key and the ':'.
func (st *jsonState) orderField(iter *jsoniter.Iterator, f uint8, name string) {
	if st.seen&f != 0 {
		st.fail(iter, verr(CodeDuplicateKey, name, "duplicate key"))
		return
	}
	st.seen |= f
	var err *ValidationError
	switch f {
	case fItems:
		err = st.items(iter)
	case fCreatedAt:
		var v []byte
		if v, err = st.str(iter, name, false, false); err == nil && v != nil {
			err = setOrderField(st.o, f, name, v)
		}
	default:
		var v []byte
		if v, err = st.str(iter, name, f != fCurrency, true); err == nil && v != nil {
			err = setOrderField(st.o, f, name, v)
		}
	}
	if err != nil {
		st.fail(iter, withField(err, name))
	}
}

// str reads a string value: nil for null when the field is optional, a
// non-nil empty slice for "". keep copies it into the arena (escaped strings
// are always unescaped there); otherwise the result may be a view into the
// body, valid during the decode only.
func (st *jsonState) str(iter *jsoniter.Iterator, field string, required, keep bool) ([]byte, *ValidationError) {
	switch iter.WhatIsNext() {
	case jsoniter.StringValue:
	case jsoniter.NilValue:
		iter.ReadNil()
		if required {
			return nil, verr(CodeNullValue, field, "must not be null")
		}
		return nil, nil
	default:
		return nil, verr(CodeWrongType, field, "must be a string")
	}
	raw := iter.ReadStringAsSlice()
	switch {
	case st.escaped && bytes.IndexByte(raw, '\\') >= 0:
		dst := st.b.arena.Alloc(len(raw))
		return dst[:unescape(dst, raw)], nil
	case keep && len(raw) > 0:
		return st.b.arena.Copy(raw), nil
	}
	return raw, nil
}

// int reads an integer in [lo, hi]; ok is false for an optional null.
func (st *jsonState) int(iter *jsoniter.Iterator, required bool, lo, hi int64) (v int64, ok bool, err *ValidationError) {
	switch iter.WhatIsNext() {
	case jsoniter.NumberValue:
	case jsoniter.NilValue:
		iter.ReadNil()
		if required {
			return 0, false, verr(CodeNullValue, "", "must not be null")
		}
		return 0, false, nil
	default:
		return 0, false, verr(CodeWrongType, "", "must be an integer")
	}
	// The number's exact bytes, as jsoniter's Skip delimits them (layer 1
	// validated the syntax); a number longer than num spills to the heap.
	raw := iter.SkipAndAppendBytes(st.num[:0])
	v, err = intValue(raw, !bytes.ContainsAny(raw, ".eE"), "", lo, hi)
	return v, err == nil, err
}

// items decodes the items array; errors inside an item are recorded by the
// item's field decoders (st.err) and returned as they are.
func (st *jsonState) items(iter *jsoniter.Iterator) *ValidationError {
	switch iter.WhatIsNext() {
	case jsoniter.ArrayValue:
	case jsoniter.NilValue:
		iter.ReadNil()
		return verr(CodeNullValue, "items", "must not be null")
	default:
		return verr(CodeWrongType, "items", "must be an array of objects")
	}
	if !iter.ReadArray() {
		return verr(CodeInvalidValue, "items", "must hold at least 1 item")
	}
	for i := 0; ; i++ {
		if i == MaxItems {
			return verr(CodeTooManyItems, "items", "at most 100 items per order")
		}
		if err := st.item(iter, i); err != nil {
			return withField(err, itemPath(i, ""))
		}
		if !iter.ReadArray() {
			return nil
		}
	}
}

func (st *jsonState) item(iter *jsoniter.Iterator, i int) *ValidationError {
	switch iter.WhatIsNext() {
	case jsoniter.ObjectValue:
	case jsoniter.NilValue:
		iter.ReadNil()
		return verr(CodeNullValue, "", "must be an object, not null")
	default:
		return verr(CodeWrongType, "", "must be an object")
	}
	st.b.items = append(st.b.items, Item{})
	st.it, st.itemIdx, st.itemSeen = &st.b.items[len(st.b.items)-1], i, 0
	iter.ReadVal(&st.itemDTO)
	switch {
	case st.err != nil:
		return st.err
	case st.itemSeen&fSKU == 0:
		return verr(CodeMissingField, itemPath(i, "sku"), "required")
	case st.itemSeen&fQty == 0:
		return verr(CodeMissingField, itemPath(i, "qty"), "required")
	}
	return nil
}

// itemField decodes the value of item field f of items[st.itemIdx].
func (st *jsonState) itemField(iter *jsoniter.Iterator, f uint8, name string) {
	if st.itemSeen&f != 0 {
		st.fail(iter, verr(CodeDuplicateKey, itemPath(st.itemIdx, name), "duplicate key"))
		return
	}
	st.itemSeen |= f
	var err *ValidationError
	switch f {
	case fSKU:
		var v []byte
		if v, err = st.str(iter, "", true, true); err == nil {
			err = setSKU(st.it, v)
		}
	case fQty:
		st.it.Qty, _, err = st.int(iter, true, MinQty, MaxQty)
	case fPriceCents:
		st.it.ClientPriceCents, st.it.HasClientPrice, err = st.int(iter, false, 0, MaxPriceCents)
	}
	if err != nil {
		st.fail(iter, withField(err, itemPath(st.itemIdx, name)))
	}
}

// jsoniterSafe is layer 1 of DecodeOrderJsoniter: it reports whether body
// is strict JSON, an object, at most 32 levels deep, without trailing data,
// whose order and item objects have no key that is a case variant of a
// known field or a known field spelled with escapes. It reuses the scanner
// decoder's checks (str, skip, end) and depth accounting, so whatever it
// accepts the scanner decoder would not refuse as invalid JSON, invalid
// UTF-8, too deep or trailing data. It does not allocate.
func jsoniterSafe(body []byte) bool {
	s := scanner{buf: body}
	return s.peek() == '{' && s.schemaObject(orderFields[:], 1) && s.end() == nil
}

// schemaObject validates the object at pos, at nesting level depth, whose
// known fields are names; an "items" field's array is walked with its
// object elements checked as items.
func (s *scanner) schemaObject(names []string, depth int) bool {
	s.pos++ // '{'
	if s.peek() == '}' {
		s.pos++
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		raw, esc, err := s.str()
		if err != nil || s.expect(':') != nil {
			return false
		}
		key := raw
		var buf [keyBufLen]byte
		if esc {
			if n := unescape(buf[:], raw); n >= 0 {
				key = buf[:n]
			}
		}
		switch name := foldsTo(key, names); {
		case name == "":
			if s.skip(depth) != nil {
				return false
			}
		case esc || name != string(key):
			return false
		case name == "items" && s.peek() == '[':
			if !s.itemsArray(depth + 1) {
				return false
			}
		default:
			if s.skip(depth) != nil {
				return false
			}
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// itemsArray validates the items array at pos, at nesting level depth.
func (s *scanner) itemsArray(depth int) bool {
	s.pos++ // '['
	if s.peek() == ']' {
		s.pos++
		return true
	}
	for {
		if s.peek() == '{' {
			if !s.schemaObject(itemFields[:], depth+1) {
				return false
			}
		} else if s.skip(depth) != nil {
			return false
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return true
		default:
			return false
		}
	}
}
