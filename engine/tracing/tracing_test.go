package tracing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/engine/order"
)

func TestFromEnv(t *testing.T) {
	f := func(env map[string]string, wantOn bool, wantErr string) {
		t.Helper()
		cfg, err := FromEnv(func(k string) string { return env[k] })
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("FromEnv(%v): err %v; want one naming %q", env, err, wantErr)
			}
			return
		}
		if err != nil || cfg.Enabled != wantOn {
			t.Errorf("FromEnv(%v) = enabled %v, %v; want %v", env, cfg.Enabled, err, wantOn)
		}
	}
	f(nil, false, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": " OTLP "}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, "")
	f(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true, "")
	f(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true, "")
	f(map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, "")
	f(map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}, false, "")
	f(map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "console"}, false, "OTEL_TRACES_EXPORTER")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, false, "OTEL_TRACES_EXPORTER")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, "")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	f(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "")
	f(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "") // off: not read
}

func TestTraceParentConversions(t *testing.T) {
	f := func(in string, sampled bool, out string) {
		t.Helper()
		p, ok := order.ParseTraceParent([]byte(in))
		if !ok {
			t.Fatalf("ParseTraceParent(%q) refused", in)
		}
		sc := SpanContext(p)
		if !sc.IsValid() || !sc.IsRemote() || sc.IsSampled() != sampled || sc.TraceID().String() != string(p.TraceID()) || sc.SpanID().String() != string(p.ParentID()) {
			t.Errorf("SpanContext(%s) = %v", in, sc)
		}
		if got := TraceParent(sc); got.String() != out {
			t.Errorf("TraceParent(SpanContext(%s)) = %q; want %q", in, got.String(), out)
		}
	}
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", false, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	f("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", true, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if sc := SpanContext(order.TraceParent{}); sc.IsValid() {
		t.Errorf("SpanContext of none is valid")
	}
	if p := TraceParent(trace.SpanContext{}); p.Valid() {
		t.Errorf("TraceParent of an invalid span context: %q", p.String())
	}
}

func newTestTracer(t *testing.T) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Config{Enabled: true, Exporter: exp, Sync: true}, "orders", nil)
	if err != nil || tr == nil {
		t.Fatalf("New: %v, %v", tr, err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(spans))
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// A request span is a child of the incoming traceparent (or a new trace's
// root), its context is what StartRequest returns, and it ends with the
// status; a commit span links to the request spans it carried, once each;
// a publish span is a child of the event's request span.
func TestSpans(t *testing.T) {
	tr, exp := newTestTracer(t)
	in, _ := order.ParseTraceParent([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	p1, end1 := tr.StartRequest("POST /v1/orders", in, time.Now())
	end1(201)
	p2, end2 := tr.StartRequest("POST /v1/order-batches", order.TraceParent{}, time.Now())
	end2(503)
	req := spanNamed(t, exp.GetSpans(), "POST /v1/orders")
	if !req.Parent.Equal(SpanContext(in)) || req.SpanKind != trace.SpanKindServer || TraceParent(req.SpanContext) != p1 {
		t.Errorf("request span: parent %v kind %v context %v; want parent %v, server, %s", req.Parent, req.SpanKind, req.SpanContext, SpanContext(in), p1.String())
	}
	if string(p1.TraceID()) != string(in.TraceID()) || string(p1.ParentID()) == string(in.ParentID()) {
		t.Errorf("request span context %s: want the incoming trace %s with a span id of its own", p1.String(), in.String())
	}
	if attr(req, "http.response.status_code") != "201" || attr(req, "http.route") != "/v1/orders" || attr(req, "http.request.method") != "POST" || req.Status.Code.String() == "Error" {
		t.Errorf("request span attributes %v, status %v", req.Attributes, req.Status)
	}
	bulk := spanNamed(t, exp.GetSpans(), "POST /v1/order-batches")
	if bulk.Parent.IsValid() || string(p2.TraceID()) == string(in.TraceID()) || bulk.Status.Code.String() != "Error" {
		t.Errorf("request span without traceparent: parent %v, trace %s, status %v; want a new trace's root, an error for 503", bulk.Parent, p2.TraceID(), bulk.Status)
	}

	parents := []order.TraceParent{p1, p1, p2, p2, p2, p1, {}}
	end := tr.StartCommit("orders commit", time.Now(), len(parents), slices.Values(parents))
	end(5, 1)
	commit := spanNamed(t, exp.GetSpans(), "orders commit")
	var links []string
	for _, l := range commit.Links {
		links = append(links, TraceParent(l.SpanContext).String())
	}
	if want := []string{p1.String(), p2.String(), p1.String()}; fmt.Sprint(links) != fmt.Sprint(want) {
		t.Errorf("commit span links %v; want %v (consecutive repeats dropped)", links, want)
	}
	if commit.Parent.IsValid() || attr(commit, "orderflow.batch.rows") != "7" || attr(commit, "orderflow.batch.committed") != "5" || commit.Status.Code.String() != "Error" {
		t.Errorf("commit span: parent %v, attributes %v, status %v", commit.Parent, commit.Attributes, commit.Status)
	}

	ev := order.Event{OrderID: "ord_1", Version: 2, Type: order.EventStatusChanged, TraceParent: p1}
	tr.StartPublish(&ev, "sweep")(3, 42, nil)
	tr.StartPublish(&order.Event{OrderID: "ord_2", Version: 1, Type: order.EventCreated}, "fast")(0, 0, errors.New("refused"))
	var pub, pub2 tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "send orders" && attr(s, "messaging.kafka.message.key") == "ord_1" {
			pub = s
		}
		if s.Name == "send orders" && attr(s, "messaging.kafka.message.key") == "ord_2" {
			pub2 = s
		}
	}
	if pub.Parent.SpanID().String() != string(p1.ParentID()) || pub.SpanKind != trace.SpanKindProducer ||
		attr(pub, "cloudevents.event_id") != "ord_1/2" || attr(pub, "orderflow.publish.path") != "sweep" ||
		attr(pub, "messaging.destination.partition.id") != "3" || attr(pub, "messaging.destination.name") != "orders" {
		t.Errorf("publish span: parent %v kind %v attributes %v", pub.Parent, pub.SpanKind, pub.Attributes)
	}
	if pub2.Parent.IsValid() || pub2.Status.Code.String() != "Error" {
		t.Errorf("publish span of an event without trace context: parent %v status %v; want a root, error", pub2.Parent, pub2.Status)
	}
}

// With tracing off New returns nil, and a nil Tracer shuts down quietly.
func TestOff(t *testing.T) {
	tr, err := New(context.Background(), Config{}, "orders", nil)
	if tr != nil || err != nil {
		t.Fatalf("New(off) = %v, %v; want nil, nil", tr, err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)
