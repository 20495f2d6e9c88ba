// Package tracing is orderflow's optional OpenTelemetry tracing, off by
// default. When on, it gives the ingest front end a span per request
// (ingest.Tracer; a child of the request's traceparent, whose context the
// request's changes then carry to their events), the engine's writers a
// span per group commit linked to the request spans it carried, and the
// publisher a span per record produced (publish.Tracer; a child of the
// event's request span, on the fast path and the sweeper alike). Spans are
// exported over OTLP/HTTP, configured by the standard OTEL_* variables
// (FromEnv says which). Its one third-party dependency is OpenTelemetry
// (API, SDK, OTLP/HTTP exporter); nothing else imports it but engine, and
// with tracing off nothing of it runs on the request path.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/engine/order"
)

// Config selects tracing. The zero value is off.
type Config struct {
	// Enabled turns tracing on. cmd/orderflow sets it from the environment
	// (FromEnv). Default: false.
	Enabled bool
	// Exporter receives finished spans. Nil: OTLP over HTTP/protobuf,
	// configured by the OTEL_EXPORTER_OTLP_* variables (the exporter reads
	// them itself). Tests set an in-memory one.
	Exporter sdktrace.SpanExporter
	// Sync exports each span as it ends instead of in batches (tests).
	// Default: false (batched, bounded by OTEL_BSP_*; spans beyond the
	// queue are dropped, never waited for).
	Sync bool
	// ServiceVersion is the service.version resource attribute. Default:
	// none.
	ServiceVersion string
}

// The variables FromEnv reads; the SDK and the exporter read the others
// (see the README's "Tracing").
const (
	envSDKDisabled     = "OTEL_SDK_DISABLED"
	envTracesExporter  = "OTEL_TRACES_EXPORTER"
	envEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocolHTTPProto  = "http/protobuf"
	exporterOTLP       = "otlp"
	exporterNone       = "none"
	defaultServiceName = "orderflow"
)

// FromEnv reads which tracing the standard OpenTelemetry variables ask for.
// Tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it is unset
// and OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set; OTEL_SDK_DISABLED=true turns it off whatever the rest says. Unlike
// the SDK's own default (otlp), no variable at all means off. It refuses,
// naming the variable, an exporter other than otlp or none and an OTLP
// protocol other than http/protobuf (only that exporter is built in).
func FromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	if strings.EqualFold(strings.TrimSpace(getenv(envSDKDisabled)), "true") {
		return cfg, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv(envTracesExporter))); exp {
	case exporterNone:
		return cfg, nil
	case exporterOTLP:
		cfg.Enabled = true
	case "":
		cfg.Enabled = getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != ""
	default:
		return cfg, fmt.Errorf("%s=%q: orderflow exports traces only with otlp (or none)", envTracesExporter, exp)
	}
	if !cfg.Enabled {
		return cfg, nil
	}
	for _, k := range []string{envTracesProtocol, envProtocol} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			if v != protocolHTTPProto {
				return cfg, fmt.Errorf("%s=%q: orderflow exports OTLP over %s only", k, v, protocolHTTPProto)
			}
			break // the signal-specific one wins
		}
	}
	return cfg, nil
}

// Tracer makes orderflow's spans. Create it with New; a nil *Tracer is
// never handed to the components (tracing off). Safe for concurrent use.
type Tracer struct {
	tp       *sdktrace.TracerProvider
	tr       trace.Tracer
	topic    attribute.KeyValue
	sendName string // the publish spans' name: "send <topic>"
}

// New returns the Tracer cfg asks for, or nil, nil when tracing is off.
// topic is the Kafka topic, for the publish spans. It does not contact the
// collector; export errors are logged by the SDK's error handler. Call
// Shutdown when done.
func New(ctx context.Context, cfg Config, topic string, log *slog.Logger) (*Tracer, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	exp := cfg.Exporter
	if exp == nil {
		var err error
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", defaultServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	// Later detectors win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.Sync {
		opts = append(opts, sdktrace.WithSyncer(exp))
	} else {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	if log != nil {
		log.Info("tracing on: a span per request, group commit and published record", "exporter", fmt.Sprintf("%T", exp))
	}
	return &Tracer{
		tp:       tp,
		tr:       tp.Tracer("github.com/orderflow/orderflow"),
		topic:    attribute.String("messaging.destination.name", topic),
		sendName: "send " + topic,
	}, nil
}

// Shutdown ends the spans' export: what is queued is exported within ctx.
// It is safe on a nil Tracer.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// SpanContext converts a traceparent to a remote span context (invalid for
// none). Only the sampled flag is kept (W3C level 1 defines no other).
func SpanContext(p order.TraceParent) trace.SpanContext {
	if !p.Valid() {
		return trace.SpanContext{}
	}
	var cfg trace.SpanContextConfig
	_, _ = hex.Decode(cfg.TraceID[:], p.TraceID())
	_, _ = hex.Decode(cfg.SpanID[:], p.ParentID())
	if p.Sampled() {
		cfg.TraceFlags = trace.FlagsSampled
	}
	cfg.Remote = true
	return trace.NewSpanContext(cfg)
}

// TraceParent renders a span context as a version-00 traceparent (zero for
// an invalid one), with only the sampled flag.
func TraceParent(sc trace.SpanContext) order.TraceParent {
	var p order.TraceParent
	if !sc.IsValid() {
		return p
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(p[:], "00-")
	hex.Encode(p[3:35], tid[:])
	p[35] = '-'
	hex.Encode(p[36:52], sid[:])
	p[52] = '-'
	p[53], p[54] = '0', '0'
	if sc.IsSampled() {
		p[54] = '1'
	}
	return p
}

// StartRequest implements ingest.Tracer: a server span named name ("POST
// /v1/orders"), a child of parent when valid. The span ends with the
// response's status code; 5xx marks it an error.
func (t *Tracer) StartRequest(name string, parent order.TraceParent, start time.Time) (order.TraceParent, func(status int)) {
	ctx := context.Background()
	if parent.Valid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, SpanContext(parent))
	}
	method, route, _ := strings.Cut(name, " ")
	_, span := t.tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
	return TraceParent(span.SpanContext()), func(status int) {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}

// maxLinks bounds the links of one commit span: one per request span it
// carried, consecutive repeats (a bulk request's items) dropped. The SDK
// would drop links above its own limit (OTEL_SPAN_LINK_COUNT_LIMIT, 128)
// anyway; stopping here saves building them.
const maxLinks = 128

// StartCommit starts the span of one group commit named name ("orders
// commit") of rows changes at start, linked to the request spans in
// parents (each change's traceparent, in order). End it with the returned
// function, giving how many changes were committed and failed.
func (t *Tracer) StartCommit(name string, start time.Time, rows int, parents iter.Seq[order.TraceParent]) func(committed, failed int) {
	var links []trace.Link
	var last order.TraceParent
	for p := range parents {
		if !p.Valid() || p == last {
			continue
		}
		if len(links) == maxLinks {
			break
		}
		last = p
		links = append(links, trace.Link{SpanContext: SpanContext(p)})
	}
	_, span := t.tr.Start(context.Background(), name, trace.WithTimestamp(start), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("orderflow.batch.rows", rows)))
	return func(committed, failed int) {
		span.SetAttributes(attribute.Int("orderflow.batch.committed", committed), attribute.Int("orderflow.batch.failed", failed))
		if failed > 0 {
			span.SetStatus(codes.Error, "changes not committed")
		}
		span.End()
	}
}

// StartPublish implements publish.Tracer: a producer span for one record
// of ev, a child of the event's request span (its traceparent) when it has
// one. path is "fast" or "sweep". The returned function ends it when the
// broker answered: with the record's partition and offset, or its error.
func (t *Tracer) StartPublish(ev *order.Event, path string) func(partition int32, offset int64, err error) {
	ctx := context.Background()
	if ev.TraceParent.Valid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, SpanContext(ev.TraceParent))
	}
	_, span := t.tr.Start(ctx, t.sendName, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.operation.type", "send"),
			t.topic,
			attribute.String("messaging.kafka.message.key", ev.OrderID),
			attribute.String("cloudevents.event_id", fmt.Sprintf("%s/%d", ev.OrderID, ev.Version)),
			attribute.String("cloudevents.event_type", ev.Type),
			attribute.String("orderflow.publish.path", path),
		))
	return func(partition int32, offset int64, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.String("messaging.destination.partition.id", strconv.Itoa(int(partition))),
				attribute.Int64("messaging.kafka.offset", offset))
		}
		span.End()
	}
}
