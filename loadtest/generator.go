package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/client"
)

// Constant request parts, converted once.
var (
	pathOrders        = []byte("/v1/orders")
	schemeHTTPS       = []byte("https")
	pathOrderBatches  = []byte("/v1/order-batches")
	methodPost        = []byte(fasthttp.MethodPost)
	contentTypeJSON   = []byte("application/json")
	contentTypeNDJSON = []byte("application/x-ndjson")
	headerIdempotency = []byte("Idempotency-Key")
	headerAuth        = []byte("Authorization")
	codeCommitTimeout = []byte(`"commit_timeout"`)
)

// recentSize is how many acknowledged orders each worker remembers as
// candidates for a duplicate resend.
const recentSize = 256

// openRecorders is how many recorders the open-loop workers share.
const openRecorders = 16

// Generator sends one load run to an orderflow server. Create it with [New];
// a Generator runs once at a time and may be reused for further runs with the
// same Config (order numbers restart, so give each run its own RunID).
type Generator struct {
	cfg     Config
	payload *payload
	addr    string // host:port to dial
	host    []byte // Host header
	tls     bool
	roots   *x509.CertPool // Config.CAFile's; nil: the system roots
	auth    []byte         // Authorization value for Config.APIKey; nil: none
}

// New checks cfg (after filling in defaults) and returns a Generator.
func New(cfg Config) (*Generator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadtest config: %w", err)
	}
	u, _ := url.Parse(cfg.Target) // Validate parsed it
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = u.Host + ":" + port
	}
	g := &Generator{
		cfg:     cfg,
		payload: newPayload(cfg),
		addr:    addr,
		host:    []byte(u.Host),
		tls:     u.Scheme == "https",
	}
	if cfg.APIKey != "" {
		g.auth = []byte("Bearer " + cfg.APIKey)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadtest config: CA file: %w", err)
		}
		g.roots = x509.NewCertPool()
		if !g.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loadtest config: CA file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	return g, nil
}

// Config returns the configuration in use, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Result is a finished run: the report (without reconciliation) and the
// order ids to reconcile.
type Result struct {
	// Report holds everything measured; Reconcile is nil until the caller
	// reconciles and sets it.
	Report *Report
	runID  string
	// acked and refused are order numbers, sorted and unique.
	acked, refused []uint64
	// states are the mix scenario's expected final states.
	states []StateCheck
	// windows are the per-Config.Window histograms; nil when Window is 0.
	windows *series
}

// LatencyBetween is the latency of the 2xx answers that arrived in the
// windows (Config.Window) starting in [from, to) of the measured window,
// merged at 3 significant figures: for instance the first and the last
// five minutes of a soak. It is empty when Window is 0.
func (r *Result) LatencyBetween(from, to time.Duration) Latency {
	if r.windows == nil {
		return Latency{}
	}
	return r.windows.latencyBetween(from, to)
}

// StateChecks returns, for ScenarioMix and ScenarioStatus, the state every order that got a
// status update must end in; nil for the other scenarios. The slice is the
// caller's.
func (r *Result) StateChecks() []StateCheck { return r.states }

// AckedIDs returns every order id that got 201 or 200 during the run,
// warmup included, sorted by order number. The slice is the caller's.
func (r *Result) AckedIDs() []string { return r.ids(r.acked) }

// RefusedIDs returns every order id that got a 4xx (429 included) or a 503 at
// least once, warmup included. An id resent after a refusal may also be in
// AckedIDs. The slice is the caller's.
func (r *Result) RefusedIDs() []string { return r.ids(r.refused) }

// AckedNumbers returns the order numbers n (ids lt_<run id>_<n>) of
// AckedIDs, sorted. The slice is the caller's.
func (r *Result) AckedNumbers() []uint64 { return slices.Clone(r.acked) }

func (r *Result) ids(ns []uint64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = OrderID(r.runID, n)
	}
	return out
}

// run is the state of one Run, shared by its workers.
type run struct {
	g           *Generator
	start       time.Time     // monotonic origin of every offset below
	measureFrom time.Duration // = Warmup
	end         time.Duration // = Warmup + Duration: nothing is sent at or after it
	next        atomic.Uint64 // last order number handed out
	sent        atomic.Int64  // requests started, for MaxRequests
	dropped     atomic.Int64  // measured open-loop requests not sent: MaxInFlight reached
	series      series
	windows     *series         // per Config.Window; nil when it is 0
	prepared    []uint64        // ScenarioStatus: acknowledged prepared orders
	taken       atomic.Int64    // ScenarioStatus: prepared orders handed out
	batcher     *client.Batcher // ScenarioBatcher only
}

// observe records a measured answer in the per-second series and, when
// windows are kept, in its window.
func (r *run) observe(at time.Duration, status int, lat time.Duration, orders, updates int64) {
	r.series.observe(at, status, lat, orders, updates)
	if r.windows != nil {
		r.windows.observe(at, status, lat, orders, updates)
	}
}

// Run sends load until Warmup+Duration has passed, MaxRequests were sent or
// ctx is done, whichever comes first, then waits for the requests in flight
// (each bounded by RequestTimeout) and returns the measurements. It blocks
// for the whole run. An error means the run could not start; answers that are
// errors are counted, not returned.
func (g *Generator) Run(ctx context.Context) (*Result, error) {
	cfg := g.cfg
	r := &run{g: g, measureFrom: cfg.Warmup, end: cfg.Warmup + cfg.Duration}
	if cfg.Window > 0 {
		r.windows = &series{width: cfg.Window, sigFigs: histSigFigs}
	}
	var prep *recorder
	if cfg.Scenario == ScenarioStatus {
		prep = newRecorder()
		r.prepare(ctx, prep)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.end)
	defer cancel()

	usage := usageProbe{pgPID: cfg.PostgresPID}
	var probes sync.WaitGroup
	r.start = time.Now()
	started := time.Now().UTC()
	if cfg.Warmup == 0 {
		usage.begin(ctx, cfg.Admin)
	} else {
		probes.Go(func() {
			t := time.NewTimer(cfg.Warmup)
			defer t.Stop()
			select {
			case <-t.C:
				usage.begin(ctx, cfg.Admin)
			case <-ctx.Done():
			}
		})
	}

	if cfg.Scenario == ScenarioBatcher {
		// The client's own transport, trusting Config.CAFile's roots.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		tr.TLSClientConfig = &tls.Config{RootCAs: g.roots, MinVersion: tls.VersionTLS12}
		c, err := client.New(client.Config{BaseURL: cfg.Target, APIKey: cfg.APIKey, HTTPClient: &http.Client{Transport: tr},
			MaxAttempts: 1, AttemptTimeout: cfg.RequestTimeout})
		if err != nil {
			return nil, err
		}
		r.batcher = c.NewBatcher(client.BatcherConfig{BatchTimeout: cfg.RequestTimeout})
		defer r.batcher.Close(context.WithoutCancel(parent))
	}
	var recs []*recorder
	if prep != nil {
		recs = append(recs, prep)
	}
	if cfg.Mode == ModeOpen {
		// The schedule ends itself at r.end; only the caller cancels it
		// early, so requests due just before the end are sent even when
		// the scheduler runs late.
		recs = append(recs, r.openLoop(parent)...)
	} else {
		recs = append(recs, r.closedLoop(ctx)...)
	}
	elapsed := time.Since(r.start) - r.measureFrom
	probes.Wait()
	// Scrape after the workers stop: ctx may be done, the scrape has its own.
	usage.end(context.WithoutCancel(ctx), cfg.Admin)

	total := recs[0]
	for _, o := range recs[1:] {
		total.merge(o)
	}
	res := &Result{runID: cfg.RunID, acked: uniqueSorted(total.acked), refused: uniqueSorted(total.refused),
		states: stateChecksOf(cfg.RunID, total.states, statusesOf(cfg.Scenario)), windows: r.windows}
	counts := total.counts()
	counts.DroppedByGenerator = r.dropped.Load()
	counts.AckedIDs = len(res.acked)
	counts.RefusedIDs = len(res.refused)
	// Cost is per acknowledged change: an order, or a status update.
	changes := counts.Orders.Acked + counts.Updates.Acked
	server, serverErr := usage.server(changes)
	pg, pgErr := usage.postgres(changes)
	rep := &Report{
		RunID:          cfg.RunID,
		Started:        started,
		Config:         cfg,
		ElapsedSeconds: max(elapsed.Seconds(), 0),
		Counts:         counts,
		Latency:        latencyOf(total.hist),
		Series:         r.series.points(elapsed),
		Windows:        r.windows.pointsOrNil(elapsed),
		Server:         server,
		ServerError:    serverErr,
		Postgres:       pg,
		PostgresError:  pgErr,
		Generator:      usage.generator(changes),
	}
	if total.updHist != nil {
		l := latencyOf(total.updHist)
		rep.UpdateLatency = &l
	}
	if s := rep.ElapsedSeconds; s > 0 {
		rep.Rates = Rates{AckedPerSecond: float64(counts.Acked) / s, RequestsPerSecond: float64(counts.Requests) / s,
			OrdersPerSecond: float64(counts.Orders.Acked) / s, UpdatesPerSecond: float64(counts.Updates.Acked) / s}
	}
	if cfg.Mode == ModeOpen {
		rep.Rates.ScheduledPerSecond = float64(cfg.Rate)
	}
	res.Report = rep
	return res, nil
}

// closedLoop runs Conns workers, each with its own connection, sending the
// next request as soon as the previous one is answered.
func (r *run) closedLoop(ctx context.Context) []*recorder {
	cfg := r.g.cfg
	recs := make([]*recorder, cfg.Conns)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder()
		w := r.newWorker(recs[i], r.g.newHostClient(1), true, uint64(i))
		wg.Go(func() {
			defer w.close()
			for ctx.Err() == nil {
				at := time.Since(r.start)
				if at >= r.end || cfg.MaxRequests > 0 && r.sent.Add(1) > cfg.MaxRequests {
					return
				}
				w.do(at)
			}
		})
	}
	wg.Wait()
	return recs
}

// openLoop schedules request i at start + i/Rate and hands it to a pool of
// MaxInFlight workers sharing one connection pool. Latency is measured from
// the scheduled time, so time a request spends waiting — for a late
// scheduler, a free worker or a stalled server — is counted, not omitted.
func (r *run) openLoop(ctx context.Context) []*recorder {
	cfg := r.g.cfg
	hc := r.g.newHostClient(cfg.MaxInFlight)
	defer hc.CloseIdleConnections()
	// work holds scheduled offsets. Its capacity is the in-flight bound and
	// the scheduler sends only while inFlight < MaxInFlight, so the send
	// never blocks: a full pool drops the request instead of delaying the
	// schedule.
	work := make(chan time.Duration, cfg.MaxInFlight)
	var inFlight atomic.Int64
	// Workers share recorders: a recorder holds a ~130 KiB histogram, too
	// much to give each of up to thousands of workers.
	recs := make([]*recorder, min(cfg.MaxInFlight, openRecorders))
	for i := range recs {
		recs[i] = newRecorder()
	}
	var wg sync.WaitGroup
	for i := range cfg.MaxInFlight {
		w := r.newWorker(recs[i%len(recs)], hc, false, uint64(i))
		wg.Go(func() {
			defer w.close()
			for at := range work {
				w.do(at)
				inFlight.Add(-1)
			}
		})
	}

	interval := float64(time.Second) / float64(cfg.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
schedule:
	for i := int64(0); cfg.MaxRequests == 0 || i < cfg.MaxRequests; i++ {
		at := time.Duration(float64(i) * interval)
		if at >= r.end {
			break
		}
		if wait := at - time.Since(r.start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		} else if ctx.Err() != nil {
			break
		}
		// Only this goroutine increments inFlight, so the check cannot race
		// with another increment; workers only decrement it.
		if inFlight.Load() >= int64(cfg.MaxInFlight) {
			if at >= r.measureFrom {
				r.dropped.Add(1)
			}
			continue
		}
		inFlight.Add(1)
		work <- at
	}
	close(work)
	wg.Wait()
	return recs
}

// newHostClient returns a client for the target with at most conns
// connections. POST is not idempotent, so fasthttp never resends it; every
// attempt the generator makes is one request the server sees.
func (g *Generator) newHostClient(conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      g.addr,
		IsTLS:                     g.tls,
		MaxConns:                  conns,
		MaxIdemponentCallAttempts: 1,
		NoDefaultUserAgentHeader:  true,
		ReadTimeout:               g.cfg.RequestTimeout,
		WriteTimeout:              g.cfg.RequestTimeout,
		MaxIdleConnDuration:       time.Minute,
		TLSConfig:                 &tls.Config{RootCAs: g.roots, MinVersion: tls.VersionTLS12},
	}
}

// worker sends requests one at a time. Not safe for concurrent use.
type worker struct {
	r       *run
	hc      *fasthttp.HostClient
	ownHC   bool
	req     *fasthttp.Request
	resp    *fasthttp.Response
	body    []byte
	key     []byte
	uri     []byte
	items   []int     // batches: per-item status of the last answer
	itemOC  []outcome // batches: per-item outcome
	mixN    uint64    // mix: the order whose next status update is due (0: none)
	mixStep int       // mix: index into MixStatuses of that update
	rng     *rand.Rand
	recent  [recentSize]uint64 // ring of acknowledged order numbers
	nRecent int
	rec     *recorder
}

// newWorker returns a worker that records into rec and sends through hc;
// ownHC means the worker closes hc's connections when it stops.
func (r *run) newWorker(rec *recorder, hc *fasthttp.HostClient, ownHC bool, seed uint64) *worker {
	return &worker{
		r:     r,
		hc:    hc,
		ownHC: ownHC,
		req:   fasthttp.AcquireRequest(),
		resp:  fasthttp.AcquireResponse(),
		body:  make([]byte, 0, 512),
		rng:   rand.New(rand.NewPCG(seed, mix64(uint64(time.Now().UnixNano())))),
		rec:   rec,
	}
}

func (w *worker) close() {
	if w.ownHC {
		w.hc.CloseIdleConnections()
	}
	fasthttp.ReleaseRequest(w.req)
	fasthttp.ReleaseResponse(w.resp)
}

// do sends one request whose send time is (or was scheduled at) offset at
// and records the answer.
func (w *worker) do(at time.Duration) {
	switch w.r.g.cfg.Scenario {
	case ScenarioBatches:
		w.doBatch(at)
	case ScenarioStatus:
		if w.mixN == 0 {
			if i := w.r.taken.Add(1); i <= int64(len(w.r.prepared)) {
				w.mixN, w.mixStep = w.r.prepared[i-1], 0
			}
		}
		if w.mixN != 0 {
			w.doUpdate(at)
		} else {
			w.doOrder(at)
		}
	case ScenarioBatcher:
		w.doBatcher(at)
	case ScenarioMix:
		if w.mixN != 0 {
			w.doUpdate(at)
		} else {
			w.doOrder(at)
		}
	default:
		w.doOrder(at)
	}
}

// send performs the request in w.req and returns the status (0 for a
// transport error), its outcome, when the answer arrived and its latency.
func (w *worker) send(at time.Duration) (status int, oc outcome, done, lat time.Duration) {
	r, g := w.r, w.r.g
	err := w.hc.DoTimeout(w.req, w.resp, g.cfg.RequestTimeout)
	done = time.Since(r.start)
	if err == nil {
		status = w.resp.StatusCode()
	}
	oc = classify(status)
	if status == fasthttp.StatusServiceUnavailable && bytes.Contains(w.resp.Body(), codeCommitTimeout) {
		// The server stopped waiting; the commit may still happen.
		oc = outcomeUnknown
	}
	return status, oc, done, done - at
}

func (w *worker) newRequest(path, contentType []byte) *fasthttp.Request {
	req := w.req
	req.Reset()
	req.Header.SetMethodBytes(methodPost)
	req.SetRequestURIBytes(path)
	// The Host header first: once req.URI() is parsed, Write takes the
	// Host from the URI, which takes it from the header when parsed (in
	// the other order every https request went out with an empty Host
	// and was answered 400).
	req.Header.SetHostBytes(w.r.g.host)
	if w.r.g.tls {
		// HostClient refuses a request whose scheme is not its own.
		req.URI().SetSchemeBytes(schemeHTTPS)
	}
	req.Header.SetContentTypeBytes(contentType)
	if w.r.g.auth != nil {
		req.Header.SetBytesKV(headerAuth, w.r.g.auth)
	}
	return req
}

// doOrder sends one order: a new one, or in ScenarioDuplicates sometimes a
// resend of one already acknowledged.
func (w *worker) doOrder(at time.Duration) {
	r, g := w.r, w.r.g
	var n uint64
	dup := false
	if g.cfg.Scenario == ScenarioDuplicates && w.nRecent > 0 && w.rng.Float64() < DuplicateRatio {
		n, dup = w.recent[w.rng.IntN(min(w.nRecent, recentSize))], true
	} else {
		n = r.next.Add(1)
	}
	req := w.newRequest(pathOrders, contentTypeJSON)
	if g.cfg.Scenario == ScenarioDuplicates {
		w.key = g.payload.appendKey(w.key[:0], n)
		req.Header.SetBytesKV(headerIdempotency, w.key)
	}
	w.body = g.payload.appendBody(w.body[:0], n)
	req.SetBodyRaw(w.body)

	status, oc, done, lat := w.send(at)
	measured := at >= r.measureFrom
	w.rec.observe(n, status, oc, dup, measured, lat)
	if measured {
		r.observe(done-r.measureFrom, status, lat, b2i(oc == outcomeAcked), 0)
	}
	if !dup && oc == outcomeAcked {
		w.recent[w.nRecent%recentSize] = n
		w.nRecent++
		if g.cfg.Scenario == ScenarioMix || g.cfg.Scenario == ScenarioStatus {
			w.mixN, w.mixStep = n, 0
		}
	}
}

// doBatch sends BatchSize new orders in one NDJSON bulk request and records
// each item's own result.
func (w *worker) doBatch(at time.Duration) {
	size := w.r.g.cfg.BatchSize
	first := w.r.next.Add(uint64(size)) - uint64(size) + 1
	w.sendBatch(at, first, size)
}

// sendBatch sends orders first…first+size-1 in one NDJSON bulk request
// scheduled at at, records each item's own result and leaves each item's
// outcome in w.itemOC.
func (w *worker) sendBatch(at time.Duration, first uint64, size int) {
	r, g := w.r, w.r.g
	req := w.newRequest(pathOrderBatches, contentTypeNDJSON)
	w.body = w.body[:0]
	for i := range size {
		w.body = g.payload.appendBody(w.body, first+uint64(i))
		w.body = append(w.body, '\n')
	}
	req.SetBodyRaw(w.body)

	status, oc, done, lat := w.send(at)
	w.items = slices.Grow(w.items[:0], size)[:size]
	w.itemOC = slices.Grow(w.itemOC[:0], size)[:size]
	clear(w.items)
	if status == fasthttp.StatusOK {
		parseBulkResults(w.resp.Body(), w.items)
	}
	var acked int64
	for i, st := range w.items {
		switch {
		case st != 0:
			w.itemOC[i] = classify(st)
		case oc == outcomeRefused:
			w.itemOC[i] = outcomeRefused // the whole request was refused
		default:
			w.itemOC[i] = outcomeUnknown
		}
		if w.itemOC[i] == outcomeAcked {
			acked++
		}
	}
	measured := at >= r.measureFrom
	w.rec.observeBatch(first, status, oc, w.items, w.itemOC, measured, lat)
	if measured {
		r.observe(done-r.measureFrom, status, lat, acked, 0)
	}
}

// doBatcher hands one new order to the run's Batcher and records its own
// result: 201, 200 on a replay, or the client's error (status 0 and an
// unknown outcome when no answer came or the outcome is not known).
func (w *worker) doBatcher(at time.Duration) {
	r, g := w.r, w.r.g
	n := r.next.Add(1)
	w.body = g.payload.appendBody(w.body[:0], n)
	var o client.Order
	if err := json.Unmarshal(w.body, &o); err != nil {
		panic("BUG: the generator's order does not decode: " + err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	res, err := r.batcher.CreateOrder(ctx, o)
	cancel()
	done := time.Since(r.start)
	status, oc := fasthttp.StatusCreated, outcomeAcked
	var e *client.Error
	switch {
	case err == nil && res.Replayed:
		status = fasthttp.StatusOK
	case errors.As(err, &e):
		status, oc = e.StatusCode, classify(e.StatusCode)
		if !e.OutcomeKnown {
			oc = outcomeUnknown
		}
	case err != nil:
		status, oc = 0, outcomeUnknown
	}
	measured := at >= r.measureFrom
	w.rec.observe(n, status, oc, false, measured, done-at)
	if measured {
		r.observe(done-r.measureFrom, status, done-at, b2i(oc == outcomeAcked), 0)
	}
}

// doUpdate sends the next status change of the order doOrder created.
// After an acknowledged change the next one follows; after the last, a
// refusal or an unknown outcome, the worker creates a new order.
func (w *worker) doUpdate(at time.Duration) {
	r, g := w.r, w.r.g
	n, step := w.mixN, w.mixStep
	w.uri = append(w.uri[:0], "/v1/orders/"...)
	w.uri = appendOrderID(w.uri, g.cfg.RunID, n)
	w.uri = append(w.uri, "/status"...)
	req := w.newRequest(w.uri, contentTypeJSON)
	statuses := statusesOf(g.cfg.Scenario)
	w.body = append(append(append(w.body[:0], `{"status":"`...), statuses[step]...), `"}`...)
	req.SetBodyRaw(w.body)

	status, oc, done, lat := w.send(at)
	var version int32
	if oc == outcomeAcked {
		version = parseVersion(w.resp.Body())
	}
	measured := at >= r.measureFrom
	w.rec.observeUpdate(n, step, status, oc, version, measured, lat)
	if measured {
		r.observe(done-r.measureFrom, status, lat, 0, b2i(oc == outcomeAcked))
	}
	if oc == outcomeAcked && step+1 < len(statuses) {
		w.mixStep++
	} else {
		w.mixN = 0
	}
}

// prepare creates ScenarioStatus's StatusOrders orders (numbers 1…N) in
// bulk requests of prepareBatch before the clock starts, recording them in
// rec as warmup (reconciled, not measured), and keeps the acknowledged
// ones for the workers. Run calls it before its clock starts.
func (r *run) prepare(ctx context.Context, rec *recorder) {
	n := r.g.cfg.StatusOrders
	if n == 0 {
		return
	}
	w := r.newWorker(rec, r.g.newHostClient(1), true, 0)
	defer w.close()
	save := r.measureFrom
	r.measureFrom = time.Duration(1<<63 - 1) // nothing here is measured
	defer func() { r.measureFrom = save }()
	for done := 0; done < n && ctx.Err() == nil; done += prepareBatch {
		size := min(prepareBatch, n-done)
		first := r.next.Add(uint64(size)) - uint64(size) + 1
		w.sendBatch(0, first, size)
		for i, oc := range w.itemOC[:size] {
			if oc == outcomeAcked {
				r.prepared = append(r.prepared, first+uint64(i))
			}
		}
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

var (
	bulkIndexKey  = []byte(`{"index":`)
	bulkStatusKey = []byte(`,"status":`)
	versionKey    = []byte(`"version":`)
)

// parseBulkResults fills dst[i] with the status the bulk answer body gives
// item i ({"index":i,…,"status":s}); items it does not mention stay 0. It
// scans bytes instead of decoding JSON: keys inside error messages are
// escaped (\"index\") and cannot match.
func parseBulkResults(body []byte, dst []int) {
	for {
		i := bytes.Index(body, bulkIndexKey)
		if i < 0 {
			return
		}
		body = body[i+len(bulkIndexKey):]
		idx, rest := leadingInt(body)
		j := bytes.Index(rest, bulkStatusKey)
		if j < 0 {
			return
		}
		st, rest2 := leadingInt(rest[j+len(bulkStatusKey):])
		if idx >= 0 && idx < len(dst) && st > 0 {
			dst[idx] = st
		}
		body = rest2
	}
}

// parseVersion returns the "version" of a status answer, 0 if absent.
func parseVersion(body []byte) int32 {
	i := bytes.Index(body, versionKey)
	if i < 0 {
		return 0
	}
	v, _ := leadingInt(body[i+len(versionKey):])
	return int32(max(v, 0))
}

// leadingInt parses the decimal digits at the start of b; -1 if none.
func leadingInt(b []byte) (int, []byte) {
	n, i := 0, 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 9; i++ {
		n = n*10 + int(b[i]-'0')
	}
	if i == 0 {
		return -1, b
	}
	return n, b[i:]
}
