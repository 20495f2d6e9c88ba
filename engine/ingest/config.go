package ingest

import (
	"fmt"
	"time"
)

// Config tunes the public HTTP front end. Zero fields take their defaults.
type Config struct {
	// MaxInflight is the number of requests that may be in progress at once
	// (decoding, queued or waiting for their commit). Default: 4096.
	MaxInflight int
	// MaxQueueWait is how long a request waits for an in-flight slot before
	// it is answered 503. Default: 50ms.
	MaxQueueWait time.Duration
	// AckTimeout is how long a request waits for its commit before it is
	// answered 503 (the order may still commit: a retry with the same id
	// converges). Default: 15s.
	AckTimeout time.Duration
	// MaxBodyBytes limits a single order's body, after gunzip too.
	// Default: 1 MiB.
	MaxBodyBytes int
	// MaxBatchBodyBytes limits a bulk request's body, after gunzip too.
	// Default: 16 MiB.
	MaxBatchBodyBytes int
	// MaxBatchItems limits the orders or updates in one bulk request.
	// Default: 10000.
	MaxBatchItems int
	// BulkChunkRows is the most orders (or status changes) of a bulk
	// request submitted as one pipeline item, and so committed in one
	// transaction. The engine sets it to -pipeline.batch-max-rows.
	// Default: 1000.
	BulkChunkRows int
	// ReadTimeout bounds reading one request, headers and body. Default: 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default: 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default: 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the request line plus headers. Default: 8 KiB.
	MaxHeaderBytes int
	// MaxConns limits open connections (fasthttp's Concurrency).
	// Default: 65536.
	MaxConns int
	// RetryAfter is the Retry-After sent with 503 answers. Default: 1s.
	RetryAfter time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		MaxInflight:       4096,
		MaxQueueWait:      50 * time.Millisecond,
		AckTimeout:        15 * time.Second,
		MaxBodyBytes:      1 << 20,
		MaxBatchBodyBytes: 16 << 20,
		MaxBatchItems:     10000,
		BulkChunkRows:     1000,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		MaxConns:          65536,
		RetryAfter:        time.Second,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.MaxInflight, d.MaxInflight)
	set(&c.MaxBodyBytes, d.MaxBodyBytes)
	set(&c.MaxBatchBodyBytes, d.MaxBatchBodyBytes)
	set(&c.MaxBatchItems, d.MaxBatchItems)
	set(&c.BulkChunkRows, d.BulkChunkRows)
	set(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	set(&c.MaxConns, d.MaxConns)
	setD(&c.MaxQueueWait, d.MaxQueueWait)
	setD(&c.AckTimeout, d.AckTimeout)
	setD(&c.ReadTimeout, d.ReadTimeout)
	setD(&c.WriteTimeout, d.WriteTimeout)
	setD(&c.IdleTimeout, d.IdleTimeout)
	setD(&c.RetryAfter, d.RetryAfter)
}

// Validate reports settings that cannot work, naming the flag.
func (c Config) Validate() error {
	for _, v := range []struct {
		name string
		val  int
	}{
		{"-ingest.max-inflight", c.MaxInflight}, {"-ingest.max-body-bytes", c.MaxBodyBytes},
		{"-ingest.max-batch-body-bytes", c.MaxBatchBodyBytes}, {"-ingest.max-batch-items", c.MaxBatchItems}, {"-ingest.bulk-chunk-rows", c.BulkChunkRows},
		{"-ingest.max-header-bytes", c.MaxHeaderBytes}, {"-ingest.max-conns", c.MaxConns},
	} {
		if v.val < 0 {
			return fmt.Errorf("%s must be ≥ 1, got %d", v.name, v.val)
		}
	}
	for _, v := range []struct {
		name string
		val  time.Duration
	}{
		{"-ingest.max-queue-wait", c.MaxQueueWait}, {"-ingest.ack-timeout", c.AckTimeout},
		{"-ingest.read-timeout", c.ReadTimeout}, {"-ingest.write-timeout", c.WriteTimeout},
		{"-ingest.idle-timeout", c.IdleTimeout}, {"-ingest.retry-after", c.RetryAfter},
	} {
		if v.val < 0 {
			return fmt.Errorf("%s must be > 0, got %s", v.name, v.val)
		}
	}
	if c.MaxBodyBytes > 0 && c.MaxBatchBodyBytes > 0 && c.MaxBodyBytes > c.MaxBatchBodyBytes {
		return fmt.Errorf("-ingest.max-body-bytes (%d) must not exceed -ingest.max-batch-body-bytes (%d)", c.MaxBodyBytes, c.MaxBatchBodyBytes)
	}
	return nil
}
