package store

import (
	"fmt"
	"time"

	"github.com/orderflow/orderflow/internal/conf"
)

// Config configures a Store. The zero value of every field means its default;
// DefaultConfig returns them all. Config cannot change after New.
type Config struct {
	// URL is the PostgreSQL connection URL (or key=value DSN).
	// Default: postgres://127.0.0.1:5432/orderflow?sslmode=disable.
	URL string
	// MaxConns is the size of the connection pool, which is also the number
	// of batch transactions that can run at once. Default: 4.
	MaxConns int32
	// TxTimeout bounds one batch transaction (one attempt), from BEGIN to the
	// answer to COMMIT. Default: 5s.
	TxTimeout time.Duration
	// MaxRetries is how many times a batch transaction that failed with a
	// retryable error (serialization failure, deadlock, lost connection, …)
	// is tried again. Default: 3; negative: never retry.
	MaxRetries int
	// RetryBackoff is the base of the exponential backoff between retries,
	// with full jitter: retry n sleeps a random time in [0, RetryBackoff·2ⁿ).
	// Default: 10ms.
	RetryBackoff time.Duration
	// CopyMinRows is the batch size from which new orders go through COPY
	// into the per-connection staging table; smaller batches insert straight
	// from arrays (INSERT … SELECT FROM unnest). The staging table costs a
	// truncate at every COMMIT (ON COMMIT DELETE ROWS), which dominates small
	// transactions; COPY wins on large ones (BenchmarkWriteOrders, method=…).
	// 1 means always COPY. Default: 256.
	CopyMinRows int
}

// DefaultURL is the database Config.URL names by default.
const DefaultURL = "postgres://127.0.0.1:5432/orderflow?sslmode=disable"

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		URL:          DefaultURL,
		MaxConns:     4,
		TxTimeout:    5 * time.Second,
		MaxRetries:   3,
		RetryBackoff: 10 * time.Millisecond,
		CopyMinRows:  256,
	}
}

// WithDefaults returns cfg with its zero fields replaced by the defaults.
func (cfg Config) WithDefaults() Config {
	d := DefaultConfig()
	if cfg.URL == "" {
		cfg.URL = d.URL
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = d.MaxConns
	}
	if cfg.TxTimeout == 0 {
		cfg.TxTimeout = d.TxTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = d.MaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = d.RetryBackoff
	}
	if cfg.CopyMinRows == 0 {
		cfg.CopyMinRows = d.CopyMinRows
	}
	return cfg
}

// Flag names of the store's settings.
const (
	FlagDatabaseURL  = "store.database-url" // set by the engine (engine.Config.DatabaseURL)
	FlagMaxConns     = "store.max-conns"
	FlagTxTimeout    = "store.tx-timeout"
	FlagMaxRetries   = "store.max-retries"
	FlagRetryBackoff = "store.retry-backoff"
	FlagCopyMinRows  = "store.copy-min-rows"
)

// Settings lists cfg's settings but URL (the engine's, flag
// -store.database-url), bound to cfg's fields, with their bounds.
func (cfg *Config) Settings() []conf.Setting {
	return []conf.Setting{
		conf.Int(&cfg.MaxConns, FlagMaxConns, "PostgreSQL pool size (at least -pipeline.writers + -status-pipeline.writers; 2 more is sensible)").Min(1),
		conf.Duration(&cfg.TxTimeout, FlagTxTimeout, "time budget of one transaction attempt").Min(int64(time.Millisecond)),
		conf.Int(&cfg.MaxRetries, FlagMaxRetries, "retries of a batch after a retryable PostgreSQL error (0: the default 3; negative: none)").Max(100),
		conf.Duration(&cfg.RetryBackoff, FlagRetryBackoff, "base of the exponential retry backoff, with full jitter (≤ -store.tx-timeout)").Min(0),
		conf.Int(&cfg.CopyMinRows, FlagCopyMinRows, "batches of at least this many orders go through COPY into a staging table; smaller ones insert from arrays (1: always COPY)").Min(1),
	}
}

// Validate reports what is wrong with cfg, naming the flag to change. Zero
// fields are checked with their default values.
func (cfg Config) Validate() error {
	cfg = cfg.WithDefaults()
	if err := conf.Validate(cfg.Settings()); err != nil {
		return err
	}
	if cfg.RetryBackoff > cfg.TxTimeout {
		return fmt.Errorf("-%s (%s) must not exceed -%s (%s)", FlagRetryBackoff, cfg.RetryBackoff, FlagTxTimeout, cfg.TxTimeout)
	}
	return nil
}
