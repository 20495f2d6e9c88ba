package store

import (
	"errors"
	"fmt"
	"time"
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

// withDefaults returns cfg with its zero fields replaced by the defaults.
func (cfg Config) withDefaults() Config {
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

// Validate reports what is wrong with cfg, naming the flag to change. Zero
// fields are valid (they mean the default).
func (cfg Config) Validate() error {
	var errs []error
	if cfg.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("-store.max-conns must be ≥ 1, got %d", cfg.MaxConns))
	}
	if cfg.TxTimeout < 0 {
		errs = append(errs, fmt.Errorf("-store.tx-timeout must be > 0, got %s", cfg.TxTimeout))
	} else if cfg.TxTimeout != 0 && cfg.TxTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("-store.tx-timeout must be ≥ 1ms (it bounds a whole batch transaction), got %s", cfg.TxTimeout))
	}
	if cfg.CopyMinRows < 0 {
		errs = append(errs, fmt.Errorf("-store.copy-min-rows must be ≥ 1, got %d", cfg.CopyMinRows))
	}
	if cfg.MaxRetries > 100 {
		errs = append(errs, fmt.Errorf("-store.max-retries must be ≤ 100, got %d", cfg.MaxRetries))
	}
	if cfg.RetryBackoff < 0 {
		errs = append(errs, fmt.Errorf("-store.retry-backoff must be ≥ 0, got %s", cfg.RetryBackoff))
	}
	if c := cfg.withDefaults(); c.TxTimeout > 0 && c.RetryBackoff > c.TxTimeout {
		errs = append(errs, fmt.Errorf("-store.retry-backoff (%s) must not exceed -store.tx-timeout (%s)", c.RetryBackoff, c.TxTimeout))
	}
	return errors.Join(errs...)
}
