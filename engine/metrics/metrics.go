// Package metrics defines every Prometheus collector orderflow exports, with
// its name, help and labels, in this one file. Metric names start with
// "orderflow_". Labels come from small fixed sets; never an order or user ID.
//
// Each Engine builds its own Metrics on its own registry, so tests can run
// several engines in one process. All fields are safe for concurrent use.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector. Create it with New.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTP front end.
	HTTPRequests      *prometheus.CounterVec   // route, code
	HTTPDuration      *prometheus.HistogramVec // route, code
	AdmissionRejected *prometheus.CounterVec   // reason: limit, body_bytes, queue_full, unauthorized, rate_limit_ip, rate_limit_key
	InFlightRequests  prometheus.Gauge
	InFlightCapacity  prometheus.Gauge
	HandlerPanics     prometheus.Counter
	// Ready is 1 while the last readiness check (each GET /readyz) passed
	// and 0 once it failed or shutdown began.
	Ready        prometheus.Gauge
	LingerClosed *prometheus.CounterVec // end: client_closed, byte_bound, time_bound, busy, shutdown
	LingerBytes  prometheus.Counter
	Lingering    prometheus.Gauge

	// Orders and status changes by result: created, duplicate, conflict,
	// invalid, unprocessable, rejected, overloaded, failed, timeout.
	Orders        *prometheus.CounterVec // result
	StatusUpdates *prometheus.CounterVec // result
	// TraceContextInvalid counts W3C trace context headers ignored as
	// invalid, by header: traceparent, tracestate.
	TraceContextInvalid *prometheus.CounterVec

	// Pipeline.
	QueueDepth    *prometheus.GaugeVec     // pipeline: orders, status
	QueueCapacity *prometheus.GaugeVec     // pipeline
	BatchRows     *prometheus.HistogramVec // pipeline
	BatchBytes    *prometheus.HistogramVec // pipeline

	// Store.
	CommitSeconds *prometheus.HistogramVec // op: orders, status
	CommitErrors  *prometheus.CounterVec   // op, kind: retryable, data, other
	DBRetries     *prometheus.CounterVec   // op
	DBBisections  *prometheus.CounterVec   // op

	// Outbox and Kafka.
	Published          *prometheus.CounterVec // path: fast, sweep; result: ok, error
	PublishSeconds     prometheus.Histogram   // hand-off to broker ack
	PublishDropped     prometheus.Counter     // fast path full: left for the sweeper
	OutboxBacklog      prometheus.Gauge       // committed events not yet acknowledged by the broker
	OutboxOldestAge    prometheus.Gauge       // age of the oldest of them, seconds
	OutboxDeleted      prometheus.Counter     // acknowledgements recorded
	OutboxTruncated    prometheus.Counter     // ring slots truncated
	OutboxDeadLettered prometheus.Counter     // events refused for good and parked
	OutboxDead         prometheus.Gauge       // events parked now
	OutboxHeld         prometheus.Gauge       // orders held (outbox_held): only the sweeper publishes their events
	OrderWaits         *prometheus.CounterVec // result: published, held

	// PostgresSettingBad is 1 per setting (and value) found unsafe at start.
	PostgresSettingBad *prometheus.GaugeVec
	ProducerBuffered   prometheus.Gauge       // records buffered in the Kafka client
	KafkaAuthFailures  *prometheus.CounterVec // by kind: sasl, tls
	SweepRuns          *prometheus.CounterVec // result: ok, error

	// Catalog.
	CatalogProducts   prometheus.Gauge
	CatalogRefreshes  *prometheus.CounterVec // result: ok, error
	CatalogAgeSeconds prometheus.Gauge
}

// Bucket layouts shared by the latency histograms: 100µs to ~13s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 18)

// New creates every collector and registers it, plus the Go runtime and
// process collectors, on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }

	m.HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_http_requests_total", Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "code"})
	m.HTTPDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_http_request_duration_seconds", Help: "Time from request read to response, by route and status code.",
		Buckets: latencyBuckets,
	}, []string{"route", "code"})
	m.AdmissionRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_admission_rejected_total", Help: "Requests refused by admission control: 503 for no in-flight slot in time, in-flight body bytes at the cap or a full pipeline queue, 401 without a valid API key, 429 for an empty token bucket; by reason (limit, body_bytes, queue_full, unauthorized, rate_limit_ip, rate_limit_key).",
	}, []string{"reason"})
	m.InFlightRequests = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_inflight_requests", Help: "Requests holding an admission slot.",
	})
	m.InFlightCapacity = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_inflight_requests_capacity", Help: "Admission slots (-ingest.max-inflight).",
	})
	m.HandlerPanics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_handler_panics_total", Help: "Handler panics recovered and answered 500.",
	})
	m.Ready = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_ready", Help: "1 while the last readiness check (GET /readyz) passed, 0 after it failed or once shutdown began.",
	})
	m.LingerClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_http_lingering_closes_total", Help: "Connections closed after an error answer (such as 413) by a lingering close: the server half-closed them and discarded what the client still sent, until the client closed (client_closed), -ingest.linger-max-bytes (byte_bound) or -ingest.linger-timeout (time_bound) was reached, or the server shut down (shutdown); busy: -ingest.linger-max-conns were lingering already, so it was closed at once.",
	}, []string{"end"})
	m.LingerBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_http_lingering_discarded_bytes_total", Help: "Bytes read and discarded from connections in a lingering close (the rest of refused request bodies).",
	})
	m.Lingering = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_http_lingering_connections", Help: "Connections in a lingering close now (at most -ingest.linger-max-conns).",
	})
	m.Orders = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_orders_total", Help: "Orders answered, by result.",
	}, []string{"result"})
	m.StatusUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_status_updates_total", Help: "Status updates answered, by result.",
	}, []string{"result"})
	m.TraceContextInvalid = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_trace_context_invalid_total", Help: "W3C trace context request headers ignored because they are invalid, by header: traceparent (malformed, an all-zero id, version ff, or sent twice; the request's tracestate is then ignored too) or tracestate (over 32 members or 512 characters, a bad key or value, a key twice; the traceparent is kept). The request is served either way.",
	}, []string{"header"})
	m.QueueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orderflow_pipeline_queue_depth", Help: "Rows waiting in the pipeline queue.",
	}, []string{"pipeline"})
	m.QueueCapacity = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orderflow_pipeline_queue_capacity", Help: "Rows the pipeline queue admits (-pipeline.queue-rows).",
	}, []string{"pipeline"})
	m.BatchRows = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_pipeline_batch_rows", Help: "Rows per committed batch.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15),
	}, []string{"pipeline"})
	m.BatchBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_pipeline_batch_bytes", Help: "Request bytes per committed batch.",
		Buckets: prometheus.ExponentialBuckets(256, 4, 10),
	}, []string{"pipeline"})
	m.CommitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_store_commit_seconds", Help: "Time to write and commit one batch, by operation.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	m.CommitErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_store_commit_errors_total", Help: "Failed batch transactions, by operation and kind (retryable, data, other).",
	}, []string{"op", "kind"})
	m.DBRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_store_retries_total", Help: "Batch transactions retried after a retryable error.",
	}, []string{"op"})
	m.DBBisections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_store_bisections_total", Help: "Batches split to isolate a row PostgreSQL refused.",
	}, []string{"op"})
	m.Published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_events_published_total", Help: "Outbox events produced to Kafka, by path (fast, sweep) and result (ok, error).",
	}, []string{"path", "result"})
	m.PublishSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "orderflow_publish_seconds", Help: "Time from hand-off to the Kafka client to broker acknowledgement.",
		Buckets: latencyBuckets,
	})
	m.PublishDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_publish_fastpath_skipped_total", Help: "Committed events not handed to the fast path (producer buffer full); the sweeper publishes them.",
	})
	m.OutboxBacklog = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_outbox_backlog", Help: "Committed outbox events not yet acknowledged by the broker, as of the last count (every sweep interval).",
	})
	m.OutboxDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_outbox_deleted_total", Help: "Outbox events whose broker acknowledgement was recorded by the fast path's acker (the event's storage goes with its ring slot).",
	})
	m.OutboxOldestAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_outbox_oldest_age_seconds", Help: "Age of the oldest committed outbox event not yet acknowledged by the broker (0 when none), as of the last count.",
	})
	m.OutboxDeadLettered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_outbox_dead_lettered_total", Help: "Outbox events the broker refused for good (after a retry alone), parked in outbox_dead by the sweeper. Later versions of their orders parked behind them are not counted here; orderflow_outbox_dead counts every parked event.",
	})
	m.OutboxDead = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_outbox_dead", Help: "Outbox events parked in outbox_dead now (orderflow outbox dead lists them; orderflow outbox requeue puts them back).",
	})
	m.OutboxHeld = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_outbox_held_orders", Help: "Orders held in outbox_held, as of the last count (every sweep interval): every instance leaves their events to the sweeper until it has published them up to the hold.",
	})
	m.OrderWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_publish_order_waits_total", Help: "Events whose previous version another instance had not yet published (or held) when they were committed, after waiting for it: published by the fast path, or held (left to the sweeper: the order was held, or the wait passed -kafka.order-wait).",
	}, []string{"result"})
	m.OutboxTruncated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderflow_outbox_slots_truncated_total", Help: "Outbox ring slots truncated because every event in them was published.",
	})
	m.PostgresSettingBad = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orderflow_postgres_setting_unsafe", Help: "1 for each PostgreSQL setting read at start that is unsafe for orderflow or degrades it (setting, value), as logged then.",
	}, []string{"setting", "value"})
	m.ProducerBuffered = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_producer_buffered_records", Help: "Records buffered in the Kafka client, not yet acknowledged.",
	})
	m.KafkaAuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_kafka_auth_failures_total", Help: "Connections to Kafka refused for authentication, by kind (sasl: credentials or mechanism refused; tls: handshake or certificate refused). Events stay in the outbox until it succeeds.",
	}, []string{"kind"})
	m.SweepRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_outbox_sweeps_total", Help: "Outbox sweeper runs, by result.",
	}, []string{"result"})
	m.CatalogProducts = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_catalog_products", Help: "Products in the in-memory catalog snapshot.",
	})
	m.CatalogRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_catalog_refreshes_total", Help: "Catalog refreshes, by result.",
	}, []string{"result"})
	m.CatalogAgeSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_catalog_last_refresh_timestamp_seconds", Help: "Unix time of the last successful catalog refresh.",
	})

	for _, c := range []prometheus.Collector{
		m.HTTPRequests, m.HTTPDuration, m.AdmissionRejected, m.InFlightRequests, m.InFlightCapacity, m.HandlerPanics, m.Ready,
		m.LingerClosed, m.LingerBytes, m.Lingering,
		m.Orders, m.StatusUpdates, m.TraceContextInvalid, m.QueueDepth, m.QueueCapacity, m.BatchRows, m.BatchBytes,
		m.CommitSeconds, m.CommitErrors, m.DBRetries, m.DBBisections,
		m.Published, m.PublishSeconds, m.PublishDropped, m.OutboxBacklog, m.OutboxOldestAge, m.OutboxDeleted, m.OutboxTruncated, m.OutboxDeadLettered, m.OutboxDead,
		m.OutboxHeld, m.OrderWaits,
		m.PostgresSettingBad, m.ProducerBuffered, m.KafkaAuthFailures, m.SweepRuns,
		m.CatalogProducts, m.CatalogRefreshes, m.CatalogAgeSeconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	return m
}
