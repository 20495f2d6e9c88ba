package ingest

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

const (
	keyA = "key-a-0123456789abcdef"
	keyB = "key-b-0123456789abcdef"
)

// Auth: with keys configured, no or a wrong bearer token is 401 with a
// Bearer challenge and nothing is submitted; a right one passes. Made to
// fail once by letting authenticate accept any token ("match = 0"): the
// one-character-short key then got 201.
func TestAuthRequiresAValidKey(t *testing.T) {
	ts := newTestServer(t, Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}}, nil).serveInmemory()
	c := ts.client(nil)
	f := func(hdr []string, wantCode int, wantChallenge string) {
		t.Helper()
		before := ts.orders.submitted.Load()
		r := ts.post(c, validOrder, hdr...)
		if r.code != wantCode {
			t.Fatalf("POST with %q: got %s; want %d", hdr, r, wantCode)
		}
		if wantCode == fasthttp.StatusUnauthorized {
			if errorCode(r.body) != "unauthorized" {
				t.Errorf("POST with %q: body %s; want code unauthorized", hdr, r.body)
			}
			if got := r.header["Www-Authenticate"]; got != wantChallenge {
				t.Errorf("POST with %q: WWW-Authenticate = %q; want %q", hdr, got, wantChallenge)
			}
			if n := ts.orders.submitted.Load() - before; n != 0 {
				t.Errorf("POST with %q: %d orders submitted despite 401", hdr, n)
			}
		}
	}
	missing, invalid := `Bearer realm="orderflow"`, `Bearer realm="orderflow", error="invalid_token"`
	f(nil, 401, missing)
	f([]string{"Authorization", "Basic " + keyA}, 401, missing)
	f([]string{"Authorization", "Bearer "}, 401, missing)
	f([]string{"Authorization", "Bearer " + keyA[:len(keyA)-1]}, 401, invalid)
	f([]string{"Authorization", "Bearer " + keyA + "x"}, 401, invalid)
	f([]string{"Authorization", "Bearer " + strings.ToUpper(keyA)}, 401, invalid)
	f([]string{"Authorization", "Bearer " + keyA}, 201, "")
	f([]string{"Authorization", "bearer " + keyB}, 201, "") // the scheme is case-insensitive
	// Every route is guarded, unknown ones too.
	if r := do(c, "GET", "/v1/orders/ord_1", "", nil); r.code != 401 {
		t.Errorf("GET without a key: %s; want 401", r)
	}
	if r := do(c, "GET", "/nope", "", nil); r.code != 401 {
		t.Errorf("GET /nope without a key: %s; want 401", r)
	}
	if got := rejected(ts.m, "unauthorized"); got != 8 {
		t.Errorf("admission_rejected{unauthorized} = %v; want 8", got)
	}
}

// Without keys every request is anonymous: auth is off.
func TestAuthOffWithoutKeys(t *testing.T) {
	ts := newTestServer(t, Config{}, nil).serveInmemory()
	if ts.s.guard != nil {
		t.Fatal("guard built with no keys and no limits: the hot path pays for nothing configured")
	}
	if r := ts.post(ts.client(nil), validOrder); r.code != 201 {
		t.Fatalf("anonymous POST: %s; want 201", r)
	}
}

func check429(t *testing.T, r resp, wantLimit int) {
	t.Helper()
	if r.code != fasthttp.StatusTooManyRequests || errorCode(r.body) != "rate_limited" {
		t.Fatalf("got %s; want 429 rate_limited", r)
	}
	ra, err := strconv.Atoi(r.header["Retry-After"])
	if err != nil || ra < 1 {
		t.Errorf("Retry-After = %q; want whole seconds ≥ 1", r.header["Retry-After"])
	}
	if got := r.header["Ratelimit-Limit"]; got != strconv.Itoa(wantLimit) {
		t.Errorf("RateLimit-Limit = %q; want %d", got, wantLimit)
	}
	if got := r.header["Ratelimit-Remaining"]; got != "0" {
		t.Errorf("RateLimit-Remaining = %q; want 0", got)
	}
	if reset, err := strconv.Atoi(r.header["Ratelimit-Reset"]); err != nil || reset < ra {
		t.Errorf("RateLimit-Reset = %q; want seconds ≥ Retry-After %d", r.header["Ratelimit-Reset"], ra)
	}
}

// Per-key limit: each key has its own bucket (and may set its own limit);
// over it, 429 with Retry-After and RateLimit-* and nothing submitted.
// Made to fail once by sharing one bucket among all keys: key b's first
// request then got 429.
func TestRateLimitPerKey(t *testing.T) {
	ts := newTestServer(t, Config{
		APIKeys:     []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyB, Limit: Limit{Rate: 0.01, Burst: 5}}},
		PerKeyLimit: Limit{Rate: 0.01, Burst: 2},
	}, nil).serveInmemory()
	c := ts.client(nil)
	authA, authB := []string{"Authorization", "Bearer " + keyA}, []string{"Authorization", "Bearer " + keyB}
	for i := range 2 {
		if r := ts.post(c, validOrder, authA...); r.code != 201 {
			t.Fatalf("key a request %d: %s; want 201 (within burst 2)", i, r)
		}
	}
	before := ts.orders.submitted.Load()
	check429(t, ts.post(c, validOrder, authA...), 2)
	if ts.orders.submitted.Load() != before {
		t.Error("a 429 request was submitted")
	}
	for i := range 5 {
		if r := ts.post(c, validOrder, authB...); r.code != 201 {
			t.Fatalf("key b request %d: %s; want 201 (own bucket, burst 5)", i, r)
		}
	}
	check429(t, ts.post(c, validOrder, authB...), 5)
	if got := rejected(ts.m, "rate_limit_key"); got != 2 {
		t.Errorf("admission_rejected{rate_limit_key} = %v; want 2", got)
	}
}

// Per-IP limit: each client address has its own bucket, applied before
// authentication (so key guessing is limited too). Made to fail once by
// keying every client on one address: the second IP's first request got 429.
func TestRateLimitPerIP(t *testing.T) {
	ts := newTestServer(t, Config{PerIPLimit: Limit{Rate: 0.01, Burst: 3}}, nil).serveInmemory()
	c1, c2 := ts.client(tcpAddr("10.0.0.1")), ts.client(tcpAddr("2001:db8::1"))
	for i := range 3 {
		if r := do(c1, "GET", "/v1/orders/x", "", nil); r.code != 404 {
			t.Fatalf("ip1 request %d: %s; want 404 (not limited yet)", i, r)
		}
	}
	check429(t, do(c1, "GET", "/v1/orders/x", "", nil), 3)
	for i := range 3 {
		if r := do(c2, "GET", "/v1/orders/x", "", nil); r.code != 404 {
			t.Fatalf("ip2 request %d: %s; want 404 (own bucket)", i, r)
		}
	}
	check429(t, ts.post(c2, validOrder), 3)
	if ts.orders.submitted.Load() != 0 {
		t.Error("a 429 request was submitted")
	}
}

// The per-IP buckets stay bounded under an address-spraying client.
func TestIPLimiterBounded(t *testing.T) {
	il := newIPLimiter(Limit{Rate: 1, Burst: 1}, 1000)
	now := time.Now()
	for i := range 100000 {
		ip := ipKey(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).To4())
		if !il.get(ip, now).AllowN(now, 1) {
			t.Fatalf("new address %d limited on its first request", i)
		}
	}
	if n := il.tracked(); n > 1000+ipShards*4 {
		t.Fatalf("tracked buckets = %d; want ≤ about 1000", n)
	}
}

// redisURL is the Redis the shared-limit tests use; `make test` starts one
// (scripts/redis.sh). A Redis that does not answer fails the test.
func redisURL() string {
	if u := os.Getenv("ORDERFLOW_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s does not answer (run `make test`, which starts it, or set ORDERFLOW_TEST_REDIS_URL): %v", redisURL(), err)
	}
	return rdb
}

// Shared limit: two instances with one Redis share each key's and each IP's
// bucket, so together they admit the burst once, not once each. Made to
// fail once by leaving Deps.Redis nil on the second instance: 8 of 8 were
// admitted.
func TestRateLimitSharedInRedis(t *testing.T) {
	rdb := newRedis(t)
	name := fmt.Sprintf("shared-%d", time.Now().UnixNano()) // fresh Redis keys each run
	cfg := Config{APIKeys: []APIKey{{Name: name, Key: keyA}}, PerKeyLimit: Limit{Rate: 0.01, Burst: 5}}
	a := newTestServer(t, cfg, func(d *Deps) { d.Redis = rdb }).serveInmemory()
	b := newTestServer(t, cfg, func(d *Deps) { d.Redis = rdb }).serveInmemory()
	auth := []string{"Authorization", "Bearer " + keyA}
	ca, cb := a.client(nil), b.client(nil)
	ok := 0
	var last resp
	for i := range 8 {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		r := do(c, "GET", "/v1/orders/x", "", nil, auth...)
		switch r.code {
		case 404:
			ok++
		case 429:
			last = r
		default:
			t.Fatalf("request %d: %s", i, r)
		}
	}
	if ok != 5 {
		t.Fatalf("admitted %d of 8 across two instances; want exactly the shared burst 5", ok)
	}
	check429(t, last, 5)

	// Per IP, shared too (a fresh address so earlier runs do not count).
	ipCfg := Config{PerIPLimit: Limit{Rate: 0.01, Burst: 2}}
	x := newTestServer(t, ipCfg, func(d *Deps) { d.Redis = rdb }).serveInmemory()
	y := newTestServer(t, ipCfg, func(d *Deps) { d.Redis = rdb }).serveInmemory()
	n := time.Now().UnixNano()
	ip := tcpAddr(fmt.Sprintf("fd00::%x:%x", uint16(n>>16), uint16(n)))
	codes := []int{do(x.client(ip), "GET", "/v1/orders/x", "", nil).code, do(y.client(ip), "GET", "/v1/orders/x", "", nil).code,
		do(x.client(ip), "GET", "/v1/orders/x", "", nil).code}
	if codes[0] != 404 || codes[1] != 404 || codes[2] != 429 {
		t.Fatalf("per-IP shared: codes %v; want [404 404 429]", codes)
	}
}

// Redis away: the local bucket decides, requests are neither failed nor
// unlimited, and they are answered within a generous bound of RedisTimeout.
func TestRateLimitRedisDownFallsBackToLocal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	ts := newTestServer(t, Config{APIKeys: []APIKey{{Name: "a", Key: keyA}}, PerKeyLimit: Limit{Rate: 0.01, Burst: 2}, RedisTimeout: 100 * time.Millisecond},
		func(d *Deps) { d.Redis = rdb }).serveInmemory()
	c := ts.client(nil)
	auth := []string{"Authorization", "Bearer " + keyA}
	for i, want := range []int{404, 404, 429} {
		start := time.Now()
		r := do(c, "GET", "/v1/orders/x", "", nil, auth...)
		if r.code != want {
			t.Fatalf("request %d with Redis down: %s; want %d", i, r, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("request %d took %v with Redis down; want about RedisTimeout", i, d)
		}
	}
}

// Concurrent requests on one key never admit more than the burst.
func TestRateLimitConcurrent(t *testing.T) {
	ts := newTestServer(t, Config{APIKeys: []APIKey{{Name: "a", Key: keyA}}, PerKeyLimit: Limit{Rate: 0.001, Burst: 10}}, nil).serveInmemory()
	c := ts.client(nil)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				r := do(c, "GET", "/v1/orders/x", "", nil, "Authorization", "Bearer "+keyA)
				mu.Lock()
				counts[r.code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if counts[404] != 10 || counts[429] != 30 {
		t.Fatalf("codes %v; want 10×404 and 30×429", counts)
	}
}

func TestParseAPIKeys(t *testing.T) {
	f := func(in string, want []APIKey) {
		t.Helper()
		got, err := ParseAPIKeys(strings.NewReader(in), "test")
		if err != nil {
			t.Fatalf("ParseAPIKeys(%q): %v", in, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ParseAPIKeys(%q): got %+v; want %+v", in, got, want)
		}
	}
	f("", nil)
	f("# comment\n\n"+keyA+"\n", []APIKey{{Key: keyA}})
	f("ops:"+keyA+"\nbatch:"+keyB+":50:100\n", []APIKey{{Name: "ops", Key: keyA}, {Name: "batch", Key: keyB, Limit: Limit{Rate: 50, Burst: 100}}})
	f("ops:"+keyA+", batch:"+keyB+":2.5", []APIKey{{Name: "ops", Key: keyA}, {Name: "batch", Key: keyB, Limit: Limit{Rate: 2.5}}})

	bad := func(in string) {
		t.Helper()
		_, err := ParseAPIKeys(strings.NewReader(in), "test")
		if err == nil {
			t.Fatalf("ParseAPIKeys(%q): want an error", in)
		}
		if strings.Contains(err.Error(), "0123456789") {
			t.Fatalf("ParseAPIKeys(%q): the error %q shows the key", in, err)
		}
	}
	bad("short")
	bad("ops:0123456789 abcdef")
	bad(":" + keyA)
	bad("ops:" + keyA + ":fast")
	bad("ops:" + keyA + ":1:-2")
	bad("a:b:1:2:3")
}

func TestConfigValidateKeys(t *testing.T) {
	f := func(c Config, want string) {
		t.Helper()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(%+v): %v; want an error mentioning %q", c.PerIPLimit, err, want)
		}
		if strings.Contains(err.Error(), keyA) {
			t.Fatalf("Validate: the error %q shows the key", err)
		}
	}
	f(Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "a", Key: keyB}}}, "used twice")
	f(Config{APIKeys: []APIKey{{Name: "a", Key: keyA}, {Name: "b", Key: keyA}}}, "configured twice")
	f(Config{APIKeys: []APIKey{{Name: "a", Key: "short"}}}, "16–256")
	f(Config{PerIPLimit: Limit{Rate: -1}}, "-ratelimit.per-ip")
	f(Config{MaxInflightBodyBytes: -1}, "-ingest.max-inflight-body-bytes")
}

// A printed key shows its name, never the secret.
func TestAPIKeyStringRedacts(t *testing.T) {
	k := APIKey{Name: "ops", Key: keyA, Limit: Limit{Rate: 5, Burst: 10}}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", Config{APIKeys: []APIKey{k}}), fmt.Sprintf("%#v", k)} {
		if strings.Contains(s, keyA) || !strings.Contains(s, "ops") {
			t.Errorf("printed %q; want the name without the key", s)
		}
	}
}

func TestParseLimit(t *testing.T) {
	f := func(in string, want Limit, wantErr bool) {
		t.Helper()
		got, err := ParseLimit(in)
		if (err != nil) != wantErr || got != want {
			t.Fatalf("ParseLimit(%q) = %+v, %v; want %+v, error %v", in, got, err, want, wantErr)
		}
	}
	f("", Limit{}, false)
	f("0", Limit{}, false)
	f("100", Limit{Rate: 100}, false)
	f("0.5,3", Limit{Rate: 0.5, Burst: 3}, false)
	f("x", Limit{}, true)
	f("-1", Limit{}, true)
	f("1,b", Limit{}, true)
}
