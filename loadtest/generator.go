package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Constant request parts, converted once.
var (
	pathOrders        = []byte("/v1/orders")
	methodPost        = []byte(fasthttp.MethodPost)
	contentTypeJSON   = []byte("application/json")
	headerIdempotency = []byte("Idempotency-Key")
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
	return &Generator{
		cfg:     cfg,
		payload: newPayload(cfg),
		addr:    addr,
		host:    []byte(u.Host),
		tls:     u.Scheme == "https",
	}, nil
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
}

// AckedIDs returns every order id that got 201 or 200 during the run,
// warmup included, sorted by order number. The slice is the caller's.
func (r *Result) AckedIDs() []string { return r.ids(r.acked) }

// RefusedIDs returns every order id that got a 4xx (429 included) or a 503 at
// least once, warmup included. An id resent after a refusal may also be in
// AckedIDs. The slice is the caller's.
func (r *Result) RefusedIDs() []string { return r.ids(r.refused) }

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
}

// Run sends load until Warmup+Duration has passed, MaxRequests were sent or
// ctx is done, whichever comes first, then waits for the requests in flight
// (each bounded by RequestTimeout) and returns the measurements. It blocks
// for the whole run. An error means the run could not start; answers that are
// errors are counted, not returned.
func (g *Generator) Run(ctx context.Context) (*Result, error) {
	cfg := g.cfg
	r := &run{g: g, measureFrom: cfg.Warmup, end: cfg.Warmup + cfg.Duration}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, r.end)
	defer cancel()

	var usage usageProbe
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

	var recs []*recorder
	if cfg.Mode == ModeOpen {
		// The schedule ends itself at r.end; only the caller cancels it
		// early, so requests due just before the end are sent even when
		// the scheduler runs late.
		recs = r.openLoop(parent)
	} else {
		recs = r.closedLoop(ctx)
	}
	elapsed := time.Since(r.start) - r.measureFrom
	probes.Wait()
	// Scrape after the workers stop: ctx may be done, the scrape has its own.
	usage.end(context.WithoutCancel(ctx), cfg.Admin)

	total := recs[0]
	for _, o := range recs[1:] {
		total.merge(o)
	}
	res := &Result{runID: cfg.RunID, acked: uniqueSorted(total.acked), refused: uniqueSorted(total.refused)}
	counts := total.counts()
	counts.DroppedByGenerator = r.dropped.Load()
	counts.AckedIDs = len(res.acked)
	counts.RefusedIDs = len(res.refused)
	server, serverErr := usage.server(counts.Acked)
	rep := &Report{
		RunID:          cfg.RunID,
		Started:        started,
		Config:         cfg,
		ElapsedSeconds: max(elapsed.Seconds(), 0),
		Counts:         counts,
		Latency:        latencyOf(total.hist),
		Series:         r.series.points(elapsed),
		Server:         server,
		ServerError:    serverErr,
		Generator:      usage.generator(counts.Acked),
	}
	if s := rep.ElapsedSeconds; s > 0 {
		rep.Rates = Rates{AckedPerSecond: float64(counts.Acked) / s, RequestsPerSecond: float64(counts.Requests) / s}
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

// do sends one order whose send time is (or was scheduled at) offset at
// and records the answer.
func (w *worker) do(at time.Duration) {
	r, g := w.r, w.r.g
	var n uint64
	dup := false
	if g.cfg.Scenario == ScenarioDuplicates && w.nRecent > 0 && w.rng.Float64() < DuplicateRatio {
		n, dup = w.recent[w.rng.IntN(min(w.nRecent, recentSize))], true
	} else {
		n = r.next.Add(1)
	}
	req := w.req
	req.Reset()
	req.Header.SetMethodBytes(methodPost)
	req.SetRequestURIBytes(pathOrders)
	req.Header.SetHostBytes(g.host)
	req.Header.SetContentTypeBytes(contentTypeJSON)
	if g.cfg.Scenario == ScenarioDuplicates {
		w.key = g.payload.appendKey(w.key[:0], n)
		req.Header.SetBytesKV(headerIdempotency, w.key)
	}
	w.body = g.payload.appendBody(w.body[:0], n)
	req.SetBodyRaw(w.body)

	err := w.hc.DoTimeout(req, w.resp, g.cfg.RequestTimeout)
	done := time.Since(r.start)
	status := 0
	if err == nil {
		status = w.resp.StatusCode()
	}
	lat := done - at
	measured := at >= r.measureFrom
	w.rec.observe(n, status, dup, measured, lat)
	if measured {
		r.series.observe(done-r.measureFrom, status, lat)
	}
	if !dup && classify(status) == outcomeAcked {
		w.recent[w.nRecent%recentSize] = n
		w.nRecent++
	}
}
