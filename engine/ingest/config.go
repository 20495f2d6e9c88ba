package ingest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/internal/conf"
)

// Config tunes the public HTTP front end. Zero fields take their defaults.
type Config struct {
	// TLS is HTTPS on the public listener (-tls-cert-file, -tls-key-file).
	// Default: plain HTTP.
	TLS TLSConfig
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
	// transaction. Default: 1000 (an engine.Config whose BulkChunkRows is
	// 0 uses its Pipeline.MaxBatchRows).
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
	// MaxInflightBodyBytes caps the request body bytes (raw plus
	// decompressed) held by admitted requests at once. A request that would
	// exceed it is answered 503 + Retry-After at once; a request is always
	// admitted when no other body is held, so one body larger than the cap
	// can still pass alone. Default: 256 MiB.
	MaxInflightBodyBytes int64

	// LingerTimeout bounds a lingering close. After an answer that closes
	// the connection before the request was read to its end (413 for a
	// body over the limit, 431, 400 for a malformed request; not 408), the
	// server shuts its sending side and reads and discards what the client
	// still sends, for at most this long, so that the client reads the
	// answer instead of a connection reset. Default: 10s.
	LingerTimeout time.Duration
	// LingerMaxBytes bounds the bytes discarded in one lingering close.
	// Default: 1 GiB (64× the default bulk body limit).
	LingerMaxBytes int64
	// LingerMaxConns bounds the connections in a lingering close at once;
	// past it a connection is closed at once (its client may see a reset).
	// Default: 1024.
	LingerMaxConns int

	// APIKeys are the accepted bearer tokens. Empty: authentication is off
	// and every request is anonymous (rate-limited per client IP only).
	// With keys, a request without `Authorization: Bearer <a key>` gets 401.
	// Keys are compared in constant time and never logged.
	APIKeys []APIKey
	// PerKeyLimit is each API key's own token bucket (requests/s, burst),
	// unless the key sets its own. Zero Rate: no per-key limit. Default: off.
	PerKeyLimit Limit
	// PerIPLimit is each client IP's token bucket, applied to every request
	// before authentication. Zero Rate: no per-IP limit. Default: off.
	PerIPLimit Limit
	// TrustedProxies are the networks (CIDR prefixes, or single addresses)
	// of the load balancers and proxies in front of the server. Only when
	// the TCP peer is in one of them is X-Forwarded-For read, and then its
	// right-most address outside them is the client IP the per-IP limit
	// keys on. Empty: the TCP peer is the client (X-Forwarded-For is
	// ignored). Default: empty.
	TrustedProxies []string
	// MaxTrackedIPs bounds the per-IP buckets kept in memory; idle (full)
	// buckets are evicted first. Default: 100000.
	MaxTrackedIPs int
	// RedisTimeout bounds one shared rate-limit call to Redis; after it (or
	// any Redis error) the request is judged by the local bucket instead.
	// Default: 50ms.
	RedisTimeout time.Duration

	// Decoder decodes order bodies (POST /v1/orders and each item of POST
	// /v1/order-batches): DecoderScanner or DecoderJsoniter. Both give the
	// same answer to every body; the scanner is 2-4x faster. Status-change
	// bodies and the splitting of bulk bodies always use the scanner.
	// Default: DecoderScanner.
	Decoder string
}

// The order decoders Config.Decoder names.
const (
	DecoderScanner  = "scanner"  // the strict hand-written scanner (order.(*Batch).DecodeOrder)
	DecoderJsoniter = "jsoniter" // the same contract on jsoniter's Iterator (order.(*Batch).DecodeOrderJsoniter)
)

// Limit is a token bucket: Rate tokens (requests) per second refill it,
// and it holds at most Burst. A zero Rate means no limit; a zero Burst
// defaults to max(1, ceil(Rate)).
type Limit struct {
	Rate  float64
	Burst int
}

// On reports whether the limit is set.
func (l Limit) On() bool { return l.Rate > 0 }

// APIKey is one accepted bearer token.
type APIKey struct {
	// Name identifies the key in logs, metrics and the shared (Redis)
	// limit; it is not secret. Default: "key<N>" (its position, from 1).
	Name string
	// Key is the secret token: 16–256 visible ASCII characters.
	Key string
	// Limit overrides PerKeyLimit for this key when its Rate is set.
	Limit Limit
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

		MaxInflightBodyBytes: 256 << 20,
		LingerTimeout:        10 * time.Second,
		LingerMaxBytes:       1 << 30,
		LingerMaxConns:       1024,
		MaxTrackedIPs:        100000,
		RedisTimeout:         50 * time.Millisecond,
		Decoder:              DecoderScanner,
	}
}

// WithDefaults returns c with its zero fields set to their defaults (and
// each unnamed API key named by its position), leaving c's APIKeys as they
// are.
func (c Config) WithDefaults() Config {
	c.APIKeys = slices.Clone(c.APIKeys)
	c.fill()
	return c
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
	setD(&c.RedisTimeout, d.RedisTimeout)
	set(&c.MaxTrackedIPs, d.MaxTrackedIPs)
	set(&c.LingerMaxConns, d.LingerMaxConns)
	setD(&c.LingerTimeout, d.LingerTimeout)
	if c.LingerMaxBytes == 0 {
		c.LingerMaxBytes = d.LingerMaxBytes
	}
	if c.MaxInflightBodyBytes == 0 {
		c.MaxInflightBodyBytes = d.MaxInflightBodyBytes
	}
	if c.Decoder == "" {
		c.Decoder = d.Decoder
	}
	c.PerKeyLimit.fill()
	c.PerIPLimit.fill()
	for i := range c.APIKeys {
		k := &c.APIKeys[i]
		if k.Name == "" {
			k.Name = "key" + strconv.Itoa(i+1)
		}
		k.Limit.fill()
	}
}

func (l *Limit) fill() {
	if l.Rate > 0 && l.Burst == 0 {
		l.Burst = max(1, int(math.Ceil(l.Rate)))
	}
}

func (l Limit) validate(name string) error {
	if l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Burst < 0 {
		return fmt.Errorf("%s must be a rate ≥ 0 requests/s and a burst ≥ 0, got %g,%d", name, l.Rate, l.Burst)
	}
	return nil
}

// ValidKey reports why k cannot be an API key token, or nil.
func ValidKey(k string) error {
	if len(k) < 16 || len(k) > 256 {
		return fmt.Errorf("an API key must be 16–256 characters, got %d", len(k))
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e || c == ',' || c == ':' {
			return errors.New("an API key must be visible ASCII without ',' or ':'")
		}
	}
	return nil
}

// Flag names of the front end's settings.
const (
	FlagMaxInflight          = "ingest.max-inflight"
	FlagMaxQueueWait         = "ingest.max-queue-wait"
	FlagAckTimeout           = "ingest.ack-timeout"
	FlagMaxBodyBytes         = "ingest.max-body-bytes"
	FlagMaxBatchBodyBytes    = "ingest.max-batch-body-bytes"
	FlagMaxBatchItems        = "ingest.max-batch-items"
	FlagBulkChunkRows        = "ingest.bulk-chunk-rows"
	FlagReadTimeout          = "ingest.read-timeout"
	FlagWriteTimeout         = "ingest.write-timeout"
	FlagIdleTimeout          = "ingest.idle-timeout"
	FlagMaxHeaderBytes       = "ingest.max-header-bytes"
	FlagMaxConns             = "ingest.max-conns"
	FlagRetryAfter           = "ingest.retry-after"
	FlagMaxInflightBodyBytes = "ingest.max-inflight-body-bytes"
	FlagDecoder              = "ingest.decoder"
	FlagLingerTimeout        = "ingest.linger-timeout"
	FlagLingerMaxBytes       = "ingest.linger-max-bytes"
	FlagLingerMaxConns       = "ingest.linger-max-conns"

	FlagPerKeyLimit    = "ratelimit.per-key"
	FlagPerIPLimit     = "ratelimit.per-ip"
	FlagMaxTrackedIPs  = "ratelimit.max-tracked-ips"
	FlagTrustedProxies = "ingest.trusted-proxies"
	FlagRedisTimeout   = "ratelimit.redis-timeout"
)

// Settings lists c's settings but APIKeys (read from a file and the
// environment by cmd/orderflow), bound to c's fields, with their bounds.
func (c *Config) Settings() []conf.Setting {
	return append(c.TLS.tlsSettings(),
		conf.Int(&c.MaxInflight, FlagMaxInflight, "requests in progress at once; more wait up to -"+FlagMaxQueueWait+", then 503").Min(1),
		conf.Duration(&c.MaxQueueWait, FlagMaxQueueWait, "longest wait for an in-flight slot before 503").Min(1),
		conf.Duration(&c.AckTimeout, FlagAckTimeout, "longest wait for a commit before 503 (the order may still commit; retries converge)").Min(1),
		conf.Int(&c.MaxBodyBytes, FlagMaxBodyBytes, "single order body limit in bytes, after gunzip too (≤ -"+FlagMaxBatchBodyBytes+")").Min(1),
		conf.Int(&c.MaxBatchBodyBytes, FlagMaxBatchBodyBytes, "bulk request body limit in bytes, after gunzip too").Min(1),
		conf.Int(&c.MaxBatchItems, FlagMaxBatchItems, "items per bulk request").Min(1),
		conf.Int(&c.BulkChunkRows, FlagBulkChunkRows, "items of a bulk request committed together as one pipeline item (in one transaction)").Min(1),
		conf.Duration(&c.ReadTimeout, FlagReadTimeout, "time to read one request").Min(1),
		conf.Duration(&c.WriteTimeout, FlagWriteTimeout, "time to write one response").Min(1),
		conf.Duration(&c.IdleTimeout, FlagIdleTimeout, "idle keep-alive connections are closed after this").Min(1),
		conf.Int(&c.MaxHeaderBytes, FlagMaxHeaderBytes, "request line plus headers limit in bytes").Min(1),
		conf.Int(&c.MaxConns, FlagMaxConns, "open connections limit").Min(1),
		conf.Duration(&c.RetryAfter, FlagRetryAfter, "Retry-After sent with 503 (rounded up to seconds)").Min(1),
		conf.Int(&c.MaxInflightBodyBytes, FlagMaxInflightBodyBytes, "request body bytes (raw + gunzipped) held by requests in progress; more get 503 at once").Min(1),
		conf.Duration(&c.LingerTimeout, FlagLingerTimeout, "after an answer sent before its request was read to the end (413), how long the server keeps reading and discarding what the client still sends before it closes").Min(1),
		conf.Int(&c.LingerMaxBytes, FlagLingerMaxBytes, "bytes read and discarded at most after such an answer before the connection is closed").Min(1),
		conf.Int(&c.LingerMaxConns, FlagLingerMaxConns, "connections reading and discarding after such an answer at once; past it a connection is closed at once").Min(1),
		conf.String(&c.Decoder, FlagDecoder, "order body decoder: "+DecoderScanner+" (strict hand-written, the fastest) or "+DecoderJsoniter+" (the same answers on jsoniter's Iterator, 2-4x slower); status bodies always use the scanner").OneOf(DecoderScanner, DecoderJsoniter),

		conf.Var(&c.PerKeyLimit, FlagPerKeyLimit, "each API key's limit RATE[,BURST] in requests/s (burst default ceil(RATE)); 0: off"),
		conf.Var(&c.PerIPLimit, FlagPerIPLimit, "each client IP's limit RATE[,BURST] in requests/s, before authentication; 0: off"),
		conf.List(&c.TrustedProxies, FlagTrustedProxies, "comma-separated CIDR prefixes (or addresses) of trusted load balancers and proxies: only from such a peer is the right-most untrusted address of X-Forwarded-For the client IP (for -"+FlagPerIPLimit+"); empty: the TCP peer is the client"),
		conf.Int(&c.MaxTrackedIPs, FlagMaxTrackedIPs, "per-IP buckets kept in memory at most (idle ones are evicted first)").Min(1),
		conf.Duration(&c.RedisTimeout, FlagRedisTimeout, "longest wait for Redis per request before the local limit decides").Min(1).DeprecatedNames("redis-timeout"),
	)
}

// Set parses RATE[,BURST] (see ParseLimit): *Limit is a flag.Value.
func (l *Limit) Set(v string) error {
	p, err := ParseLimit(v)
	if err != nil {
		return err
	}
	*l = p
	return nil
}

// Validate reports settings that cannot work, naming the flag. Zero fields
// are checked with their default values.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := conf.Validate(c.Settings()); err != nil {
		return err
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	if err := c.PerKeyLimit.validate("-" + FlagPerKeyLimit); err != nil {
		return err
	}
	if err := c.PerIPLimit.validate("-" + FlagPerIPLimit); err != nil {
		return err
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		return err
	}
	names := make(map[string]bool, len(c.APIKeys))
	keys := make(map[string]bool, len(c.APIKeys))
	for i, k := range c.APIKeys {
		// Errors name the key by position and name, never by its value.
		if err := ValidKey(k.Key); err != nil {
			return fmt.Errorf("API key %d (%q): %w", i+1, k.Name, err)
		}
		if err := k.Limit.validate(fmt.Sprintf("API key %d (%q) limit", i+1, k.Name)); err != nil {
			return err
		}
		if names[k.Name] {
			return fmt.Errorf("API key %d: name %q is used twice", i+1, k.Name)
		}
		if keys[k.Key] {
			return fmt.Errorf("API key %d (%q): the same key is configured twice", i+1, k.Name)
		}
		names[k.Name], keys[k.Key] = true, true
	}
	if c.MaxBodyBytes > c.MaxBatchBodyBytes {
		return fmt.Errorf("-%s (%d) must not exceed -%s (%d)", FlagMaxBodyBytes, c.MaxBodyBytes, FlagMaxBatchBodyBytes, c.MaxBatchBodyBytes)
	}
	return nil
}
