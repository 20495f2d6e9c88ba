package order

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the order as the body of GET /v1/orders/{id} to dst and
// returns the extended slice:
//
//	{"id","user_id","status","currency","total_cents","version","created_at","updated_at","items":[{"sku","qty","price_cents"}]}
//
// Times are RFC 3339 in UTC with fractional seconds (time.RFC3339Nano);
// strings are escaped by AppendString. It reads o only and does not allocate
// when dst has room.
func (o *Order) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, o.ID)
	dst = append(dst, `,"user_id":`...)
	dst = AppendString(dst, o.UserID)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, o.Status.String())
	dst = append(dst, `,"currency":`...)
	dst = AppendString(dst, o.Currency)
	dst = append(dst, `,"total_cents":`...)
	dst = strconv.AppendInt(dst, o.TotalCents, 10)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(o.Version), 10)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, o.CreatedAt)
	dst = append(dst, `,"updated_at":`...)
	dst = appendTime(dst, o.UpdatedAt)
	dst = append(dst, `,"items":[`...)
	for i := range o.Items {
		it := &o.Items[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sku":`...)
		dst = AppendString(dst, it.SKU)
		dst = append(dst, `,"qty":`...)
		dst = strconv.AppendInt(dst, it.Qty, 10)
		dst = append(dst, `,"price_cents":`...)
		dst = strconv.AppendInt(dst, it.PriceCents, 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// AppendCreatedResponse appends the body of a 201 (created) or 200 (already
// committed) answer to POST /v1/orders:
// {"id":"…","status":"created","total_cents":N,"currency":"EUR"}.
// It does not allocate when dst has room.
func AppendCreatedResponse(dst []byte, id string, status Status, totalCents int64, currency string) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, status.String())
	dst = append(dst, `,"total_cents":`...)
	dst = strconv.AppendInt(dst, totalCents, 10)
	dst = append(dst, `,"currency":`...)
	dst = AppendString(dst, currency)
	return append(dst, '}')
}

// AppendStatusChangedEvent appends the value of an order.status_changed
// event: {"order_id","status","previous_status","version","at"}, at in UTC
// RFC 3339 with fractional seconds. It does not allocate when dst has room.
func AppendStatusChangedEvent(dst []byte, id string, status, previous Status, version int32, at time.Time) []byte {
	dst = append(dst, `{"order_id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, status.String())
	dst = append(dst, `,"previous_status":`...)
	dst = AppendString(dst, previous.String())
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(version), 10)
	dst = append(dst, `,"at":`...)
	dst = appendTime(dst, at)
	return append(dst, '}')
}

// AppendStatusResponse appends the body of a 200 answer to
// POST /v1/orders/{id}/status: {"id","status","version"}. It does not
// allocate when dst has room.
func AppendStatusResponse(dst []byte, id string, status Status, version int32) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"status":`...)
	dst = AppendString(dst, status.String())
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(version), 10)
	return append(dst, '}')
}

// AppendError appends the contract's error body
// {"error":{"code":…,"message":…,"field":…}}; field is omitted when empty.
// It does not allocate when dst has room.
func AppendError(dst []byte, code, message, field string) []byte {
	dst = append(dst, `{"error":`...)
	dst = AppendErrorObject(dst, code, message, field)
	return append(dst, '}')
}

// AppendErrorObject appends the inner object of an error body,
// {"code":...,"message":...[,"field":...]}, as a bulk result item carries it.
func AppendErrorObject(dst []byte, code, message, field string) []byte {
	dst = append(dst, `{"code":`...)
	dst = AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	if field != "" {
		dst = append(dst, `,"field":`...)
		dst = AppendString(dst, field)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a quoted JSON string. It escapes '"', '\\' and
// control characters (\n, \r, \t short, the rest as \u00XX), and U+2028 and
// U+2029 (so the output is also safe inside JavaScript); valid UTF-8 is kept
// as is, invalid bytes become \ufffd (as encoding/json does). It does not
// allocate when dst has room.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
