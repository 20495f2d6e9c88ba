package publish

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/conf"
)

// Config configures a Publisher. The zero value of every field means "use
// the default"; DefaultConfig fills them in and New calls Validate. Flag
// names are the ones cmd/orderflow exposes.
type Config struct {
	// Brokers are the seed brokers (host:port), flag -kafka.brokers. Empty
	// is invalid for New: the engine starts the embedded broker
	// (StartEmbedded) and passes its Addrs instead.
	Brokers []string

	// Topic receives every order event, flag -kafka.topic. It must exist:
	// the client never fails records for an unknown topic (it retries until
	// DeliveryTimeout; the sweeper retries after that), so a missing topic
	// shows up as a growing outbox backlog, not as lost events.
	// Default: "orders".
	Topic string

	// Source is the CloudEvents ce_source header, flag -kafka.source.
	// Default: "orderflow".
	Source string

	// MaxBufferedRecords bounds the records the Kafka client holds that the
	// broker has not acknowledged yet (fast path and sweeper together),
	// flag -kafka.max-buffered-records. Past it the fast path skips events,
	// leaving them to the sweeper. Default: 100000.
	MaxBufferedRecords int

	// MaxBufferedBytes bounds the bytes (keys + values + headers) of those
	// records, flag -kafka.max-buffered-bytes. It is never unlimited; at
	// least 1 MiB so that any single event fits. Default: 256 MiB.
	MaxBufferedBytes int

	// Linger is how long the client waits for more records before sending a
	// partition's batch, flag -kafka.linger. Default: 5ms (see
	// BenchmarkPublish for the measurement behind it).
	Linger time.Duration

	// DeliveryTimeout is how long a sweep waits for the broker to
	// acknowledge its page before it rolls back (plus 5s of slack for
	// PostgreSQL), flag -kafka.delivery-timeout. At least 100ms.
	// Default: 10s.
	//
	// No record is ever failed on a timeout, on either path: a record
	// failed while a later event of its order, produced after it, got
	// through would publish that order out of version order. Records stay
	// in the client until acknowledged, within MaxBufferedRecords/Bytes;
	// what does not fit is left in the outbox for the sweeper.
	DeliveryTimeout time.Duration

	// SweepInterval is the time between sweeper runs, flag
	// -kafka.sweep-interval. A run that returned a full page sweeps again at
	// once. Default: 1s.
	SweepInterval time.Duration

	// SweepGrace is the age past which an unacknowledged outbox event counts
	// as abandoned by the fast path and is republished by the sweeper, flag
	// -kafka.sweep-grace. Events the fast path still holds (Kafka slow or
	// away) may be republished too: duplicates, in order, which consumers
	// drop by ce_id. An event whose acknowledgement is recorded is never
	// republished. It must exceed DeliveryTimeout. Default: 30s.
	SweepGrace time.Duration

	// SweepLimit is the number of events one sweep publishes at most (in
	// one transaction), flag -kafka.sweep-limit. Default: 1000.
	SweepLimit int

	// OrderWait is how long the fast path waits, at most, for another
	// instance to publish (or hold) the previous version of an order before
	// it leaves the new version to the sweeper, flag -kafka.order-wait (see
	// doc.go, "Across the fleet"). Default: 5s.
	OrderWait time.Duration

	// DeleteInterval is how often the acker records the broker's
	// acknowledgements in the outbox (one INSERT; no row is deleted), flag
	// -kafka.delete-interval. Default: 10ms.
	DeleteInterval time.Duration

	// DeleteBatch is the most acknowledgements one AckEvents call records;
	// reaching it wakes the acker before DeleteInterval, flag
	// -kafka.delete-batch. Default: 5000.
	DeleteBatch int

	// MetadataMinAge is the minimum time between the client's metadata
	// refreshes (kgo.MetadataMinAge), flag -kafka.metadata-min-age. Tests
	// that inject broker errors set 100ms. Default: kgo's (5s).
	MetadataMinAge time.Duration

	// ClientID is the Kafka client id, flag -kafka.client-id.
	// Default: kgo's ("kgo").
	ClientID string

	// Compression is the batch codec, "snappy" or "none", flag
	// -kafka.compression. Default: "snappy" (see BenchmarkPublish: order
	// JSON compresses about 2.5×, which the broker stores and replicates,
	// for a small producer CPU cost).
	Compression string

	// Security is TLS and SASL towards the brokers (flags -kafka.tls,
	// -kafka.sasl-mechanism and the others Security lists). Default:
	// plaintext, no authentication.
	Security Security

	// Tracer, when set, starts a span per record produced (tracing on).
	// Not a setting: the engine wires it. Nil: off.
	Tracer Tracer
}

// Defaults used by DefaultConfig.
const (
	DefaultTopic              = "orders"
	DefaultSource             = "orderflow"
	DefaultMaxBufferedRecords = 100_000
	DefaultMaxBufferedBytes   = 256 << 20
	DefaultLinger             = 5 * time.Millisecond
	DefaultDeliveryTimeout    = 10 * time.Second
	DefaultSweepInterval      = time.Second
	DefaultSweepGrace         = 30 * time.Second
	DefaultSweepLimit         = 1000
	DefaultOrderWait          = 5 * time.Second
	DefaultDeleteInterval     = 10 * time.Millisecond
	DefaultDeleteBatch        = 5000
	DefaultCompression        = "snappy"
)

// DefaultConfig returns a Config with every default filled in. Brokers,
// MetadataMinAge and ClientID have no default of their own.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns cfg with every zero field set to its default.
func (cfg Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.Compression == "" {
		cfg.Compression = DefaultCompression
	}
	defInt(&cfg.MaxBufferedRecords, DefaultMaxBufferedRecords)
	defInt(&cfg.MaxBufferedBytes, DefaultMaxBufferedBytes)
	defInt(&cfg.SweepLimit, DefaultSweepLimit)
	defInt(&cfg.DeleteBatch, DefaultDeleteBatch)
	def(&cfg.Linger, DefaultLinger)
	def(&cfg.DeliveryTimeout, DefaultDeliveryTimeout)
	def(&cfg.SweepInterval, DefaultSweepInterval)
	def(&cfg.SweepGrace, DefaultSweepGrace)
	def(&cfg.DeleteInterval, DefaultDeleteInterval)
	def(&cfg.OrderWait, DefaultOrderWait)
	return cfg
}

// Flag names of the publisher's settings. Brokers and Topic are set by the
// engine from its own settings of these names.
const (
	FlagBrokers            = "kafka.brokers"
	FlagTopic              = "kafka.topic"
	FlagSource             = "kafka.source"
	FlagMaxBufferedRecords = "kafka.max-buffered-records"
	FlagMaxBufferedBytes   = "kafka.max-buffered-bytes"
	FlagLinger             = "kafka.linger"
	FlagDeliveryTimeout    = "kafka.delivery-timeout"
	FlagSweepInterval      = "kafka.sweep-interval"
	FlagSweepGrace         = "kafka.sweep-grace"
	FlagSweepLimit         = "kafka.sweep-limit"
	FlagOrderWait          = "kafka.order-wait"
	FlagDeleteInterval     = "kafka.delete-interval"
	FlagDeleteBatch        = "kafka.delete-batch"
	FlagMetadataMinAge     = "kafka.metadata-min-age"
	FlagClientID           = "kafka.client-id"
	FlagCompression        = "kafka.compression"
)

// Settings lists c's settings but Brokers and Topic (the engine's), bound to
// c's fields, with their bounds.
func (c *Config) Settings() []conf.Setting {
	return append([]conf.Setting{
		conf.String(&c.Source, FlagSource, "CloudEvents ce_source of published events"),
		conf.Int(&c.MaxBufferedRecords, FlagMaxBufferedRecords, "records the Kafka client holds unacknowledged before the fast path leaves events to the sweeper").Min(1),
		conf.Int(&c.MaxBufferedBytes, FlagMaxBufferedBytes, "bytes of those records at most (at least 1 MiB, so that any event fits)").Min(1 << 20),
		conf.Duration(&c.Linger, FlagLinger, "producer linger: wait this long for more records before sending a partition's batch").Min(0).Max(int64(time.Minute)),
		conf.Duration(&c.DeliveryTimeout, FlagDeliveryTimeout, "a sweep waits this long for the broker to acknowledge its page before it rolls back").Min(int64(100 * time.Millisecond)),
		conf.Duration(&c.SweepInterval, FlagSweepInterval, "how often the outbox sweeper looks for unpublished events").Min(1),
		conf.Duration(&c.SweepGrace, FlagSweepGrace, "unacknowledged outbox events older than this are republished by the sweeper (> -"+FlagDeliveryTimeout+")").Min(1),
		conf.Int(&c.SweepLimit, FlagSweepLimit, "outbox events per sweep transaction at most").Min(1),
		conf.Duration(&c.OrderWait, FlagOrderWait, "how long the fast path waits for another instance to publish an order's previous version before it leaves the new one to the sweeper").Min(int64(time.Millisecond)),
		conf.Duration(&c.DeleteInterval, FlagDeleteInterval, "how often the broker's acknowledgements are recorded in the outbox").Min(1),
		conf.Int(&c.DeleteBatch, FlagDeleteBatch, "acknowledgements recorded per statement at most").Min(1),
		conf.Duration(&c.MetadataMinAge, FlagMetadataMinAge, "least time between the Kafka client's metadata refreshes (0: the client's default, 5s)").Min(0),
		conf.String(&c.ClientID, FlagClientID, "Kafka client id (empty: the client's default, kgo)"),
		conf.String(&c.Compression, FlagCompression, "producer batch compression: snappy or none").OneOf("snappy", "none"),
	}, c.Security.settings()...)
}

// Validate reports the first setting that is out of range or does not go
// with another, naming its flag. Zero fields count as their defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("-%s: no brokers (leave it empty only to run the embedded broker)", FlagBrokers)
	case c.Topic == "":
		return fmt.Errorf("-%s: empty topic", FlagTopic)
	}
	if err := conf.Validate(c.Settings()); err != nil {
		return err
	}
	if c.SweepGrace <= c.DeliveryTimeout {
		return fmt.Errorf("-%s: %v, want more than -%s (%v) so the sweeper does not republish records still in flight",
			FlagSweepGrace, c.SweepGrace, FlagDeliveryTimeout, c.DeliveryTimeout)
	}
	return c.Security.validate()
}

// kgoOpts translates c into franz-go options: the one place functional
// options appear (Security's come from Security.kgoOpts). log, the
// client's logger and hooks, may be nil.
func (c Config) kgoOpts(log *kgoLogger) []kgo.Opt {
	codec := kgo.SnappyCompression()
	if c.Compression == "none" {
		codec = kgo.NoCompression()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		// acks=all and idempotence (kgo's default, never disabled): a
		// record is acknowledged only once every in-sync replica has it,
		// and retries inside one producer session neither duplicate nor
		// reorder records of a partition.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Key = order id, hashed with Kafka's murmur2 like the Java client:
		// all events of an order land in one partition, in produce order.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// The topic is pre-created (by operators, or SeedTopics in the
		// embedded broker). Never failing records for an unknown topic
		// means a topic that is briefly missing from metadata costs
		// latency, not a failed record; DeliveryTimeout still bounds it.
		kgo.UnknownTopicRetries(-1),
		// The publisher enforces MaxBufferedRecords/Bytes itself before
		// handing a record over (a record the client refused with
		// ErrMaxBuffered after a later one of its order got in would break
		// per-order order). The client's own bounds sit above them, with
		// room for the races between the fast path's and the sweeper's
		// checks, as a backstop that should never trigger.
		kgo.MaxBufferedRecords(c.MaxBufferedRecords + c.SweepLimit + 4096),
		kgo.MaxBufferedBytes(c.MaxBufferedBytes + c.MaxBufferedBytes/8),
		kgo.ProducerLinger(c.Linger),
		// No kgo.RecordDeliveryTimeout: see DeliveryTimeout.
		kgo.ProducerBatchCompression(codec),
	}
	if c.MetadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(c.MetadataMinAge))
	}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if log != nil {
		opts = append(opts, kgo.WithLogger(log), kgo.WithHooks(log))
	}
	return opts
}
