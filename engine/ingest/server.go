package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

// Orders accepts decoded, priced and sealed order batches for commit
// (the orders pipeline). TrySubmit never blocks.
type Orders interface {
	TrySubmit(b *order.Batch) error
}

// Updates accepts status-change batches for commit (the status pipeline).
// TrySubmit never blocks.
type Updates interface {
	TrySubmit(b *order.UpdateBatch) error
}

// Reader reads committed orders back (the store).
type Reader interface {
	GetOrder(ctx context.Context, id string, dst *order.Order) (found bool, err error)
}

// Prices gives the current catalog snapshot.
type Prices interface {
	PriceBook() order.PriceBook
}

// Deps are the collaborators the front end calls.
type Deps struct {
	Orders  Orders
	Updates Updates
	Reader  Reader
	Prices  Prices
	// Redis, when set, holds the rate limits shared by every instance
	// (Config.PerKeyLimit, PerIPLimit). Nil: each instance limits alone.
	// The Server does not close it.
	Redis redis.UniversalClient
	// Tracer, when set, starts a span per request (tracing on); the
	// request's changes then carry the span's context. Nil: off.
	Tracer Tracer
}

// Server is the public HTTP front end: routing, admission control, body
// limits, decoding, pricing, submit-and-wait and the answer table.
// Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg    Config
	deps   Deps
	m      *metrics.Metrics
	log    *slog.Logger
	srv    *fasthttp.Server
	decode orderDecoder // Config.Decoder

	sem        chan struct{}  // admission slots; capacity = MaxInflight
	bodyBytes  atomic.Int64   // body bytes held by admitted requests; ≤ MaxInflightBodyBytes unless one alone
	guard      *guard         // nil: no auth and no rate limits (the hot path pays one nil check)
	linger     *lingerer      // lingering closes of the connections Serve accepts
	proxies    []netip.Prefix // Config.TrustedProxies (proxy.go)
	rejected   [numReasons]prometheus.Counter
	retryAfter []byte
	perRoute   [numRoutes]routeMetrics
	orders     [numResults]prometheus.Counter
	updates    [numUpdateResults]prometheus.Counter
	shutting   atomic.Bool
	certs      *certReloader // nil: plain HTTP
	tracer     Tracer        // Deps.Tracer; nil: tracing off
	// traceInvalid counts ignored trace context headers, by header.
	traceInvalid [numTraceLabels]prometheus.Counter
}

// New returns a Server. It validates cfg (zero fields take defaults).
func New(cfg Config, deps Deps, m *metrics.Metrics, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	if deps.Orders == nil || deps.Updates == nil || deps.Reader == nil || deps.Prices == nil {
		return nil, errors.New("ingest: Deps.Orders, Deps.Updates, Deps.Reader and Deps.Prices are required")
	}
	s := &Server{
		cfg:        cfg,
		deps:       deps,
		m:          m,
		log:        log,
		decode:     decoderFor(cfg.Decoder),
		tracer:     deps.Tracer,
		sem:        make(chan struct{}, cfg.MaxInflight),
		retryAfter: []byte(strconv.Itoa(max(1, int((cfg.RetryAfter+time.Second-1)/time.Second)))),
	}
	m.InFlightCapacity.Set(float64(cfg.MaxInflight))
	for r := range s.rejected {
		s.rejected[r] = m.AdmissionRejected.WithLabelValues(reasonNames[r])
	}
	s.proxies, _ = parseProxies(cfg.TrustedProxies) // checked by Validate
	if cfg.TLS.CertFile != "" {
		var err error
		if s.certs, err = newCertReloader(cfg.TLS, log); err != nil {
			return nil, err
		}
	}
	s.guard = newGuard(&cfg, deps.Redis, m, log)
	s.linger = newLingerer(&cfg, m)
	if len(cfg.APIKeys) == 0 {
		log.Warn("authentication is off: no API keys configured (-auth.keys-file or ORDERFLOW_API_KEYS); every request is anonymous")
	} else {
		log.Info("authentication on", "api_keys", len(cfg.APIKeys))
	}
	log.Info("rate limits", "per_key", cfg.PerKeyLimit.String(), "per_ip", cfg.PerIPLimit.String(), "shared_in_redis", deps.Redis != nil, "trusted_proxies", len(s.proxies))
	log.Info("order decoder", "decoder", cfg.Decoder)
	for r := range s.perRoute {
		s.perRoute[r].init(m, routes[r].name)
	}
	for r := range s.orders {
		s.orders[r] = m.Orders.WithLabelValues(resultNames[r])
	}
	for r := range s.updates {
		s.updates[r] = m.StatusUpdates.WithLabelValues(updateResultNames[r])
	}
	for h := range s.traceInvalid {
		s.traceInvalid[h] = m.TraceContextInvalid.WithLabelValues(traceLabelNames[h])
	}
	s.srv = &fasthttp.Server{
		Name:                  "orderflow",
		Handler:               s.handle,
		ErrorHandler:          s.handleTransportError,
		HeaderReceived:        s.headerReceived,
		Concurrency:           cfg.MaxConns,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		MaxRequestBodySize:    cfg.MaxBatchBodyBytes,
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// The body must be read whole before the handler runs: with
		// streaming on, MaxRequestBodySize becomes a prefetch size.
		StreamRequestBody:            false,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{log},
	}
	return s, nil
}

// Handler returns the request handler, for serving on a listener of the
// caller's choice (tests use fasthttputil.InmemoryListener through Serve).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve accepts connections on ln until Shutdown, with TLS on them when
// Config.TLS is set. It blocks. A connection closed after an answer the
// request was not read to its end for (413) closes by lingering (linger.go),
// under TLS too: the lingerer finds its connection beneath the TLS one.
func (s *Server) Serve(ln net.Listener) error {
	ln = s.linger.listener(ln)
	if s.certs != nil {
		ln = tlsListener(ln, s.certs)
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting connections, lets requests in progress finish
// (their commits included) and closes idle keep-alive connections. It
// returns when all connections are closed or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	s.linger.shutdown(ctx)
	return err
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
