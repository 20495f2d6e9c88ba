package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
)

// apiKeysEnv holds API keys as comma-separated NAME:KEY[:RATE[:BURST]] (or
// KEY) entries. It has no flag: a key on the command line shows in ps.
const apiKeysEnv = "ORDERFLOW_API_KEYS"

// loadAPIKeys reads the keys file (if any) and the environment entries (if
// any). Errors name the file or variable and the entry, never a key.
func loadAPIKeys(file, env string) ([]ingest.APIKey, error) {
	var keys []ingest.APIKey
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("-auth.keys-file: %w", err)
		}
		defer f.Close()
		k, err := ingest.ParseAPIKeys(f, "-auth.keys-file "+file)
		if err != nil {
			return nil, err
		}
		if len(k) == 0 {
			return nil, fmt.Errorf("-auth.keys-file %s holds no key: remove the flag to run without authentication", file)
		}
		keys = append(keys, k...)
	}
	if env != "" {
		k, err := ingest.ParseAPIKeys(strings.NewReader(env), apiKeysEnv)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// limitFlag is a flag.Value for ingest.Limit written RATE[,BURST].
type limitFlag struct{ l *ingest.Limit }

func (f limitFlag) String() string {
	if f.l == nil {
		return "0"
	}
	return f.l.String()
}

func (f limitFlag) Set(v string) error {
	l, err := ingest.ParseLimit(v)
	if err != nil {
		return err
	}
	*f.l = l
	return nil
}

// envOf maps a flag name to its environment variable: the names fixed by
// the contract, and ORDERFLOW_<NAME> (dots and dashes as underscores,
// upper case) for every other tunable.
func envOf(name string) string {
	switch name {
	case "database-url":
		return "DATABASE_URL"
	case "kafka-brokers":
		return "KAFKA_BROKERS"
	case "kafka-topic":
		return "KAFKA_TOPIC"
	}
	r := strings.NewReplacer(".", "_", "-", "_")
	return "ORDERFLOW_" + strings.ToUpper(r.Replace(name))
}

// parseConfig builds the engine configuration from args and environment.
// Flags win over environment variables; errors name the flag.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (engine.Config, slog.Level, error) {
	cfg := engine.DefaultConfig()
	fs := flag.NewFlagSet("orderflow", flag.ContinueOnError)
	fs.SetOutput(out)
	var brokers, level string
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "public HTTP listener")
	fs.StringVar(&cfg.AdminListen, "admin-listen", cfg.AdminListen, "admin listener: /metrics, /debug/pprof, /healthz, /readyz")
	fs.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "PostgreSQL connection URL")
	fs.StringVar(&brokers, "kafka-brokers", "", "comma-separated Kafka seed brokers; empty runs the embedded development broker")
	fs.StringVar(&cfg.KafkaTopic, "kafka-topic", cfg.KafkaTopic, "topic for order events")
	fs.StringVar(&cfg.EmbeddedKafkaAddr, "embedded-kafka-addr", cfg.EmbeddedKafkaAddr, "where the embedded broker listens (only with -kafka-brokers empty)")
	var parts int
	fs.IntVar(&parts, "embedded-kafka-partitions", int(cfg.EmbeddedKafkaPartitions), "partitions of the topic on the embedded broker")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "drain budget on SIGTERM")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", cfg.DrainDelay, "keep serving this long after /readyz turns 503 on SIGTERM")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	fs.IntVar(&cfg.MutexProfileFraction, "pprof.mutex-fraction", 0, "sample 1/N mutex contention events for /debug/pprof/mutex (0: off)")
	fs.IntVar(&cfg.BlockProfileRate, "pprof.block-rate", 0, "sample blocking events of at least N ns for /debug/pprof/block (0: off)")

	in := &cfg.Ingest
	fs.IntVar(&in.MaxInflight, "ingest.max-inflight", in.MaxInflight, "requests in progress at once; more wait up to -ingest.max-queue-wait, then 503")
	fs.DurationVar(&in.MaxQueueWait, "ingest.max-queue-wait", in.MaxQueueWait, "longest wait for an in-flight slot before 503")
	fs.DurationVar(&in.AckTimeout, "ingest.ack-timeout", in.AckTimeout, "longest wait for a commit before 503 (the order may still commit; retries converge)")
	fs.IntVar(&in.MaxBodyBytes, "ingest.max-body-bytes", in.MaxBodyBytes, "single order body limit in bytes, after gunzip too")
	fs.IntVar(&in.MaxBatchBodyBytes, "ingest.max-batch-body-bytes", in.MaxBatchBodyBytes, "bulk request body limit in bytes, after gunzip too")
	fs.IntVar(&in.MaxBatchItems, "ingest.max-batch-items", in.MaxBatchItems, "items per bulk request")
	fs.DurationVar(&in.ReadTimeout, "ingest.read-timeout", in.ReadTimeout, "time to read one request")
	fs.DurationVar(&in.WriteTimeout, "ingest.write-timeout", in.WriteTimeout, "time to write one response")
	fs.DurationVar(&in.IdleTimeout, "ingest.idle-timeout", in.IdleTimeout, "idle keep-alive connections are closed after this")
	fs.IntVar(&in.MaxHeaderBytes, "ingest.max-header-bytes", in.MaxHeaderBytes, "request line plus headers limit in bytes")
	fs.IntVar(&in.MaxConns, "ingest.max-conns", in.MaxConns, "open connections limit")
	fs.DurationVar(&in.RetryAfter, "ingest.retry-after", in.RetryAfter, "Retry-After sent with 503 (rounded up to seconds)")
	fs.Int64Var(&in.MaxInflightBodyBytes, "ingest.max-inflight-body-bytes", in.MaxInflightBodyBytes, "request body bytes (raw + gunzipped) held by requests in progress; more get 503 at once")
	fs.StringVar(&in.Decoder, "ingest.decoder", in.Decoder, "order body decoder: scanner (strict hand-written, the fastest) or jsoniter (the same answers on jsoniter's Iterator, 2-4x slower); status bodies always use the scanner")

	var keysFile string
	fs.StringVar(&keysFile, "auth.keys-file", "", "file of API keys, one NAME:KEY[:RATE[:BURST]] (or KEY) per line; with "+apiKeysEnv+" (comma-separated entries) the keys add up; none: authentication off")
	fs.Var(limitFlag{&in.PerKeyLimit}, "ratelimit.per-key", "each API key's limit RATE[,BURST] in requests/s (burst default ceil(RATE)); 0: off")
	fs.Var(limitFlag{&in.PerIPLimit}, "ratelimit.per-ip", "each client IP's limit RATE[,BURST] in requests/s, before authentication; 0: off")
	fs.IntVar(&in.MaxTrackedIPs, "ratelimit.max-tracked-ips", in.MaxTrackedIPs, "per-IP buckets kept in memory at most (idle ones are evicted first)")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "redis://host:port/db to share the rate limits among instances; empty: each instance limits alone")
	fs.DurationVar(&in.RedisTimeout, "redis-timeout", in.RedisTimeout, "longest wait for Redis per request before the local limit decides")

	pl := &cfg.Pipeline
	fs.IntVar(&pl.Writers, "pipeline.writers", pl.Writers, "concurrent group-commit writers (each holds one database connection)")
	fs.IntVar(&pl.QueueRows, "pipeline.queue-rows", pl.QueueRows, "orders waiting for a writer before new ones get 503")
	fs.IntVar(&pl.MaxBatchRows, "pipeline.batch-max-rows", pl.MaxBatchRows, "orders per transaction at most")
	fs.IntVar(&pl.MaxBatchBytes, "pipeline.batch-max-bytes", pl.MaxBatchBytes, "request bytes per transaction at most")
	fs.DurationVar(&pl.Linger, "pipeline.linger", pl.Linger, "wait this long for more orders before committing a partial batch (0: take what is queued)")
	fs.DurationVar(&pl.WriteTimeout, "pipeline.write-timeout", pl.WriteTimeout, "time budget of one batch commit, retries included")

	st := &cfg.Store
	var maxConns int
	fs.IntVar(&maxConns, "store.max-conns", int(st.MaxConns), "PostgreSQL pool size (≥ -pipeline.writers + 2 is sensible)")
	fs.DurationVar(&st.TxTimeout, "store.tx-timeout", st.TxTimeout, "time budget of one transaction attempt")
	fs.IntVar(&st.MaxRetries, "store.max-retries", st.MaxRetries, "retries of a batch after a retryable PostgreSQL error")
	fs.IntVar(&st.CopyMinRows, "store.copy-min-rows", st.CopyMinRows, "batches of at least this many orders go through COPY into a staging table; smaller ones insert from arrays")
	fs.DurationVar(&st.RetryBackoff, "store.retry-backoff", st.RetryBackoff, "base of the exponential retry backoff (with full jitter)")

	pb := &cfg.Publish
	fs.StringVar(&pb.Source, "kafka.source", pb.Source, "CloudEvents ce_source of published events")
	fs.IntVar(&pb.MaxBufferedRecords, "kafka.max-buffered-records", pb.MaxBufferedRecords, "records the Kafka client buffers before the fast path defers to the sweeper")
	fs.IntVar(&pb.MaxBufferedBytes, "kafka.max-buffered-bytes", pb.MaxBufferedBytes, "bytes the Kafka client buffers at most")
	fs.DurationVar(&pb.Linger, "kafka.linger", pb.Linger, "producer linger")
	fs.DurationVar(&pb.DeliveryTimeout, "kafka.delivery-timeout", pb.DeliveryTimeout, "a record not acknowledged in this time is left to the sweeper")
	fs.DurationVar(&pb.SweepInterval, "kafka.sweep-interval", pb.SweepInterval, "how often the outbox sweeper looks for unpublished events")
	fs.DurationVar(&pb.SweepGrace, "kafka.sweep-grace", pb.SweepGrace, "unacknowledged outbox events older than this are republished by the sweeper (> -kafka.delivery-timeout)")
	fs.IntVar(&pb.SweepLimit, "kafka.sweep-limit", pb.SweepLimit, "outbox events per sweep transaction at most")
	fs.DurationVar(&pb.DeleteInterval, "kafka.delete-interval", pb.DeleteInterval, "how often the broker's acknowledgements are recorded in the outbox")
	fs.IntVar(&pb.DeleteBatch, "kafka.delete-batch", pb.DeleteBatch, "acknowledgements recorded per statement at most")

	ct := &cfg.Catalog
	fs.DurationVar(&ct.RefreshInterval, "catalog.refresh-interval", ct.RefreshInterval, "how often changed products are re-read")
	fs.DurationVar(&ct.FullReloadEvery, "catalog.full-reload", ct.FullReloadEvery, "how often the whole catalog is reloaded")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: orderflow [seed-demo-catalog] [flags]\n\nEvery flag can also be set by the environment variable in brackets; the flag wins.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  -%s (default %q) [%s]\n    \t%s\n", f.Name, f.DefValue, envOf(f.Name), f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(envOf(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q (for -%s): %w", envOf(f.Name), v, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return cfg, 0, envErr
	}
	if brokers != "" {
		for _, b := range strings.Split(brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				cfg.KafkaBrokers = append(cfg.KafkaBrokers, b)
			}
		}
	}
	keys, err := loadAPIKeys(keysFile, getenv(apiKeysEnv))
	if err != nil {
		return cfg, 0, err
	}
	in.APIKeys = keys
	cfg.EmbeddedKafkaPartitions = int32(parts)
	st.MaxConns = int32(maxConns)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return cfg, 0, fmt.Errorf("-log-level: %w", err)
	}
	if maxConns < 1 {
		return cfg, 0, fmt.Errorf("-store.max-conns must be ≥ 1, got %d", maxConns)
	}
	if pl.Writers > maxConns {
		return cfg, 0, fmt.Errorf("-pipeline.writers (%d) must not exceed -store.max-conns (%d): each writer holds a connection", pl.Writers, maxConns)
	}
	return cfg, lvl, cfg.Validate()
}
