package apitest

import (
	"strings"
	"testing"
)

// TestEventSchemas: both schemas compile and tell a real value from a broken one.
func TestEventSchemas(t *testing.T) {
	e := Events()
	created := `{"order":{"id":"ord_1","user_id":"u_42","status":"created","currency":"EUR","total_cents":487,"version":1,"created_at":"2026-11-25T10:00:00Z","updated_at":"2026-11-25T10:00:00.123456Z","items":[{"sku":"milk-1l","qty":2,"price_cents":119},{"sku":"bread-rye","qty":1,"price_cents":249}]}}`
	changed := `{"order_id":"ord_1","status":"paid","previous_status":"created","version":2,"at":"2026-11-25T10:00:01.5Z"}`
	ok := func(typ, v string) {
		t.Helper()
		if err := e.ValidateValue(typ, []byte(v)); err != nil {
			t.Errorf("ValidateValue(%s, %s): %v", typ, v, err)
		}
	}
	bad := func(typ, v string) {
		t.Helper()
		if err := e.ValidateValue(typ, []byte(v)); err == nil {
			t.Errorf("ValidateValue(%s, %s) accepted it", typ, v)
		}
	}
	ok("order.created", created)
	ok("order.status_changed", changed)
	bad("order.created", strings.Replace(created, `"qty":2`, `"qty":0`, 1))
	bad("order.created", strings.Replace(created, `"version":1`, `"version":2`, 1))
	bad("order.created", strings.Replace(created, `"2026-11-25T10:00:00Z"`, `"yesterday"`, 1))
	bad("order.created", strings.Replace(created, `"user_id":"u_42"`, `"user_id":"u\u0007"`, 1))
	bad("order.status_changed", strings.Replace(changed, `"paid"`, `"lost"`, 1))
	bad("order.status_changed", strings.Replace(changed, `,"at":"2026-11-25T10:00:01.5Z"`, ``, 1))
	bad("order.unknown", changed)

	hdr := func(id, typ string) []Header {
		return []Header{{"ce_specversion", []byte("1.0")}, {"ce_type", []byte(typ)}, {"ce_source", []byte("orderflow")},
			{"ce_id", []byte(id)}, {"ce_time", []byte("2026-11-25T10:00:01.500000Z")}, {"content-type", []byte("application/json")}}
	}
	if err := e.ValidateRecord([]byte("ord_1"), hdr("ord_1/2", "order.status_changed"), []byte(changed)); err != nil {
		t.Errorf("ValidateRecord: %v", err)
	}
	if err := e.ValidateRecord([]byte("ord_1"), hdr("ord_1/3", "order.status_changed"), []byte(changed)); err == nil {
		t.Errorf("ValidateRecord accepted ce_id ord_1/3 for version 2")
	}
	if err := e.ValidateRecord([]byte("ord_2"), hdr("ord_1/2", "order.status_changed"), []byte(changed)); err == nil {
		t.Errorf("ValidateRecord accepted key ord_2 for ce_id ord_1/2")
	}
	// Headers against api/asyncapi.yaml.
	badHeader := func(what string, change func([]Header) []Header) {
		t.Helper()
		if err := e.ValidateRecord([]byte("ord_1"), change(hdr("ord_1/2", "order.status_changed")), []byte(changed)); err == nil {
			t.Errorf("ValidateRecord accepted headers with %s", what)
		}
	}
	badHeader("no ce_source", func(h []Header) []Header { return append(h[:2], h[3:]...) })
	badHeader("ce_specversion 0.3", func(h []Header) []Header { h[0].Value = []byte("0.3"); return h })
	badHeader("ce_time without microseconds", func(h []Header) []Header { h[4].Value = []byte("2026-11-25T10:00:01Z"); return h })
	badHeader("content-type text/plain", func(h []Header) []Header { h[5].Value = []byte("text/plain"); return h })
	badHeader("ce_type of the other message", func(h []Header) []Header { h[1].Value = []byte("order.created"); return h })
	badHeader("ce_source twice", func(h []Header) []Header { return append(h, h[2]) })

	// The W3C trace context headers: optional, well-formed when present.
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	withTrace := func(kv ...string) []Header {
		h := hdr("ord_1/2", "order.status_changed")
		for i := 0; i+1 < len(kv); i += 2 {
			h = append(h, Header{kv[i], []byte(kv[i+1])})
		}
		return h
	}
	for _, h := range [][]Header{
		withTrace("traceparent", tp),
		withTrace("traceparent", tp, "tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
		withTrace("traceparent", tp, "tracestate", "a@b= x y"),
	} {
		if err := e.ValidateRecord([]byte("ord_1"), h, []byte(changed)); err != nil {
			t.Errorf("ValidateRecord with %v: %v", h[6:], err)
		}
	}
	badTrace := func(what string, kv ...string) {
		t.Helper()
		if err := e.ValidateRecord([]byte("ord_1"), withTrace(kv...), []byte(changed)); err == nil {
			t.Errorf("ValidateRecord accepted %s", what)
		}
	}
	badTrace("an upper-case traceparent", "traceparent", strings.ToUpper(tp))
	badTrace("a version-01 traceparent", "traceparent", "01"+tp[2:])
	badTrace("a traceparent with an all-zero trace id", "traceparent", "00-"+strings.Repeat("0", 32)+tp[35:])
	badTrace("a traceparent with an all-zero parent id", "traceparent", tp[:36]+strings.Repeat("0", 16)+tp[52:])
	badTrace("a tracestate without traceparent", "tracestate", "a=1")
	badTrace("an empty tracestate", "traceparent", tp, "tracestate", "")
	badTrace("a tracestate over 512 characters", "traceparent", tp, "tracestate", "a="+strings.Repeat("v", 511))
}
