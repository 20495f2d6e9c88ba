package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine"
)

// The end-to-end benchmarks (BenchmarkE2E*) load a target: by default an
// orderflow they start in-process on a fresh database (startServer); with
// -target (or ORDERFLOW_BENCH_TARGET) an orderflow that already runs, for
// instance a staging fleet behind its balancer:
//
//	go test -run XXX -bench E2E ./bench/ -args -target https://staging.example/ -api-key …
//
// The API has no product listing, so the SKUs the orders use cannot be read
// from the target: they are the demo catalog that `orderflow
// seed-demo-catalog` creates (engine.DemoProducts), or -skus. Every order id
// is bench_<run id>_<n>, the run id fresh per process (printed once), so
// repeated runs against one deployment never collide. The database
// benchmarks, which need a PostgreSQL of their own, skip under -target.

// Flags of the end-to-end benchmarks, after -args; each falls back to its
// environment variable when empty.
var (
	flagTarget = flag.String("target", "", "base URL (http or https) of a running orderflow for the BenchmarkE2E* benchmarks to load instead of starting one in-process (env "+envTarget+"); the database benchmarks skip")
	flagAPIKey = flag.String("api-key", "", "with -target: API key sent as Authorization: Bearer (env "+envAPIKey+", which keeps it out of ps)")
	flagCAFile = flag.String("ca-file", "", "with an https -target: PEM file of the CAs its certificate chains to (env "+envCAFile+"; default: the system roots)")
	flagSKUs   = flag.String("skus", "", "with -target: comma-separated SKUs, each active in the target's catalog (env "+envSKUs+"; default: the demo catalog of `orderflow seed-demo-catalog`)")
)

// Environment variables of the flags above.
const (
	envTarget = "ORDERFLOW_BENCH_TARGET"
	envAPIKey = "ORDERFLOW_BENCH_API_KEY"
	envCAFile = "ORDERFLOW_BENCH_CA_FILE"
	envSKUs   = "ORDERFLOW_BENCH_SKUS"
)

// settings say which orderflow the end-to-end benchmarks load.
type settings struct {
	URL    string   // "": start one in-process
	APIKey string   // "": no Authorization header
	CAFile string   // "": the system roots
	SKUs   []string // nil: demoSKUs
}

// settingsOf reads the flags, each falling back to its variable in getenv.
func settingsOf(getenv func(string) string) settings {
	or := func(flagValue, env string) string {
		if flagValue != "" {
			return flagValue
		}
		return strings.TrimSpace(getenv(env))
	}
	s := settings{URL: or(*flagTarget, envTarget), APIKey: or(*flagAPIKey, envAPIKey), CAFile: or(*flagCAFile, envCAFile)}
	for sku := range strings.SplitSeq(or(*flagSKUs, envSKUs), ",") {
		if sku = strings.TrimSpace(sku); sku != "" {
			s.SKUs = append(s.SKUs, sku)
		}
	}
	return s
}

// demoSKUs are the SKUs of the demo catalog, the default SKUs of orders.
func demoSKUs() []string {
	skus := make([]string, len(engine.DemoProducts))
	for i, p := range engine.DemoProducts {
		skus[i] = p.SKU
	}
	return skus
}

// runID makes this process's order ids unique: UTC start time to the
// second and 4 random hex digits, e.g. 20261129T101500-9f3a. Every order of
// the process is bench_<runID>_<n>, n from orderSeq.
var runID = func() string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}()

// orderSeq hands out order numbers, process-wide: a sub-benchmark that the
// framework runs again (growing b.N) never reuses an id.
var orderSeq atomic.Uint64

// takeOrders reserves k order numbers and returns the first.
func takeOrders(k int) uint64 { return orderSeq.Add(uint64(k)) - uint64(k) + 1 }

// orderPrefix is the prefix of every order id this process sends.
func orderPrefix() string { return "bench_" + runID + "_" }

func appendOrderID(dst []byte, n uint64) []byte {
	dst = append(dst, "bench_"...)
	dst = append(dst, runID...)
	dst = append(dst, '_')
	return strconv.AppendUint(dst, n, 10)
}

// target is an orderflow the benchmarks send to. Read-only once built:
// safe for concurrent use.
type target struct {
	base  string // scheme://host[:port][/path], no trailing slash
	addr  string // host:port to dial
	tls   bool
	roots *x509.CertPool // nil: the system roots
	auth  []byte         // the Authorization value; nil: none
	skus  []string

	uriOrders, uriBatches []byte
	uriOrder              []byte // base + "/v1/orders/"
}

// newTarget checks s and returns the target it names (s.URL must be set).
func newTarget(s settings) (*target, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("-target %q: %w", s.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("-target %q: want http[s]://host[:port][/path]", s.URL)
	}
	t := &target{base: u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"),
		addr: u.Host, tls: u.Scheme == "https", skus: s.SKUs}
	switch {
	case u.Port() != "":
	case t.tls:
		t.addr = u.Host + ":443"
	default:
		t.addr = u.Host + ":80"
	}
	if len(t.skus) == 0 {
		t.skus = demoSKUs()
	}
	for _, sku := range t.skus {
		if !validToken(sku) {
			return nil, fmt.Errorf("-skus: %q is not 1–64 of A-Z a-z 0-9 _ - . :", sku)
		}
	}
	if s.APIKey != "" {
		t.auth = []byte("Bearer " + s.APIKey)
	}
	if s.CAFile != "" {
		if !t.tls {
			return nil, fmt.Errorf("-ca-file %s needs an https -target, not %s", s.CAFile, s.URL)
		}
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca-file %s holds no PEM certificate", s.CAFile)
		}
	}
	t.uriOrders = []byte(t.base + "/v1/orders")
	t.uriBatches = []byte(t.base + "/v1/order-batches")
	t.uriOrder = []byte(t.base + "/v1/orders/")
	return t, nil
}

// validToken checks the API's id and SKU alphabet.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

var external struct {
	once sync.Once
	s    settings
	t    *target
	err  error
}

// externalSettings returns the process's settings, read once.
func externalSettings() settings {
	external.once.Do(func() {
		external.s = settingsOf(os.Getenv)
		if external.s.URL == "" {
			return
		}
		external.t, external.err = newTarget(external.s)
		if external.err == nil {
			fmt.Fprintf(os.Stderr, "bench: loading the running orderflow at %s (no server started); order ids %s<n>; SKUs %s (%s)\n",
				external.t.base, orderPrefix(), strings.Join(external.t.skus, ","), skuSource(external.s))
		}
	})
	return external.s
}

func skuSource(s settings) string {
	if len(s.SKUs) > 0 {
		return "-skus"
	}
	return "the demo catalog of `orderflow seed-demo-catalog`; the API lists no products, give -skus for another catalog"
}

// benchTarget returns the target of an end-to-end benchmark: the -target
// deployment, or a fresh in-process server (startServer).
func benchTarget(b *testing.B) *target {
	b.Helper()
	if externalSettings().URL != "" {
		if external.err != nil {
			b.Fatal(external.err)
		}
		return external.t
	}
	t, err := newTarget(settings{URL: "http://" + startServer(b)})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// skipUnderTarget skips a benchmark that measures in-process internals
// (a PostgreSQL of its own) when -target is set.
func skipUnderTarget(b *testing.B, why string) {
	b.Helper()
	if s := externalSettings(); s.URL != "" {
		// go test shows a benchmark's skip message only with -v: say it on
		// stderr too.
		msg := fmt.Sprintf("%s skipped under -target: %s, not a deployment; -target runs the other BenchmarkE2E* benchmarks", b.Name(), why)
		fmt.Fprintln(os.Stderr, "bench: "+msg)
		b.Skip(msg)
	}
}

// client returns a client of t with at most conns connections. POST is
// never retried by fasthttp: each attempt is one request the target sees.
func (t *target) client(conns int, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr: t.addr, IsTLS: t.tls, TLSConfig: &tls.Config{RootCAs: t.roots, MinVersion: tls.VersionTLS12},
		Name: "orderflow-bench", MaxConns: conns, MaxConnWaitTimeout: timeout,
		ReadTimeout: timeout, WriteTimeout: timeout, MaxResponseBodySize: 64 << 20, MaxIdemponentCallAttempts: 1,
	}
}

var (
	contentTypeJSON   = []byte("application/json")
	contentTypeNDJSON = []byte("application/x-ndjson")
	methodPost        = []byte(fasthttp.MethodPost)
	hdrAuthorization  = []byte("Authorization")
	suffixStatus      = []byte("/status")
)

// post readies req as a POST of body to uri, with the API key.
func (t *target) post(req *fasthttp.Request, uri, contentType, body []byte) {
	req.Reset()
	req.SetRequestURIBytes(uri)
	req.Header.SetMethodBytes(methodPost)
	req.Header.SetContentTypeBytes(contentType)
	if t.auth != nil {
		req.Header.SetBytesKV(hdrAuthorization, t.auth)
	}
	req.SetBodyRaw(body)
}

// appendOrder appends order n: three items from t.skus (the first qty 2,
// as the seed's benchmark order), no price_cents (the target prices).
func (t *target) appendOrder(dst []byte, n uint64) []byte {
	dst = append(dst, `{"id":"`...)
	dst = appendOrderID(dst, n)
	dst = append(dst, `","user_id":"u_42","items":[`...)
	for i := range uint64(3) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sku":"`...)
		dst = append(dst, t.skus[(n+i)%uint64(len(t.skus))]...)
		if i == 0 {
			dst = append(dst, `","qty":2}`...)
		} else {
			dst = append(dst, `","qty":1}`...)
		}
	}
	return append(dst, "]}"...)
}

// tally counts the answers of one load run: every request, the changes
// (orders created, status changes applied) the answers acknowledge, and
// every answer that is not the one expected, by kind. Safe for concurrent
// use.
type tally struct {
	requests atomic.Int64
	acked    atomic.Int64

	mu    sync.Mutex
	bad   map[string]int64 // "409", "transport error", "item 422", …
	nBad  int64
	first string // the first unexpected answer, with the start of its body
}

func newTally() *tally { return &tally{bad: map[string]int64{}} }

// unexpected records n unexpected outcomes of one kind; sample describes
// the answer.
func (t *tally) unexpected(kind string, n int64, sample string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bad[kind] += n
	t.nBad += n
	if t.first == "" {
		t.first = sample
	}
}

// answer records the answer to one single-change request (err: the
// transport's) that should be want.
func (t *tally) answer(err error, resp *fasthttp.Response, want int) bool {
	t.requests.Add(1)
	switch {
	case err != nil:
		t.unexpected("transport error", 1, err.Error())
		return false
	case resp.StatusCode() != want:
		st := strconv.Itoa(resp.StatusCode())
		t.unexpected(st, 1, st+" "+head(resp.Body()))
		return false
	}
	t.acked.Add(1)
	return true
}

// bulkOK is the start of an order-batches answer in which all per orders
// were created.
func bulkOK(per int) []byte {
	return []byte(`{"created":` + strconv.Itoa(per) + `,"duplicates":0,"rejected":0,`)
}

// bulkAnswer records the answer to a request of per new orders (ok =
// bulkOK(per)); it returns the per-item statuses when not all were
// created (nil when they were, or when no per-item answer came).
func (t *tally) bulkAnswer(err error, resp *fasthttp.Response, per int, ok []byte) (items []int) {
	t.requests.Add(1)
	switch {
	case err != nil:
		t.unexpected("transport error", int64(per), err.Error())
		return nil
	case resp.StatusCode() != fasthttp.StatusOK:
		st := strconv.Itoa(resp.StatusCode())
		t.unexpected(st, int64(per), st+" "+head(resp.Body()))
		return nil
	case bytes.HasPrefix(resp.Body(), ok):
		t.acked.Add(int64(per))
		return nil
	}
	var ans struct {
		Results []struct {
			Index, Status int
		}
	}
	if err := json.Unmarshal(resp.Body(), &ans); err != nil || len(ans.Results) != per {
		t.unexpected("unreadable 200", int64(per), "200 "+head(resp.Body()))
		return nil
	}
	items = make([]int, per)
	for _, r := range ans.Results {
		if r.Index < 0 || r.Index >= per {
			continue
		}
		items[r.Index] = r.Status
		if r.Status == fasthttp.StatusCreated {
			t.acked.Add(1)
		} else {
			st := strconv.Itoa(r.Status)
			t.unexpected("item "+st, 1, "200 with item "+strconv.Itoa(r.Index)+" "+st+": "+head(resp.Body()))
		}
	}
	return items
}

// head is the start of an answer body, for messages.
func head(b []byte) string {
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// err is nil when every answer was the expected one; otherwise it counts
// the others by kind and shows the first.
func (t *tally) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nBad == 0 {
		return nil
	}
	kinds := make([]string, 0, len(t.bad))
	for k, n := range t.bad {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(kinds)
	hint := ""
	switch {
	case t.bad["401"] > 0:
		hint = " (401: give the target's API key with -api-key or " + envAPIKey + ")"
	case t.bad["422"] > 0 || t.bad["item 422"] > 0:
		hint = " (422: are the SKUs active in the target's catalog? -skus or " + envSKUs + ")"
	case t.bad["429"] > 0:
		hint = " (429: the target's rate limit for this key or address)"
	}
	return fmt.Errorf("%d unexpected outcomes in %d requests: %s; first: %s%s",
		t.nBad, t.requests.Load(), strings.Join(kinds, ", "), t.first, hint)
}

// closedLoop runs work on conns goroutines and waits for them; each call
// of work is one worker's whole life (it loops until the run's work is
// handed out).
func closedLoop(conns int, work func()) {
	var wg sync.WaitGroup
	for range conns {
		wg.Go(work)
	}
	wg.Wait()
}

// createOrders sends n new orders, one POST /v1/orders each, closed loop
// over conns connections of hc; each must be answered 201.
func (t *target) createOrders(hc *fasthttp.HostClient, conns, n int) *tally {
	tl := newTally()
	var left atomic.Int64
	left.Store(int64(n))
	closedLoop(conns, func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		body := make([]byte, 0, 256)
		for left.Add(-1) >= 0 {
			body = t.appendOrder(body[:0], takeOrders(1))
			t.post(req, t.uriOrders, contentTypeJSON, body)
			tl.answer(hc.Do(req, resp), resp, fasthttp.StatusCreated)
		}
	})
	return tl
}

// orderBatches sends n requests of per new orders each to POST
// /v1/order-batches (NDJSON), closed loop over conns connections of hc;
// each must be answered 200 with every item 201.
func (t *target) orderBatches(hc *fasthttp.HostClient, conns, n, per int) *tally {
	tl := newTally()
	ok := bulkOK(per)
	var left atomic.Int64
	left.Store(int64(n))
	closedLoop(conns, func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		body := make([]byte, 0, per*160)
		for left.Add(-1) >= 0 {
			body = body[:0]
			first := takeOrders(per)
			for i := range uint64(per) {
				body = append(t.appendOrder(body, first+i), '\n')
			}
			t.post(req, t.uriBatches, contentTypeNDJSON, body)
			tl.bulkAnswer(hc.Do(req, resp), resp, per, ok)
		}
	})
	return tl
}

// statusChain is the path every prepared order takes, one change per
// request: versions 2 to 5.
var statusChain = []string{"paid", "assembling", "delivering", "delivered"}

// prepareBatch is the number of orders per bulk request of prepareOrders.
const prepareBatch = 1000

// prepareOrders creates k new orders on the target with POST
// /v1/order-batches and returns their numbers (first…first+k-1), or an
// error when any of them was not created.
func (t *target) prepareOrders(hc *fasthttp.HostClient, k int) (first uint64, err error) {
	first = takeOrders(k)
	tl := newTally()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var body []byte
	for done := 0; done < k; done += prepareBatch {
		per := min(prepareBatch, k-done)
		body = body[:0]
		for i := range per {
			body = append(t.appendOrder(body, first+uint64(done+i)), '\n')
		}
		t.post(req, t.uriBatches, contentTypeNDJSON, body)
		tl.bulkAnswer(hc.Do(req, resp), resp, per, bulkOK(per))
	}
	if err := tl.err(); err != nil {
		return 0, fmt.Errorf("create %d orders for the status changes: %w", k, err)
	}
	return first, nil
}

// statusOrdersFor is how many prepared orders statusChanges needs for n
// changes over conns workers: each worker may leave one order part-way.
func statusOrdersFor(n, conns int) int {
	return (n+len(statusChain)-1)/len(statusChain) + conns
}

// statusChanges sends n status changes, one POST /v1/orders/{id}/status
// each, closed loop over conns connections of hc, to the orders
// first…first+orders-1 (just created; orders = statusOrdersFor(n, conns)
// is enough): each worker
// takes the next unused order and moves it along statusChain, one change
// at a time; each change must be answered 200. After an unexpected answer
// the worker leaves that order.
func (t *target) statusChanges(hc *fasthttp.HostClient, conns, n int, first uint64, orders int) *tally {
	tl := newTally()
	var left atomic.Int64
	left.Store(int64(n))
	var nextOrder atomic.Uint64
	nextOrder.Store(first)
	closedLoop(conns, func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		var uri, body []byte
		for {
			o := nextOrder.Add(1) - 1
			if o >= first+uint64(orders) {
				if left.Load() > 0 {
					tl.unexpected("no prepared order left", 1, "every prepared order was used up by refused changes")
				}
				return
			}
			uri = append(appendOrderID(append(uri[:0], t.uriOrder...), o), suffixStatus...)
			for _, st := range statusChain {
				if left.Add(-1) < 0 {
					return
				}
				body = append(append(append(body[:0], `{"status":"`...), st...), `"}`...)
				t.post(req, uri, contentTypeJSON, body)
				if !tl.answer(hc.Do(req, resp), resp, fasthttp.StatusOK) {
					break
				}
			}
		}
	})
	return tl
}
