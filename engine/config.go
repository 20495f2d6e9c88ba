package engine

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine/catalog"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/engine/pipeline"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/engine/store"
	"github.com/orderflow/orderflow/engine/tracing"
	"github.com/orderflow/orderflow/internal/conf"
)

// Config is the whole server's configuration. cmd/orderflow fills it from
// flags and environment; the zero value of every field means its default.
type Config struct {
	// Listen is the public HTTP address. Default: ":8080".
	Listen string
	// AdminListen is the metrics/pprof/health address. Default:
	// "127.0.0.1:6060" (loopback: pprof exposes internals).
	AdminListen string
	// DatabaseURL is the PostgreSQL connection string. Default:
	// "postgres://127.0.0.1:5432/orderflow?sslmode=disable".
	DatabaseURL string
	// KafkaBrokers are the seed brokers. Empty: run the embedded
	// development broker at EmbeddedKafkaAddr.
	KafkaBrokers []string
	// KafkaTopic receives every order event. Default: "orders".
	KafkaTopic string
	// EmbeddedKafkaAddr is where the embedded broker listens when
	// KafkaBrokers is empty. Default: "127.0.0.1:9092".
	EmbeddedKafkaAddr string
	// EmbeddedKafkaPartitions is the topic's partition count on the
	// embedded broker. Default: 4.
	EmbeddedKafkaPartitions int32
	// ShutdownTimeout is the whole drain budget on SIGTERM. Default: 30s.
	ShutdownTimeout time.Duration
	// RedisURL, when set (redis://[user:pass@]host:port/db), keeps the
	// per-key and per-IP rate limits (Ingest.PerKeyLimit, PerIPLimit) in
	// Redis, shared by every instance. Empty: each instance limits alone.
	// Redis failing at run time makes each instance fall back to its local
	// limit; it never fails requests. Default: "".
	RedisURL string
	// DrainDelay keeps serving for this long after /readyz turns 503, so a
	// load balancer stops sending before the listener closes. Default: 0.
	DrainDelay time.Duration

	Ingest   ingest.Config
	Pipeline pipeline.Config
	// StatusPipeline tunes the status-change pipeline. Its Writers default
	// to 1: a single writer commits and hands events to the publisher in
	// commit order, which keeps each order's status events in version order
	// on the fast path (see doc.go).
	// Its flags are -status-pipeline.* (StatusPrefix).
	StatusPipeline pipeline.Config
	Store          store.Config
	Publish        publish.Config
	Catalog        catalog.Config

	// MutexProfileFraction and BlockProfileRate switch on the mutex and
	// block profiles of /debug/pprof (runtime.SetMutexProfileFraction,
	// runtime.SetBlockProfileRate; they are process-wide). 0 leaves them
	// off: they cost a little on every contended lock or blocking event.
	// `make profile` turns them on. Default: 0.
	MutexProfileFraction int
	BlockProfileRate     int

	// Tracing selects OpenTelemetry tracing: off by default; cmd/orderflow
	// fills it from the standard OTEL_* variables (tracing.FromEnv), not
	// from flags.
	Tracing tracing.Config

	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
}

// StatusPrefix is the flag group of the status-change pipeline's settings
// (-status-pipeline.writers, …).
const StatusPrefix = "status-pipeline"

// Flag names of the engine's own settings. The process-wide ones have no
// group; the others belong to the group of the package they feed.
const (
	FlagListen                  = "listen"
	FlagAdminListen             = "admin-listen"
	FlagShutdownTimeout         = "shutdown-timeout"
	FlagDrainDelay              = "drain-delay"
	FlagEmbeddedKafkaAddr       = "kafka.embedded-addr"
	FlagEmbeddedKafkaPartitions = "kafka.embedded-partitions"
	FlagRedisURL                = "ratelimit.redis-url"
	FlagMutexProfileFraction    = "pprof.mutex-fraction"
	FlagBlockProfileRate        = "pprof.block-rate"
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Listen:                  ":8080",
		AdminListen:             "127.0.0.1:6060",
		DatabaseURL:             store.DefaultURL,
		KafkaTopic:              publish.DefaultTopic,
		EmbeddedKafkaAddr:       "127.0.0.1:9092",
		EmbeddedKafkaPartitions: 4,
		ShutdownTimeout:         30 * time.Second,
		Ingest:                  ingest.DefaultConfig(),
		Pipeline:                pipeline.DefaultConfig(),
		StatusPipeline:          statusPipelineDefaults(),
		Store:                   store.DefaultConfig(),
		Publish:                 publish.DefaultConfig(),
		Catalog:                 catalog.DefaultConfig(),
	}
}

func statusPipelineDefaults() pipeline.Config {
	c := pipeline.DefaultConfig()
	c.Name = "status"
	c.Writers = 1
	return c
}

// own lists the engine's own settings (not its packages'), bound to c.
func (c *Config) own() []conf.Setting {
	return []conf.Setting{
		conf.String(&c.Listen, FlagListen, "public HTTP listener"),
		conf.String(&c.AdminListen, FlagAdminListen, "admin listener: /metrics, /debug/pprof, /healthz, /readyz"),
		conf.Duration(&c.ShutdownTimeout, FlagShutdownTimeout, "drain budget on SIGTERM").Min(1),
		conf.Duration(&c.DrainDelay, FlagDrainDelay, "keep serving this long after /readyz turns 503 on SIGTERM").Min(0),

		conf.String(&c.DatabaseURL, store.FlagDatabaseURL, "PostgreSQL connection URL").WithEnv("DATABASE_URL").DeprecatedNames("database-url"),

		conf.List(&c.KafkaBrokers, publish.FlagBrokers, "comma-separated Kafka seed brokers; empty runs the embedded development broker").WithEnv("KAFKA_BROKERS").DeprecatedNames("kafka-brokers"),
		conf.String(&c.KafkaTopic, publish.FlagTopic, "topic for order events").WithEnv("KAFKA_TOPIC").DeprecatedNames("kafka-topic"),
		conf.String(&c.EmbeddedKafkaAddr, FlagEmbeddedKafkaAddr, "where the embedded broker listens (only with -"+publish.FlagBrokers+" empty)").DeprecatedNames("embedded-kafka-addr"),
		conf.Int(&c.EmbeddedKafkaPartitions, FlagEmbeddedKafkaPartitions, "partitions of the topic on the embedded broker").Min(1).DeprecatedNames("embedded-kafka-partitions"),

		conf.String(&c.RedisURL, FlagRedisURL, "redis://host:port/db to share the rate limits among instances; empty: each instance limits alone").DeprecatedNames("redis-url"),

		conf.Int(&c.MutexProfileFraction, FlagMutexProfileFraction, "sample 1/N mutex contention events for /debug/pprof/mutex (0: off)").Min(0),
		conf.Int(&c.BlockProfileRate, FlagBlockProfileRate, "sample blocking events of at least N ns for /debug/pprof/block (0: off)").Min(0),
	}
}

// Settings lists every setting of the server, the engine's and each
// package's, bound to c's fields: cmd/orderflow builds its flags and
// environment variables from it. Ingest.APIKeys and Logger are not in it.
func (c *Config) Settings() []conf.Setting {
	s := c.own()
	s = append(s, c.Store.Settings()...)
	s = append(s, c.Publish.Settings()...)
	s = append(s, c.Ingest.Settings()...)
	s = append(s, c.Pipeline.Settings(pipeline.Prefix)...)
	for _, st := range c.StatusPipeline.Settings(StatusPrefix) {
		if st.Name == StatusPrefix+"."+pipeline.FlagWriters {
			st.Usage += "; 1 (the default) hands each order's status events to the publisher in commit order"
		}
		s = append(s, st)
	}
	s = append(s, c.Catalog.Settings()...)
	return s
}

// fill sets every zero field to its default, the packages' included, and
// hands the shared settings (database URL, topic) to the packages.
func (c *Config) fill() {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *string }{{&c.Listen, &d.Listen}, {&c.AdminListen, &d.AdminListen}, {&c.DatabaseURL, &d.DatabaseURL}, {&c.KafkaTopic, &d.KafkaTopic}, {&c.EmbeddedKafkaAddr, &d.EmbeddedKafkaAddr}} {
		if *f.v == "" {
			*f.v = *f.d
		}
	}
	if c.EmbeddedKafkaPartitions == 0 {
		c.EmbeddedKafkaPartitions = d.EmbeddedKafkaPartitions
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Store.URL = c.DatabaseURL
	c.Publish.Topic = c.KafkaTopic
	if c.Pipeline.Name == "" {
		c.Pipeline.Name = "orders"
	}
	if c.StatusPipeline.Name == "" {
		c.StatusPipeline.Name = "status"
	}
	if c.StatusPipeline.Writers == 0 {
		c.StatusPipeline.Writers = 1
	}
	c.Pipeline = c.Pipeline.WithDefaults()
	c.StatusPipeline = c.StatusPipeline.WithDefaults()
	if c.Ingest.BulkChunkRows == 0 {
		c.Ingest.BulkChunkRows = c.Pipeline.MaxBatchRows
	}
	c.Ingest = c.Ingest.WithDefaults()
	c.Store = c.Store.WithDefaults()
	c.Publish = c.Publish.WithDefaults()
	c.Catalog = c.Catalog.WithDefaults()
}

// Validate reports a configuration that cannot work, naming the flag. Zero
// fields are checked with their default values. Rules that span packages
// live here.
func (c Config) Validate() error {
	c.fill()
	if err := conf.Validate(c.own()); err != nil {
		return err
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return fmt.Errorf("-%s: %w", FlagRedisURL, err)
		}
	}
	// The publisher's brokers are filled in at Start (the embedded broker's
	// address when none are configured), so validate the rest of it here.
	pub := c.Publish
	if len(pub.Brokers) == 0 {
		pub.Brokers = []string{"embedded:0"}
	}
	for _, v := range []interface{ Validate() error }{c.Ingest, c.Pipeline, c.Store, pub, c.Catalog} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if err := c.StatusPipeline.ValidateAs(StatusPrefix); err != nil {
		return err
	}
	if w := c.Pipeline.Writers + c.StatusPipeline.Writers; w > int(c.Store.MaxConns) {
		return fmt.Errorf("-%s.%s (%d) + -%s.%s (%d) must not exceed -%s (%d): each writer holds a connection",
			pipeline.Prefix, pipeline.FlagWriters, c.Pipeline.Writers, StatusPrefix, pipeline.FlagWriters, c.StatusPipeline.Writers, store.FlagMaxConns, c.Store.MaxConns)
	}
	return nil
}
