package engine_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/tracing"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// With OpenTelemetry on (the SDK's in-memory exporter in place of OTLP):
// every request gets a server span, a child of its traceparent; the events
// its change produces carry that span's context (same trace id, the span's
// own id as parent id) and the incoming tracestate, so a consumer continues
// the request's trace; each group commit's span links to the request spans
// it carried; each published record has a producer span, a child of its
// request span.
func TestTracingOnSpansAndEvents(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	env := newEnv(t, func(c *engine.Config) {
		c.Tracing = tracing.Config{Enabled: true, Exporter: exp, Sync: true}
	})
	in, _ := order.ParseTraceParent([]byte(traceIn))
	if r := env.post(orderJSON("ord_ot1"), "traceparent", traceIn, "tracestate", stateIn); r.code != http.StatusCreated {
		t.Fatalf("POST: %s", r)
	}
	if r := env.post(orderJSON("ord_ot2")); r.code != http.StatusCreated {
		t.Fatalf("POST without traceparent: %s", r)
	}
	if r := do(t, http.MethodPost, env.URL+"/v1/orders/ord_ot1/status", "application/json", []byte(`{"status":"paid"}`), "traceparent", traceIn3); r.code != http.StatusOK {
		t.Fatalf("status: %s", r)
	}
	// traceIn2 is not sampled: its request span records nothing (the SDK's
	// default sampler follows the parent), yet the event still carries the
	// span's context, so the consumer's spans stay in that trace.
	if r := env.post(orderJSON("ord_ot5"), "traceparent", traceIn2); r.code != http.StatusCreated {
		t.Fatalf("POST with an unsampled traceparent: %s", r)
	}
	bulk := orderJSON("ord_ot3") + "\n" + orderJSON("ord_ot4") + "\n"
	if r := do(t, http.MethodPost, env.URL+"/v1/order-batches", "application/x-ndjson", []byte(bulk), "traceparent", traceIn); r.code != http.StatusOK {
		t.Fatalf("order batch: %s", r)
	}
	recs := env.Consume(t, "ord_ot", 6, 10*time.Second)
	if len(recs) != 6 {
		t.Fatalf("%d events on the topic; want 6", len(recs))
	}
	// Publish spans end in the records' promises: wait for all five.
	waitFor(t, 5*time.Second, "five publish spans", func() bool {
		n := 0
		for _, s := range exp.GetSpans() {
			if s.Name == "send orders" {
				n++
			}
		}
		return n >= 5
	})
	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	linked := map[string]map[trace.SpanID]bool{"orders commit": {}, "status commit": {}}
	for _, s := range spans {
		if m, ok := linked[s.Name]; ok {
			if s.Parent.IsValid() {
				t.Errorf("%s span has a parent %v; want a root with links", s.Name, s.Parent)
			}
			for _, l := range s.Links {
				m[l.SpanContext.SpanID()] = true
			}
		}
	}

	wantRoute := map[string]string{"ord_ot1/1": "POST /v1/orders", "ord_ot2/1": "POST /v1/orders", "ord_ot1/2": "POST /v1/orders/{id}/status",
		"ord_ot3/1": "POST /v1/order-batches", "ord_ot4/1": "POST /v1/order-batches"}
	bulkSpan := trace.SpanID{}
	for _, r := range recs {
		id := enginetest.Header(r, "ce_id")
		tp, ok := order.ParseTraceParent([]byte(enginetest.Header(r, "traceparent")))
		if !ok {
			t.Fatalf("event %s: traceparent %q", id, enginetest.Header(r, "traceparent"))
		}
		sc := tracing.SpanContext(tp)
		if id == "ord_ot5/1" {
			if string(tp.TraceID()) != traceIn2[3:35] || string(tp.ParentID()) == traceIn2[36:52] || tp.Sampled() {
				t.Errorf("event %s: traceparent %s; want trace %s, a new span id, not sampled", id, tp.String(), traceIn2[3:35])
			}
			for _, s := range spans {
				if s.SpanContext.TraceID() == sc.TraceID() || s.Parent.TraceID() == sc.TraceID() {
					t.Errorf("span %q recorded in the unsampled trace %s", s.Name, sc.TraceID())
				}
			}
			continue
		}
		req, ok := byID[sc.SpanID()]
		if !ok || req.Name != wantRoute[id] || req.SpanContext.TraceID() != sc.TraceID() || req.SpanKind != trace.SpanKindServer {
			t.Errorf("event %s: traceparent %s names no %q request span (found %q)", id, tp.String(), wantRoute[id], req.Name)
			continue
		}
		switch id {
		case "ord_ot1/1", "ord_ot3/1", "ord_ot4/1":
			if !req.Parent.Equal(tracing.SpanContext(in)) || string(tp.TraceID()) != string(in.TraceID()) || string(tp.ParentID()) == string(in.ParentID()) {
				t.Errorf("event %s: traceparent %s, request span parent %v; want the incoming trace %s continued by the request span", id, tp.String(), req.Parent, traceIn)
			}
		case "ord_ot1/2":
			if string(tp.TraceID()) != traceIn3[3:35] {
				t.Errorf("event %s: trace %s; want the status request's %s", id, tp.TraceID(), traceIn3[3:35])
			}
		case "ord_ot2/1":
			if req.Parent.IsValid() {
				t.Errorf("event %s: request without traceparent has a parent span %v", id, req.Parent)
			}
		}
		wantState := map[string]string{"ord_ot1/1": stateIn}[id]
		if got := enginetest.Header(r, "tracestate"); got != wantState {
			t.Errorf("event %s: tracestate %q; want %q", id, got, wantState)
		}
		commit := "orders commit"
		if strings.HasSuffix(id, "/2") {
			commit = "status commit"
		}
		if !linked[commit][sc.SpanID()] {
			t.Errorf("event %s: no %s span links to its request span %s", id, commit, sc.SpanID())
		}
		pubs := 0
		for _, s := range spans {
			if s.Name == "send orders" && s.Parent.SpanID() == sc.SpanID() && s.SpanKind == trace.SpanKindProducer && hasAttr(s, "cloudevents.event_id", id) {
				pubs++
			}
		}
		if pubs != 1 {
			t.Errorf("event %s: %d publish spans children of its request span; want 1", id, pubs)
		}
		if strings.HasPrefix(id, "ord_ot3") || strings.HasPrefix(id, "ord_ot4") {
			if bulkSpan != (trace.SpanID{}) && bulkSpan != sc.SpanID() {
				t.Errorf("the bulk request's events carry different spans: %s, %s", bulkSpan, sc.SpanID())
			}
			bulkSpan = sc.SpanID()
		}
	}
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key && a.Value.String() == value {
			return true
		}
	}
	return false
}

// traceIn3 is sampled, like traceIn.
const traceIn3 = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-01"
