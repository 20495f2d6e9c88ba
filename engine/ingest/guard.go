package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"

	"github.com/orderflow/orderflow/engine/metrics"
)

// guard is the cheap-rejects-first layer every public request passes before
// routing: the per-IP token bucket, then the API key (401), then the key's
// own bucket (429). It reads headers and the peer address only, never the
// body. With no keys and no limits configured the Server holds no guard at
// all (one nil check on the hot path).
//
// Limits are local token buckets (golang.org/x/time/rate), one per key and
// one per client IP (bounded map), or, when a Redis client is given, GCRA
// buckets in Redis shared by every instance (redis_rate). When Redis fails
// or is slower than RedisTimeout, the local bucket decides (fail open to a
// per-instance limit, logged at most every 10s).
//
// Safe for concurrent use.
type guard struct {
	keys   atomic.Pointer[keySet] // no keys: authentication off; swapped by Server.SetAPIKeys
	ip     *ipLimiter             // nil: no per-IP limit
	shared *redis_rate.Limiter
	log    *slog.Logger

	redisTimeout  time.Duration
	lastRedisWarn atomic.Int64 // unix nanos of the last "redis failed" log

	rejUnauthorized, rejIP, rejKey prometheus.Counter
}

type keyEntry struct {
	digest   [sha256.Size]byte
	name     string
	limit    Limit
	local    *rate.Limiter // nil: no limit for this key
	redisKey string        // "orderflow:key:<name>": the name, never the key
}

func newGuard(cfg *Config, rdb redis.UniversalClient, m *metrics.Metrics, log *slog.Logger) *guard {
	if len(cfg.APIKeys) == 0 && !cfg.PerIPLimit.On() && !cfg.PerKeyLimit.On() {
		return nil
	}
	g := &guard{
		log:             log,
		redisTimeout:    cfg.RedisTimeout,
		rejUnauthorized: m.AdmissionRejected.WithLabelValues(reasonNames[reasonUnauthorized]),
		rejIP:           m.AdmissionRejected.WithLabelValues(reasonNames[reasonRateLimitIP]),
		rejKey:          m.AdmissionRejected.WithLabelValues(reasonNames[reasonRateLimitKey]),
	}
	g.keys.Store(newKeySet(cfg.APIKeys, cfg.PerKeyLimit, nil))
	if cfg.PerIPLimit.On() {
		g.ip = newIPLimiter(cfg.PerIPLimit, cfg.MaxTrackedIPs)
	}
	if rdb != nil && (cfg.PerIPLimit.On() || g.anyKeyLimit()) {
		g.shared = redis_rate.NewLimiter(rdb)
	}
	return g
}

func (g *guard) anyKeyLimit() bool {
	keys := g.keys.Load().keys
	for i := range keys {
		if keys[i].limit.On() {
			return true
		}
	}
	return false
}

var (
	hdrAuthorization   = []byte("Authorization")
	hdrWWWAuthenticate = []byte("WWW-Authenticate")
	hdrRLLimit         = []byte("RateLimit-Limit")
	hdrRLRemaining     = []byte("RateLimit-Remaining")
	hdrRLReset         = []byte("RateLimit-Reset")
	bearerPrefix       = []byte("bearer ")
	challengeMissing   = []byte(`Bearer realm="orderflow"`)
	challengeInvalid   = []byte(`Bearer realm="orderflow", error="invalid_token"`)
)

// check admits or answers the request. It returns false after writing a
// 401 or 429. It allocates nothing with local limits; a Redis round trip
// allocates (the key string, the script call).
func (g *guard) check(s *Server, ctx *fasthttp.RequestCtx) bool {
	now := time.Now()
	if g.ip != nil {
		ip := s.clientIP(ctx) // the TCP peer, or behind a trusted proxy the client it names
		d := g.allowIP(ip, now)
		if !d.allowed {
			g.rejIP.Inc()
			s.rateLimited(ctx, d, ansRateLimitedIP)
			return false
		}
	}
	if len(g.keys.Load().keys) == 0 {
		return true
	}
	k, challenge := g.authenticate(ctx.Request.Header.PeekBytes(hdrAuthorization))
	if k == nil {
		g.rejUnauthorized.Inc()
		ctx.Response.Header.SetBytesKV(hdrWWWAuthenticate, challenge)
		s.writeAnswer(ctx, ansUnauthorized)
		return false
	}
	if k.local != nil {
		d := g.allowKey(k, now)
		if !d.allowed {
			g.rejKey.Inc()
			s.rateLimited(ctx, d, ansRateLimitedKey)
			return false
		}
	}
	return true
}

// authenticate finds the key a header names. It hashes the token and
// compares the digest with every key's in constant time (no early exit, and
// equal-length inputs, so neither the position of the first differing byte
// nor the token's length shows in the timing). It returns the challenge to
// send when no key matched.
func (g *guard) authenticate(h []byte) (*keyEntry, []byte) {
	if len(h) < len(bearerPrefix) || !bytes.EqualFold(h[:len(bearerPrefix)], bearerPrefix) {
		return nil, challengeMissing
	}
	tok := bytes.TrimSpace(h[len(bearerPrefix):])
	if len(tok) == 0 {
		return nil, challengeMissing
	}
	d := sha256.Sum256(tok)
	keys := g.keys.Load().keys
	match := -1
	for i := range keys {
		eq := subtle.ConstantTimeCompare(d[:], keys[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil, challengeInvalid
	}
	return &keys[match], nil
}

// decision is one rate-limit verdict, with what the 429 headers need.
type decision struct {
	allowed    bool
	limit      int           // the burst: RateLimit-Limit
	remaining  int           // tokens left: RateLimit-Remaining
	retryAfter time.Duration // until one token is back
	reset      time.Duration // until the bucket is full again
}

func (g *guard) allowKey(k *keyEntry, now time.Time) decision {
	if g.shared != nil {
		if d, ok := g.allowShared(k.redisKey, k.limit); ok {
			return d
		}
	}
	return allowLocal(k.local, k.limit, now)
}

func (g *guard) allowIP(ip [16]byte, now time.Time) decision {
	if g.shared != nil {
		if d, ok := g.allowShared("orderflow:ip:"+net.IP(ip[:]).String(), g.ip.limit); ok {
			return d
		}
	}
	return allowLocal(g.ip.get(ip, now), g.ip.limit, now)
}

// allowShared asks Redis. ok=false means Redis failed and the caller
// decides locally.
func (g *guard) allowShared(key string, l Limit) (decision, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), g.redisTimeout)
	defer cancel()
	res, err := g.shared.Allow(ctx, key, redisLimit(l))
	if err != nil {
		now := time.Now().UnixNano()
		if last := g.lastRedisWarn.Load(); now-last > int64(10*time.Second) && g.lastRedisWarn.CompareAndSwap(last, now) {
			g.log.Warn("shared rate limit in Redis failed; limiting per instance until it answers (check -ratelimit.redis-url)", "err", err)
		}
		return decision{}, false
	}
	d := decision{allowed: res.Allowed > 0, limit: l.Burst, remaining: res.Remaining, reset: res.ResetAfter}
	if !d.allowed {
		d.retryAfter = res.RetryAfter
	}
	return d, true
}

// redisLimit expresses a (possibly fractional) rate per second as
// redis_rate's integer Rate per Period: rate×1000 per 1000 s has the same
// emission interval, 1/rate seconds.
func redisLimit(l Limit) redis_rate.Limit {
	return redis_rate.Limit{Rate: max(1, int(math.Round(l.Rate*1000))), Burst: l.Burst, Period: 1000 * time.Second}
}

// allowLocal takes one token from lim if there is one. It does not
// allocate (AllowN and TokensAt; ReserveN would allocate a Reservation).
func allowLocal(lim *rate.Limiter, l Limit, now time.Time) decision {
	ok := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	d := decision{allowed: ok, limit: l.Burst, remaining: max(0, int(tokens))}
	d.reset = secondsToDuration((float64(l.Burst) - tokens) / l.Rate)
	if !ok {
		d.retryAfter = secondsToDuration((1 - tokens) / l.Rate)
	}
	return d
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// rateLimited answers 429 with Retry-After and the RateLimit-* headers
// (whole seconds, rounded up; Retry-After at least 1).
func (s *Server) rateLimited(ctx *fasthttp.RequestCtx, d decision, a answer) {
	h := &ctx.Response.Header
	buf := getBuf()
	b := (*buf)[:0]
	b = strconv.AppendInt(b, max(1, ceilSeconds(d.retryAfter)), 10)
	h.SetBytesKV(hdrRetryAfter, b)
	b = strconv.AppendInt(b[:0], int64(d.limit), 10)
	h.SetBytesKV(hdrRLLimit, b)
	b = strconv.AppendInt(b[:0], int64(d.remaining), 10)
	h.SetBytesKV(hdrRLRemaining, b)
	b = strconv.AppendInt(b[:0], max(ceilSeconds(d.retryAfter), ceilSeconds(d.reset)), 10)
	h.SetBytesKV(hdrRLReset, b)
	*buf = b
	putBuf(buf)
	s.writeAnswer(ctx, a)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// ipKey is ip as a 16-byte map key (IPv4 in its IPv6-mapped form), built
// without net.IP.To16's allocation for 4-byte addresses.
func ipKey(ip net.IP) (k [16]byte) {
	switch len(ip) {
	case net.IPv4len:
		k[10], k[11] = 0xff, 0xff
		copy(k[12:], ip)
	case net.IPv6len:
		copy(k[:], ip)
	}
	return k
}

// ipLimiter holds one token bucket per client IP in a sharded map of
// bounded size. When a shard is full, buckets that are full again (idle
// clients: forgetting them changes nothing) are evicted; if that frees less
// than a quarter of the shard, arbitrary entries go too (those clients
// start over with a full bucket: under an address-spraying flood the limit
// fails open rather than growing memory without bound).
type ipLimiter struct {
	limit    Limit
	perShard int
	shards   [ipShards]ipShard
}

const ipShards = 64

type ipShard struct {
	mu sync.Mutex
	m  map[[16]byte]*rate.Limiter
	_  [40]byte // keep shards on separate cache lines
}

func newIPLimiter(l Limit, maxIPs int) *ipLimiter {
	il := &ipLimiter{limit: l, perShard: max(4, maxIPs/ipShards)}
	for i := range il.shards {
		il.shards[i].m = make(map[[16]byte]*rate.Limiter)
	}
	return il
}

func (il *ipLimiter) get(ip [16]byte, now time.Time) *rate.Limiter {
	h := (binary.LittleEndian.Uint64(ip[:8]) ^ binary.LittleEndian.Uint64(ip[8:])) * 0x9E3779B97F4A7C15
	sh := &il.shards[h>>(64-6)]
	sh.mu.Lock()
	lim := sh.m[ip]
	if lim == nil {
		if len(sh.m) >= il.perShard {
			il.evict(sh, now)
		}
		lim = rate.NewLimiter(rate.Limit(il.limit.Rate), il.limit.Burst)
		sh.m[ip] = lim
	}
	sh.mu.Unlock()
	return lim
}

// evict runs with sh.mu held.
func (il *ipLimiter) evict(sh *ipShard, now time.Time) {
	full := float64(il.limit.Burst)
	for k, lim := range sh.m {
		if lim.TokensAt(now) >= full {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) <= il.perShard*3/4 {
			break
		}
		delete(sh.m, k)
	}
}

// tracked reports the buckets held (for tests).
func (il *ipLimiter) tracked() int {
	n := 0
	for i := range il.shards {
		sh := &il.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
