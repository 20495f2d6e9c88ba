package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine/catalog"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
	"github.com/orderflow/orderflow/engine/pipeline"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/engine/tracing"
)

// Engine is one orderflow server: it owns every component and their
// goroutines. Create it with New, then Start and Shutdown (or Run).
type Engine struct {
	cfg Config
	log *slog.Logger
	m   *metrics.Metrics

	broker  *publish.Embedded // nil with external brokers
	store   *store.Store
	catalog *catalog.Catalog
	pub     *publish.Publisher
	orders  *pipeline.Pipeline[*order.Batch]
	updates *pipeline.Pipeline[*order.UpdateBatch]
	front   *ingest.Server
	admin   *http.Server
	tracer  *tracing.Tracer // nil: tracing off

	redis       *redis.Client // nil without RedisURL
	ln, adminLn net.Listener
	serveErr    chan error // public and admin Serve results; size 2 so neither blocks
	shutting    atomic.Bool
	stopOnce    sync.Once
	stopErr     error
}

// New validates cfg and returns an Engine that has not started anything.
func New(cfg Config) (*Engine, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, log: cfg.Logger, m: metrics.New(), serveErr: make(chan error, 2)}, nil
}

// Metrics returns the engine's collectors (for tests and embedding).
func (e *Engine) Metrics() *metrics.Metrics { return e.m }

// Publisher returns the outbox relay once Start has returned (for tests and
// embedding: its Kafka client, its publisher id).
func (e *Engine) Publisher() *publish.Publisher { return e.pub }

// Addr returns the public listener's address once Start has returned.
func (e *Engine) Addr() string { return e.ln.Addr().String() }

// AdminAddr returns the admin listener's address once Start has returned.
func (e *Engine) AdminAddr() string { return e.adminLn.Addr().String() }

// KafkaBrokers returns the brokers the engine produces to (the embedded
// broker's address when it runs one).
func (e *Engine) KafkaBrokers() []string {
	if e.broker != nil {
		return e.broker.Addrs()
	}
	return e.cfg.KafkaBrokers
}

// Start brings the server up in dependency order: broker (embedded only),
// PostgreSQL (connect, migrate), catalog, publisher, pipeline, admin
// listener, public listener. On error it tears down what it started.
func (e *Engine) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			e.teardown()
		}
	}()
	cfg := &e.cfg
	start := time.Now()
	if cfg.MutexProfileFraction > 0 {
		runtime.SetMutexProfileFraction(cfg.MutexProfileFraction)
	}
	if cfg.BlockProfileRate > 0 {
		runtime.SetBlockProfileRate(cfg.BlockProfileRate)
	}
	brokers := cfg.KafkaBrokers
	if len(brokers) == 0 {
		e.broker, err = publish.StartEmbedded(cfg.EmbeddedKafkaAddr, cfg.KafkaTopic, cfg.EmbeddedKafkaPartitions, e.log)
		if err != nil {
			return fmt.Errorf("start embedded kafka at %s (-"+FlagEmbeddedKafkaAddr+"): %w", cfg.EmbeddedKafkaAddr, err)
		}
		brokers = e.broker.Addrs()
	}
	cfg.Publish.Brokers = brokers
	if e.tracer, err = tracing.New(ctx, cfg.Tracing, cfg.KafkaTopic, e.log); err != nil {
		return fmt.Errorf("tracing (OTEL_* environment): %w", err)
	}
	if e.tracer != nil { // never a typed nil in the interfaces: nil means off
		cfg.Publish.Tracer = e.tracer
	}

	if e.store, err = store.New(ctx, cfg.Store, e.m, e.log); err != nil {
		return fmt.Errorf("connect to postgresql (-"+store.FlagDatabaseURL+"): %w", err)
	}
	if err = e.store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// Warnings and orderflow_postgres_setting_unsafe; never fatal.
	if _, cerr := e.store.CheckSettings(ctx); cerr != nil {
		e.log.Warn("could not check postgresql settings", "err", cerr)
	}
	if e.catalog, err = catalog.New(cfg.Catalog, e.store, e.m, e.log); err != nil {
		return err
	}
	if err = e.catalog.Load(ctx); err != nil {
		return err
	}
	e.catalog.Start()
	if e.catalog.Snapshot().Len() == 0 {
		e.log.Warn("the product catalog is empty: every order will be refused with 422 unknown_sku until products exist")
	}

	if e.pub, err = publish.New(cfg.Publish, e.store, e.m, e.log); err != nil {
		return err
	}
	if err = e.pub.Register(ctx); err != nil {
		return err
	}
	e.pub.Start()

	if e.orders, err = pipeline.New[*order.Batch](e.hooked(cfg.Pipeline), &orderSink{store: e.store, pub: e.pub, tracer: e.tracer}); err != nil {
		return err
	}
	e.m.QueueCapacity.WithLabelValues(cfg.Pipeline.Name).Set(float64(e.orders.Capacity()))
	e.orders.Start()
	if e.updates, err = pipeline.New[*order.UpdateBatch](e.hooked(cfg.StatusPipeline), &statusSink{store: e.store, pub: e.pub, tracer: e.tracer}); err != nil {
		return err
	}
	e.m.QueueCapacity.WithLabelValues(cfg.StatusPipeline.Name).Set(float64(e.updates.Capacity()))
	e.updates.Start()

	deps := ingest.Deps{Orders: e.orders, Updates: e.updates, Reader: e.store, Prices: e.catalog}
	if e.tracer != nil {
		deps.Tracer = e.tracer
	}
	if cfg.RedisURL != "" {
		opts, _ := redis.ParseURL(cfg.RedisURL) // checked in Validate
		e.redis = redis.NewClient(opts)
		deps.Redis = e.redis
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if perr := e.redis.Ping(pctx).Err(); perr != nil {
			e.log.Warn("redis does not answer; rate limits stay per instance until it does (-ratelimit.redis-url)", "addr", opts.Addr, "err", perr)
		}
		cancel()
	}
	if e.front, err = ingest.New(cfg.Ingest, deps, e.m, e.log); err != nil {
		return err
	}
	if e.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		return fmt.Errorf("admin listener (-admin-listen): %w", err)
	}
	e.admin = &http.Server{Handler: ingest.AdminHandler(e.m, e.ready), ReadHeaderTimeout: 10 * time.Second}
	go func() { e.serveErr <- serveResult("admin", e.admin.Serve(e.adminLn)) }()
	if e.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fmt.Errorf("public listener (-listen): %w", err)
	}
	go func() { e.serveErr <- serveResult("public", e.front.Serve(e.ln)) }()
	e.m.Ready.Set(1) // PostgreSQL answered the migrations; /readyz keeps it current
	e.log.Info("orderflow started", "listen", e.ln.Addr().String(), "admin", e.adminLn.Addr().String(),
		"kafka", brokers, "topic", cfg.KafkaTopic, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// hooked returns pcfg with its metric hooks set.
func (e *Engine) hooked(pcfg pipeline.Config) pipeline.Config {
	depth := e.m.QueueDepth.WithLabelValues(pcfg.Name)
	rowsH := e.m.BatchRows.WithLabelValues(pcfg.Name)
	bytesH := e.m.BatchBytes.WithLabelValues(pcfg.Name)
	pcfg.OnDepth = func(n int) { depth.Set(float64(n)) }
	pcfg.OnBatch = func(rows, bytes int) { rowsH.Observe(float64(rows)); bytesH.Observe(float64(bytes)) }
	return pcfg
}

func serveResult(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s listener: %w", name, err)
}

// ready backs /readyz: not shutting down, and PostgreSQL answers.
// Each check sets the orderflow_ready gauge.
func (e *Engine) ready(ctx context.Context) error {
	err := e.readiness(ctx)
	if err != nil {
		e.m.Ready.Set(0)
	} else {
		e.m.Ready.Set(1)
	}
	return err
}

func (e *Engine) readiness(ctx context.Context) error {
	if e.shutting.Load() {
		return errors.New("shutting down")
	}
	if err := e.store.Ping(ctx); err != nil {
		return fmt.Errorf("postgresql: %w", err)
	}
	return nil
}

// Run starts the engine, serves until ctx is cancelled (SIGTERM), then
// shuts down within ShutdownTimeout. It returns the first error.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-e.serveErr:
		if serveErr != nil {
			e.log.Error("listener failed; shutting down", "err", serveErr)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, e.Shutdown(sctx))
}

// Shutdown stops the server in reverse start order: report not ready →
// DrainDelay → stop the public listener and finish its requests → close
// the pipeline (commit and answer what is queued) → flush the outbox to
// Kafka → stop the catalog, admin listener, PostgreSQL pool and embedded
// broker. Every step is logged with its duration. Safe to call twice.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.shutdown(ctx) })
	return e.stopErr
}

func (e *Engine) shutdown(ctx context.Context) error {
	var errs []error
	step := func(name string, fn func() error) {
		t := time.Now()
		err := fn()
		e.log.Info("shutdown step", "step", name, "took", time.Since(t).Round(time.Microsecond).String(), "err", err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	e.shutting.Store(true)
	e.m.Ready.Set(0)
	if e.cfg.DrainDelay > 0 {
		step("drain delay", func() error {
			select {
			case <-time.After(e.cfg.DrainDelay):
			case <-ctx.Done():
			}
			return nil
		})
	}
	if e.front != nil {
		step("public listener", func() error { return e.front.Shutdown(ctx) })
	}
	if e.orders != nil {
		step("orders pipeline", func() error { return e.orders.Close(ctx) })
	}
	if e.updates != nil {
		step("status pipeline", func() error { return e.updates.Close(ctx) })
	}
	if e.pub != nil {
		step("publisher", func() error { return e.pub.Shutdown(ctx) })
	}
	errs = append(errs, e.closeRest(ctx, step)...)
	return errors.Join(errs...)
}

func (e *Engine) closeRest(ctx context.Context, step func(string, func() error)) []error {
	if e.catalog != nil {
		step("catalog", func() error { e.catalog.Close(); return nil })
	}
	if e.admin != nil {
		step("admin listener", func() error { return e.admin.Shutdown(ctx) })
	}
	if e.store != nil {
		step("postgresql pool", func() error { e.store.Close(); return nil })
	}
	if e.broker != nil {
		step("embedded kafka", func() error { e.broker.Close(); return nil })
	}
	if e.redis != nil {
		step("redis client", func() error { return e.redis.Close() })
	}
	if e.tracer != nil {
		step("tracing", func() error { return e.tracer.Shutdown(ctx) })
	}
	return nil
}

// teardown releases what a failed Start had acquired.
func (e *Engine) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.shutting.Store(true)
	if e.ln != nil {
		_ = e.front.Shutdown(ctx)
	}
	if e.orders != nil {
		_ = e.orders.Close(ctx)
	}
	if e.updates != nil {
		_ = e.updates.Close(ctx)
	}
	if e.pub != nil {
		_ = e.pub.Shutdown(ctx)
	}
	e.closeRest(ctx, func(_ string, fn func() error) { _ = fn() })
}
