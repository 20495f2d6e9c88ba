package enginetest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// Instance is one engine started by [Start], with what a test needs to talk
// to it and to check what it stored and published. Its fields are set once
// Start returns and must not be changed.
type Instance struct {
	// Engine is the running engine; t.Cleanup shuts it down.
	Engine *engine.Engine
	// Config is the configuration the engine was started with.
	Config engine.Config
	// URL is the public listener's base URL ("http://127.0.0.1:port", or
	// https:// with Config.Ingest.TLS set).
	URL string
	// AdminURL is the admin listener's base URL (/metrics, /readyz, pprof).
	AdminURL string
	// DatabaseURL is the engine's PostgreSQL database.
	DatabaseURL string
	// Broker is the in-process broker the engine publishes to: the one
	// Start created or the one given with WithBroker; nil with WithBrokers
	// or WithEmbeddedBroker.
	Broker *kfake.Cluster
	// Brokers are the addresses the engine publishes to.
	Brokers []string
}

// Timers are the engine's timing settings that tests shorten. A zero field
// keeps the engine's default.
type Timers struct {
	// SweepInterval is how often the outbox sweeper runs (Publish.SweepInterval).
	SweepInterval time.Duration
	// SweepGrace is how old an outbox row must be before the sweeper
	// republishes it (Publish.SweepGrace).
	SweepGrace time.Duration
	// DeliveryTimeout bounds one fast-path publish (Publish.DeliveryTimeout).
	DeliveryTimeout time.Duration
	// MetadataMinAge is the Kafka client's metadata refresh floor
	// (Publish.MetadataMinAge).
	MetadataMinAge time.Duration
	// CatalogRefresh is how often the catalog reloads changed products
	// (Catalog.RefreshInterval).
	CatalogRefresh time.Duration
	// Linger is how long an order writer waits for more rows before it
	// commits a batch smaller than the maximum (Pipeline.Linger).
	Linger time.Duration
	// OrderWait is how long the fast path waits for another instance to
	// publish an order's previous version (Publish.OrderWait).
	OrderWait time.Duration
}

// TestTimers are the timers Start uses unless told otherwise: a record the
// fast path could not deliver within a second is swept about two seconds
// after its commit instead of half a minute, the Kafka client notices a
// broker that came back within 100 ms (franz-go otherwise takes seconds per
// retriable error), a catalog change is seen within a second (no test
// needs it sooner, and a shorter refresh only loads a shared machine), and
// an event whose previous version another instance cannot publish goes to
// the sweeper after half a second. Linger keeps the engine's default.
var TestTimers = Timers{
	SweepInterval:   100 * time.Millisecond,
	SweepGrace:      2 * time.Second,
	DeliveryTimeout: time.Second,
	MetadataMinAge:  100 * time.Millisecond,
	CatalogRefresh:  time.Second,
	OrderWait:       500 * time.Millisecond,
}

func (tm Timers) apply(c *engine.Config) {
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.Publish.SweepInterval, tm.SweepInterval)
	set(&c.Publish.SweepGrace, tm.SweepGrace)
	set(&c.Publish.DeliveryTimeout, tm.DeliveryTimeout)
	set(&c.Publish.MetadataMinAge, tm.MetadataMinAge)
	set(&c.Catalog.RefreshInterval, tm.CatalogRefresh)
	set(&c.Pipeline.Linger, tm.Linger)
	set(&c.Publish.OrderWait, tm.OrderWait)
}

// Option changes what Start sets up. Options apply in order; WithConfig
// functions run after everything else, in the order given.
type Option func(*options)

type options struct {
	databaseURL string
	catalog     []store.Product
	catalogSet  bool
	broker      *kfake.Cluster
	brokerOpts  []kfake.Opt
	brokers     []string
	embedded    bool
	timers      Timers
	tweaks      []func(*engine.Config)
}

// WithDatabase runs the engine on the database at url instead of a fresh
// one, as it is: migrated by the engine at start-up, its catalog seeded only
// when WithCatalog is given too. A second instance on the first one's
// database: WithDatabase(first.DatabaseURL).
func WithDatabase(url string) Option { return func(o *options) { o.databaseURL = url } }

// WithCatalog seeds products (upserted) into the engine's database before
// it starts, instead of the demo catalog (engine.DemoProducts) that a fresh
// database gets by default. WithCatalog(nil) leaves a fresh catalog empty.
// See GeneratedProducts for a catalog of any size.
func WithCatalog(products []store.Product) Option {
	return func(o *options) { o.catalog, o.catalogSet = products, true }
}

// WithBroker publishes to c (e.g. the Broker of another Instance, or one
// from NewBroker) instead of a broker of its own.
func WithBroker(c *kfake.Cluster) Option { return func(o *options) { o.broker = c } }

// WithBrokerOptions appends opts to those of the in-process broker Start
// creates (see NewBroker): TLS, SASL, more partitions.
func WithBrokerOptions(opts ...kfake.Opt) Option {
	return func(o *options) { o.brokerOpts = append(o.brokerOpts, opts...) }
}

// WithBrokers publishes to the brokers at addrs (a broker the test runs
// some other way); Instance.Broker is then nil.
func WithBrokers(addrs ...string) Option { return func(o *options) { o.brokers = addrs } }

// WithEmbeddedBroker runs the engine's own embedded broker (as `make run`
// does: no Kafka configured) on a free loopback port; Instance.Broker is
// then nil and Instance.Brokers its address.
func WithEmbeddedBroker() Option { return func(o *options) { o.embedded = true } }

// WithTimers replaces TestTimers; a zero field keeps the engine's default,
// so WithTimers(Timers{}) runs with the production timers.
func WithTimers(tm Timers) Option { return func(o *options) { o.timers = tm } }

// WithConfig changes the engine's configuration after Start has filled it
// in (listeners, database, brokers, timers, logger): for any setting the
// other options do not cover.
func WithConfig(fn func(*engine.Config)) Option {
	return func(o *options) { o.tweaks = append(o.tweaks, fn) }
}

// startTimeout bounds engine start-up and the readiness wait; stopTimeout
// bounds the shutdown in t.Cleanup.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
)

// Start sets up what opts ask for (by default: a fresh database with the
// demo catalog, an in-process broker of its own, TestTimers), starts an
// engine on free loopback ports, waits until /readyz answers 200 and
// returns it. The engine is shut down in t.Cleanup (cleanups registered
// later run first, so a test may stop it earlier with Instance.Stop). Any
// failure fails the test.
func Start(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	o := options{timers: TestTimers}
	for _, opt := range opts {
		opt(&o)
	}
	in := &Instance{DatabaseURL: o.databaseURL}
	switch {
	case in.DatabaseURL == "" && !o.catalogSet:
		in.DatabaseURL = NewDatabase(t)
	case in.DatabaseURL == "":
		in.DatabaseURL = pgtest.New(t)
		Seed(t, in.DatabaseURL, o.catalog)
	case o.catalogSet:
		Seed(t, in.DatabaseURL, o.catalog)
	}

	cfg := engine.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.DatabaseURL = in.DatabaseURL
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.Logger = Logger()
	switch {
	case o.embedded:
		cfg.EmbeddedKafkaAddr = "127.0.0.1:0"
	case len(o.brokers) > 0:
		cfg.KafkaBrokers = o.brokers
	default:
		in.Broker = o.broker
		if in.Broker == nil {
			in.Broker = NewBroker(t, o.brokerOpts...)
		}
		cfg.KafkaBrokers = in.Broker.ListenAddrs()
	}
	o.timers.apply(&cfg)
	for _, fn := range o.tweaks {
		fn(&cfg)
	}
	in.Config = cfg

	e, err := engine.New(cfg)
	if err != nil {
		t.Fatalf("enginetest: engine.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("enginetest: engine.Start: %v", err)
	}
	in.Engine = e
	t.Cleanup(func() {
		if err := in.Stop(); err != nil {
			t.Logf("enginetest: shutdown: %v", err)
		}
	})
	in.URL = "http://" + e.Addr()
	if cfg.Ingest.TLS.CertFile != "" {
		in.URL = "https://" + e.Addr()
	}
	in.AdminURL = "http://" + e.AdminAddr()
	in.Brokers = e.KafkaBrokers()
	in.waitReady(ctx, t)
	return in
}

// waitReady polls /readyz until it answers 200 or ctx ends.
func (in *Instance) waitReady(ctx context.Context, t testing.TB) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.AdminURL+"/readyz", nil)
		if err != nil {
			t.Fatalf("enginetest: %v", err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status + " " + string(body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("enginetest: %s/readyz not 200 after start: %s", in.AdminURL, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the engine down (within 30 s) and returns Shutdown's error.
// Calling it again returns the same error; t.Cleanup calls it too.
func (in *Instance) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return in.Engine.Shutdown(ctx)
}

// Consume reads the engine's topic as the package-level Consume does.
func (in *Instance) Consume(t testing.TB, keyPrefix string, want int, within time.Duration) []*kgo.Record {
	t.Helper()
	return Consume(t, in.Brokers, keyPrefix, want, within)
}

// ConsumeAll is [ConsumeAll] on the instance's brokers.
func (in *Instance) ConsumeAll(t testing.TB, keyPrefix string, within time.Duration) []*kgo.Record {
	t.Helper()
	return ConsumeAll(t, in.Brokers, keyPrefix, within)
}

// Logger is the logger Start gives the engine: silent, unless the
// environment variable ORDERFLOW_TEST_LOG is set, then debug level to
// stderr.
func Logger() *slog.Logger {
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
