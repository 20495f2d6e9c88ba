package order

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
)

// Limits of the API (api/openapi.yaml).
const (
	// MaxIDLen is the longest id or items[].sku, in bytes of A-Z a-z 0-9 _ - . :
	MaxIDLen = 64
	// MaxUserIDLen is the longest user_id, in characters (runes).
	MaxUserIDLen = 64
	// MaxItems is the largest number of items in one order.
	MaxItems = 100
	// MinQty and MaxQty bound items[].qty.
	MinQty, MaxQty = 1, 1000
	// MaxPriceCents bounds a client's items[].price_cents (10^12 minor units).
	MaxPriceCents = 1_000_000_000_000
	// DefaultCurrency is the currency of an order that names none.
	DefaultCurrency = "EUR"
)

// Known fields, as bits of the "seen" mask that refuses duplicate keys.
const (
	fID uint8 = 1 << iota
	fUserID
	fCurrency
	fCreatedAt
	fItems
)

const (
	fSKU uint8 = 1 << iota
	fQty
	fPriceCents
)

var orderFields = [...]string{"id", "user_id", "currency", "created_at", "items"}
var itemFields = [...]string{"sku", "qty", "price_cents"}

// idChars marks the bytes allowed in id and items[].sku.
var idChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['-'], t['.'], t[':'] = true, true, true, true
	return t
}()

// keyBufLen bounds the unescaped length of a key that could still be (a
// case-variant of) a known field: the longest is 11 runes of at most 4 bytes.
const keyBufLen = 48

// decoder decodes one order into a batch. It lives on the caller's stack.
type decoder struct {
	s      scanner
	b      *Batch
	keyBuf [keyBufLen]byte
}

// DecodeOrder decodes one order from body, a JSON object as api/openapi.yaml
// describes it, appends it to b.Orders and returns a pointer to it. The
// order's items go to the batch's item storage (Order.Items is a capped
// sub-slice of it) and every string, the idempotency key included, is copied
// into the batch arena, so body may be reused as soon as DecodeOrder returns.
// The strings stay valid until the batch is reset (PutBatch).
//
// receivedAt is truncated to microseconds and converted to UTC; CreatedAt is
// the client's created_at (truncated likewise, HasCreatedAt=true) or
// ReceivedAt. Currency defaults to "EUR". idempotencyKey must already be
// validated by the caller; nil means none.
//
// The returned pointer is valid until the next DecodeOrder on b, which may
// move b.Orders: refer to the order later by its index (b.Len()-1).
//
// On error DecodeOrder returns a *ValidationError (HTTP 400) and leaves
// b.Orders and the items as they were (arena bytes may stay). Decoding is
// strict: duplicate keys, null for a required field, a wrong type, a number
// that does not fit, invalid UTF-8 (in any string, keys of unknown fields
// included), lone surrogate escapes, nesting deeper than 32 levels and
// trailing data are all refused. Unknown fields are ignored but must be
// well-formed JSON; a duplicated unknown key is accepted (encoding/json also
// ignores it); a key that differs from a known field only in case
// (bytes.EqualFold, as encoding/json matches) is refused as invalid_value, so
// that we never decode differently from encoding/json.
//
// A typical order without escapes decodes with 0 allocations once the batch
// has grown (see alloc_test.go, BenchmarkDecode); strings with escapes are
// unescaped into the arena, also without allocating. Not safe for
// concurrent use on one Batch.
//
// DecodeOrder runs on the hand-written scanner (decodeOrderScanner, scan.go).
// DecodeOrderJsoniter (decode_jsoniter.go) implements the same contract on
// jsoniter's Iterator: it gives the same results in every DecodeOrder test
// and in FuzzDecodeImpls and allocates nothing on a typical body, but
// jsoniter checks neither UTF-8, depth, case-variant keys nor trailing
// data, so it runs the scanner's validate-only walk first and costs that
// walk plus jsoniter's own (2-4x the scanner's time; RESULTS.md,
// "Decoder"). The ingest server uses DecodeOrder unless configured
// otherwise (-ingest.decoder).
func (b *Batch) DecodeOrder(body []byte, receivedAt time.Time, idempotencyKey []byte) (*Order, error) {
	return b.decodeOrderScanner(body, receivedAt, idempotencyKey)
}

// decodeOrderScanner is DecodeOrder on the hand-written scanner (scan.go).
func (b *Batch) decodeOrderScanner(body []byte, receivedAt time.Time, idempotencyKey []byte) (*Order, error) {
	o, n0, i0 := b.beginOrder()
	d := decoder{s: scanner{buf: body}, b: b}
	if err := d.order(o); err != nil {
		b.abortOrder(n0, i0)
		return nil, err
	}
	b.commitOrder(o, i0, receivedAt, idempotencyKey)
	return o, nil
}

// beginOrder appends an empty order to b for a decoder to fill; n0 and i0
// are the order and item counts to roll back to (abortOrder).
func (b *Batch) beginOrder() (o *Order, n0, i0 int) {
	n0, i0 = len(b.Orders), len(b.items)
	b.Orders = append(b.Orders, Order{})
	return &b.Orders[n0], n0, i0
}

// abortOrder drops the order and items a failed decode appended.
func (b *Batch) abortOrder(n0, i0 int) {
	clear(b.Orders[n0:])
	b.Orders = b.Orders[:n0]
	clear(b.items[i0:])
	b.items = b.items[:i0]
}

// commitOrder completes a decoded order: its items (from i0 on), times,
// default currency and idempotency key.
func (b *Batch) commitOrder(o *Order, i0 int, receivedAt time.Time, idempotencyKey []byte) {
	j := len(b.items)
	o.Items = b.items[i0:j:j]
	o.ReceivedAt = receivedAt.Truncate(time.Microsecond).UTC()
	if !o.HasCreatedAt {
		o.CreatedAt = o.ReceivedAt
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	if len(idempotencyKey) > 0 {
		o.IdempotencyKey = b.arena.CopyString(idempotencyKey)
	}
}

// key reads the object key at pos (the opening quote) and the ':' after it.
// An escaped key is unescaped into d.keyBuf; one too long for it cannot be a
// known field and is returned raw.
func (d *decoder) key() ([]byte, *ValidationError) {
	raw, esc, err := d.s.str()
	if err != nil {
		return nil, err
	}
	if esc {
		if n := unescape(d.keyBuf[:], raw); n >= 0 {
			raw = d.keyBuf[:n]
		}
	}
	if err := d.s.expect(':'); err != nil {
		return nil, err
	}
	return raw, nil
}

// foldsTo reports whether key matches one of names case-insensitively (the
// way encoding/json matches field names).
func foldsTo(key []byte, names []string) string {
	if len(key) > keyBufLen {
		return ""
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return n
		}
	}
	return ""
}

// objectStart consumes '{' of an object that is the value of field; null
// and other types are refused.
func (d *decoder) objectStart(field string) *ValidationError {
	switch d.s.peek() {
	case '{':
		d.s.pos++
		return nil
	case 0:
		return errEOF
	case 'n':
		if err := d.s.literal("null"); err != nil {
			return err
		}
		return verr(CodeNullValue, field, "must be an object, not null")
	}
	return d.wrongType(field, "must be an object")
}

// notAnObject reports a body that is a JSON value other than an object, or
// whatever makes it not JSON.
func (d *decoder) notAnObject() *ValidationError {
	if err := d.s.skip(0); err != nil {
		return err
	}
	if err := d.s.end(); err != nil {
		return err
	}
	return verr(CodeNotAnObject, "", "the body must be a JSON object")
}

// wrongType reports a value of the wrong type, unless the value is not even
// valid JSON (then that is what the client hears).
func (d *decoder) wrongType(field, msg string) *ValidationError {
	if !isValueStart(d.s.buf[d.s.pos]) {
		return errSyntax
	}
	return verr(CodeWrongType, field, msg)
}

// next consumes the ',' or closing byte after a member; it reports whether
// the container ended.
func (d *decoder) next(closing byte) (bool, *ValidationError) {
	switch d.s.peek() {
	case ',':
		d.s.pos++
		if c := d.s.peek(); c != '"' && closing == '}' {
			if c == 0 {
				return false, errEOF
			}
			return false, errSyntax
		}
		return false, nil
	case closing:
		d.s.pos++
		return true, nil
	case 0:
		return false, errEOF
	}
	return false, errSyntax
}

func (d *decoder) order(o *Order) *ValidationError {
	s := &d.s
	switch c := s.peek(); {
	case c == '{':
		s.pos++
	case c == 0 && s.pos >= len(s.buf):
		return verr(CodeInvalidJSON, "", "empty body")
	case isValueStart(c):
		return d.notAnObject()
	default:
		return errSyntax
	}
	var seen uint8
	if s.peek() == '}' {
		s.pos++
	} else {
		if c := s.peek(); c != '"' {
			if c == 0 {
				return errEOF
			}
			return errSyntax
		}
		for {
			key, err := d.key()
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(key) {
			case "id":
				f, name = fID, "id"
			case "user_id":
				f, name = fUserID, "user_id"
			case "currency":
				f, name = fCurrency, "currency"
			case "created_at":
				f, name = fCreatedAt, "created_at"
			case "items":
				f, name = fItems, "items"
			default:
				if n := foldsTo(key, orderFields[:]); n != "" {
					return verr(CodeInvalidValue, n, errKeyCase)
				}
				if err := s.skip(1); err != nil {
					return err
				}
			}
			if f != 0 {
				if seen&f != 0 {
					return verr(CodeDuplicateKey, name, "duplicate key")
				}
				seen |= f
				if err := d.orderField(o, f, name); err != nil {
					return withField(err, name)
				}
			}
			end, err := d.next('}')
			if err != nil {
				return err
			}
			if end {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	switch {
	case seen&fID == 0:
		return verr(CodeMissingField, "id", "required")
	case seen&fUserID == 0:
		return verr(CodeMissingField, "user_id", "required")
	case seen&fItems == 0:
		return verr(CodeMissingField, "items", "required")
	}
	return nil
}

func (d *decoder) orderField(o *Order, f uint8, name string) *ValidationError {
	switch f {
	case fItems:
		return d.items()
	case fCreatedAt:
		v, _, err := d.rawStr(name, false)
		if err != nil || v == nil {
			return err
		}
		return setOrderField(o, f, name, v)
	}
	v, err := d.str(name, f != fCurrency)
	if err != nil || v == nil {
		return err
	}
	return setOrderField(o, f, name, v)
}

// setOrderField checks v, the unescaped string value of field f (not
// items), and stores it in o. v must be arena memory, except for created_at,
// which is parsed and not kept. Shared by both decoders.
func setOrderField(o *Order, f uint8, name string, v []byte) *ValidationError {
	switch f {
	case fID:
		if !validID(v) {
			return verr(CodeInvalidValue, name, "must be 1-64 characters of A-Z a-z 0-9 _ - . :")
		}
		o.ID = bytesutil.String(v)
	case fUserID:
		if !validUserID(v) {
			return verr(CodeInvalidValue, name, "must be 1-64 characters without control characters")
		}
		o.UserID = bytesutil.String(v)
	case fCurrency:
		if len(v) != 3 || !isUpper(v[0]) || !isUpper(v[1]) || !isUpper(v[2]) {
			return verr(CodeInvalidValue, name, "must be 3 upper-case letters")
		}
		o.Currency = bytesutil.String(v)
	case fCreatedAt:
		t, ok := parseRFC3339(v)
		if !ok {
			return verr(CodeInvalidValue, name, "must be an RFC 3339 time such as 2026-11-25T10:00:00Z, in years 0001-9999 UTC")
		}
		o.CreatedAt, o.HasCreatedAt = t.Truncate(time.Microsecond), true
	}
	return nil
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func validID(v []byte) bool {
	if len(v) == 0 || len(v) > MaxIDLen {
		return false
	}
	for _, c := range v {
		if !idChars[c] {
			return false
		}
	}
	return true
}

// validUserID checks 1-64 runes and no control characters (C0, DEL, C1).
// v is valid UTF-8 already.
func validUserID(v []byte) bool {
	n := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
		} else {
			r, size := utf8.DecodeRune(v[i:])
			if r < 0xA0 { // C1 controls 0x80-0x9F
				return false
			}
			i += size
		}
		n++
	}
	return n >= 1 && n <= MaxUserIDLen
}

// rawStr reads a string value, unescaped. Without escapes the result is a
// view into the body; with escapes it was unescaped into the arena
// (inArena). null yields (nil, false, nil) when the field is optional; ""
// yields a non-nil empty slice.
func (d *decoder) rawStr(field string, required bool) (v []byte, inArena bool, err *ValidationError) {
	s := &d.s
	switch s.peek() {
	case '"':
	case 0:
		return nil, false, errEOF
	case 'n':
		if err := s.literal("null"); err != nil {
			return nil, false, err
		}
		if required {
			return nil, false, verr(CodeNullValue, field, "must not be null")
		}
		return nil, false, nil
	default:
		return nil, false, d.wrongType(field, "must be a string")
	}
	raw, esc, err := s.str()
	if err != nil {
		return nil, false, err
	}
	if esc {
		dst := d.b.arena.Alloc(len(raw))
		return dst[:unescape(dst, raw)], true, nil
	}
	return raw, false, nil
}

// str is rawStr with the result copied into the arena.
func (d *decoder) str(field string, required bool) ([]byte, *ValidationError) {
	v, inArena, err := d.rawStr(field, required)
	if err != nil || v == nil || inArena || len(v) == 0 {
		return v, err
	}
	return d.b.arena.Copy(v), nil
}

func (d *decoder) items() *ValidationError {
	s := &d.s
	switch s.peek() {
	case '[':
		s.pos++
	case 0:
		return errEOF
	case 'n':
		if err := s.literal("null"); err != nil {
			return err
		}
		return verr(CodeNullValue, "items", "must not be null")
	default:
		return d.wrongType("items", "must be an array of objects")
	}
	if s.peek() == ']' {
		s.pos++
		return verr(CodeInvalidValue, "items", "must hold at least 1 item")
	}
	for i := 0; ; i++ {
		if i == MaxItems {
			return verr(CodeTooManyItems, "items", "at most 100 items per order")
		}
		if err := d.item(i); err != nil {
			return withField(err, itemPath(i, ""))
		}
		end, err := d.next(']')
		if err != nil {
			return err
		}
		if end {
			return nil
		}
	}
}

func (d *decoder) item(i int) *ValidationError {
	s := &d.s
	if err := d.objectStart(""); err != nil {
		return withField(err, itemPath(i, ""))
	}
	d.b.items = append(d.b.items, Item{})
	it := &d.b.items[len(d.b.items)-1]
	var seen uint8
	if s.peek() == '}' {
		s.pos++
	} else {
		if c := s.peek(); c != '"' {
			if c == 0 {
				return errEOF
			}
			return errSyntax
		}
		for {
			key, err := d.key()
			if err != nil {
				return err
			}
			var f uint8
			var name string
			switch string(key) {
			case "sku":
				f, name = fSKU, "sku"
			case "qty":
				f, name = fQty, "qty"
			case "price_cents":
				f, name = fPriceCents, "price_cents"
			default:
				if n := foldsTo(key, itemFields[:]); n != "" {
					return verr(CodeInvalidValue, itemPath(i, n), errKeyCase)
				}
				if err := s.skip(3); err != nil {
					return err
				}
			}
			if f != 0 {
				if seen&f != 0 {
					return verr(CodeDuplicateKey, itemPath(i, name), "duplicate key")
				}
				seen |= f
				if err := d.itemField(it, f); err != nil {
					return withField(err, itemPath(i, name))
				}
			}
			end, err := d.next('}')
			if err != nil {
				return err
			}
			if end {
				break
			}
		}
	}
	switch {
	case seen&fSKU == 0:
		return verr(CodeMissingField, itemPath(i, "sku"), "required")
	case seen&fQty == 0:
		return verr(CodeMissingField, itemPath(i, "qty"), "required")
	}
	return nil
}

func (d *decoder) itemField(it *Item, f uint8) *ValidationError {
	switch f {
	case fSKU:
		v, err := d.str("", true)
		if err != nil {
			return err
		}
		return setSKU(it, v)
	case fQty:
		v, _, err := d.int("", true, MinQty, MaxQty)
		if err != nil {
			return err
		}
		it.Qty = v
	case fPriceCents:
		v, ok, err := d.int("", false, 0, MaxPriceCents)
		if err != nil {
			return err
		}
		it.ClientPriceCents, it.HasClientPrice = v, ok
	}
	return nil
}

// setSKU checks v, an unescaped items[].sku in the arena, and stores it.
func setSKU(it *Item, v []byte) *ValidationError {
	if !validID(v) {
		return verr(CodeInvalidValue, "", "must be 1-64 characters of A-Z a-z 0-9 _ - . :")
	}
	it.SKU = bytesutil.String(v)
	return nil
}

// int reads an integer in [lo, hi]. null yields ok=false for optional
// fields. Floats and exponents (2.0, 1e3) are wrong types, as in
// encoding/json decoding into an int64.
func (d *decoder) int(field string, required bool, lo, hi int64) (v int64, ok bool, err *ValidationError) {
	s := &d.s
	switch c := s.peek(); {
	case c == '-' || ('0' <= c && c <= '9'):
	case c == 0:
		return 0, false, errEOF
	case c == 'n':
		if err := s.literal("null"); err != nil {
			return 0, false, err
		}
		if required {
			return 0, false, verr(CodeNullValue, field, "must not be null")
		}
		return 0, false, nil
	default:
		return 0, false, d.wrongType(field, "must be an integer")
	}
	raw, isInt, err := s.number()
	if err != nil {
		return 0, false, err
	}
	v, err = intValue(raw, isInt, field, lo, hi)
	return v, err == nil, err
}

// intValue converts raw, a JSON number, to an integer in [lo, hi] exactly:
// fractions and exponents are wrong_type, anything outside the range
// (however many digits) number_out_of_range. Shared by both decoders.
func intValue(raw []byte, isInt bool, field string, lo, hi int64) (v int64, err *ValidationError) {
	if !isInt {
		return 0, verr(CodeWrongType, field, "must be an integer")
	}
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	if len(raw) > 18 {
		return 0, verr(CodeNumberOutOfRange, field, "out of range")
	}
	for _, c := range raw {
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if v < lo || v > hi {
		return 0, verr(CodeNumberOutOfRange, field, "out of range")
	}
	return v, nil
}
