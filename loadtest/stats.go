package loadtest

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1µs to 60s at 3 significant figures for the run; the
// per-second histograms use 2 figures (~20 KiB each instead of ~180 KiB).
const (
	histMinMicros  = 1
	histMaxMicros  = 60_000_000
	histSigFigs    = 3
	secondSigFigs  = 2
	statusCodeSize = 600
)

// outcome classifies an answer for reconciliation.
type outcome uint8

const (
	// outcomeAcked: 201 or 200, the order is committed.
	outcomeAcked outcome = iota
	// outcomeRefused: 4xx (429 included) or 503, the contract says nothing was stored.
	outcomeRefused
	// outcomeUnknown: a transport error, timeout or other 5xx; it may or may not be stored.
	outcomeUnknown
)

func classify(status int) outcome {
	switch {
	case status == 200 || status == 201:
		return outcomeAcked
	case status >= 400 && status < 500, status == 503:
		return outcomeRefused
	default:
		return outcomeUnknown
	}
}

// recorder holds the measurements of one or a few workers. Safe for
// concurrent use; in closed loop each worker owns one, so its mutex is never
// contended. They are merged after the workers stop.
type recorder struct {
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram // latency of measured 2xx create answers (orders, batches), µs
	updHist *hdrhistogram.Histogram // latency of measured 2xx status-update answers, µs; nil until one
	status  [statusCodeSize]int64   // measured answers by status code
	other   int64                   // measured answers with a code outside [0, 600)
	errs    int64                   // measured transport errors and timeouts (no status)
	timeout int64                   // measured 503 commit_timeout answers: outcome unknown
	warmup  int64                   // requests sent during warmup
	acked   []uint64                // order numbers acknowledged, warmup included
	refused []uint64                // order numbers refused, warmup included
	states  []stateObs              // mix: every status update's outcome, warmup included
	dup     DuplicateCounts         // measured resends
	orders  OrderCounts             // measured orders, by their own fate
	updates UpdateCounts            // measured status updates
}

// stateObs is the outcome of status update step (an index into
// the scenario's status changes) of order n; version is the one the server answered (0 when
// not acknowledged).
type stateObs struct {
	n       uint64
	step    int8
	oc      outcome
	version int32
}

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)}
}

// request records one finished request's answer in the measured counts
// (status 0 is a transport error); it reports whether it was measured.
// Callers hold r.mu.
func (r *recorder) request(status int, oc outcome, measured, update bool, lat time.Duration) bool {
	if !measured {
		r.warmup++
		return false
	}
	switch {
	case status == 0:
		r.errs++
	case status > 0 && status < statusCodeSize:
		r.status[status]++
		if status == 503 && oc == outcomeUnknown {
			r.timeout++
		}
	default:
		r.other++
	}
	if status >= 200 && status < 300 {
		h := r.hist
		if update {
			if r.updHist == nil {
				r.updHist = hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
			}
			h = r.updHist
		}
		_ = h.RecordValue(clampMicros(lat)) // clamped, so it cannot be out of range
	}
	return true
}

// order records the fate of order n (warmup included in the id lists;
// counted only when measured).
func (r *recorder) order(n uint64, oc outcome, status int, dup, measured bool) {
	switch oc {
	case outcomeAcked:
		if !dup { // a resend is of an order already recorded as acked
			r.acked = append(r.acked, n)
		}
	case outcomeRefused:
		r.refused = append(r.refused, n)
	}
	if !measured {
		return
	}
	r.orders.add(oc, status)
	if dup {
		r.dup.Sent++
		switch status {
		case 200:
			r.dup.Got200++
		case 201:
			r.dup.Got201++
		default:
			r.dup.GotOther++
		}
	}
}

// observe records one single-order request: order n answered status (0 for
// a transport error) with outcome oc after lat.
func (r *recorder) observe(n uint64, status int, oc outcome, dup, measured bool, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.request(status, oc, measured, false, lat)
	r.order(n, oc, status, dup, measured)
}

// observeBatch records one bulk request of orders first, first+1, …:
// status and oc are the request's, items[i] the status of order first+i
// (0 when the answer did not say) and itemOC[i] its outcome.
func (r *recorder) observeBatch(first uint64, status int, oc outcome, items []int, itemOC []outcome, measured bool, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.request(status, oc, measured, false, lat)
	for i, st := range items {
		r.order(first+uint64(i), itemOC[i], st, false, measured)
	}
}

// observeUpdate records status update step of order n.
func (r *recorder) observeUpdate(n uint64, step int, status int, oc outcome, version int32, measured bool, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.request(status, oc, measured, true, lat)
	r.states = append(r.states, stateObs{n: n, step: int8(step), oc: oc, version: version})
	if measured {
		r.updates.add(oc)
	}
}

// merge adds o into r once the workers have stopped. o must not be used
// afterwards.
func (r *recorder) merge(o *recorder) {
	r.hist.Merge(o.hist)
	if o.updHist != nil {
		if r.updHist == nil {
			r.updHist = hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)
		}
		r.updHist.Merge(o.updHist)
	}
	for i, c := range o.status {
		r.status[i] += c
	}
	r.other += o.other
	r.errs += o.errs
	r.timeout += o.timeout
	r.warmup += o.warmup
	r.acked = append(r.acked, o.acked...)
	r.refused = append(r.refused, o.refused...)
	r.states = append(r.states, o.states...)
	r.dup.Sent += o.dup.Sent
	r.dup.Got200 += o.dup.Got200
	r.dup.Got201 += o.dup.Got201
	r.dup.GotOther += o.dup.GotOther
	r.orders.merge(o.orders)
	r.updates.merge(o.updates)
}

// counts summarizes the merged recorder.
func (r *recorder) counts() Counts {
	c := Counts{ByStatus: map[string]int64{}, TransportErrors: r.errs, WarmupRequests: r.warmup, Duplicates: r.dup,
		CommitTimeouts: r.timeout, Orders: r.orders, Updates: r.updates}
	for code, n := range r.status {
		if n == 0 {
			continue
		}
		c.ByStatus[strconv.Itoa(code)] = n
		c.Requests += n
		switch classify(code) {
		case outcomeAcked:
			c.Acked += n
		case outcomeRefused:
			c.Refused += n
		default:
			c.Unknown += n
		}
	}
	// A 503 commit_timeout is not a refusal: the change may still commit.
	c.Refused -= r.timeout
	c.Unknown += r.timeout
	if r.other > 0 {
		c.ByStatus["other"] = r.other
		c.Requests += r.other
		c.Unknown += r.other
	}
	if r.errs > 0 {
		c.ByStatus["transport_error"] = r.errs
		c.Requests += r.errs
		c.Unknown += r.errs
	}
	c.Created = r.status[201]
	return c
}

// stateChecks turns the mix scenario's update outcomes into the state each
// order must be in: the last acknowledged version (creation is version 1),
// or a later one when an update after it had an unknown outcome. Orders
// that got no update are left out (the created check covers them).
func stateChecks(runID string, states []stateObs) []StateCheck {
	return stateChecksOf(runID, states, MixStatuses)
}

// stateChecksOf is stateChecks for a scenario whose status changes are
// statuses.
func stateChecksOf(runID string, states []stateObs, statuses []string) []StateCheck {
	slices.SortFunc(states, func(a, b stateObs) int {
		if a.n != b.n {
			return cmp.Compare(a.n, b.n)
		}
		return cmp.Compare(a.step, b.step)
	})
	var out []StateCheck
	for i := 0; i < len(states); {
		n := states[i].n
		sc := StateCheck{ID: OrderID(runID, n), Status: "created", Version: 1}
		for ; i < len(states) && states[i].n == n; i++ {
			o := states[i]
			switch o.oc {
			case outcomeAcked:
				sc.Version, sc.Status = o.version, statuses[o.step]
				if sc.Version == 0 {
					sc.Version = int32(o.step) + 2
				}
			case outcomeUnknown:
				sc.AtLeast = true
			}
		}
		out = append(out, sc)
	}
	return out
}

func clampMicros(d time.Duration) int64 {
	us := d.Microseconds()
	return min(max(us, histMinMicros), histMaxMicros)
}

// series is a time series of the measured window, indexed by the interval
// (of width, default one second, since measuring started) in which each
// answer arrived. Safe for concurrent use: one mutex, held for a histogram
// update (~50 ns); at the 10⁴–10⁵ answers/s one box reaches, that costs well
// under 1% of a core.
type series struct {
	width   time.Duration // 0: one second
	sigFigs int           // of each interval's histogram; 0: secondSigFigs
	mu      sync.Mutex
	secs    []*second
}

func (s *series) step() time.Duration {
	if s.width <= 0 {
		return time.Second
	}
	return s.width
}

type second struct {
	requests, acked, updates, errors int64
	hist                             *hdrhistogram.Histogram // 2xx latency, µs
}

// observe records an answer that arrived at offset at (since measuring
// started) with the given status (0 = transport error) and latency, which
// acknowledged orders orders and updates status updates.
func (s *series) observe(at time.Duration, status int, lat time.Duration, orders, updates int64) {
	i := int(max(at, 0) / s.step())
	s.mu.Lock()
	for len(s.secs) <= i {
		s.secs = append(s.secs, &second{})
	}
	sec := s.secs[i]
	sec.requests++
	switch {
	case status >= 200 && status < 300:
		sec.acked += orders
		sec.updates += updates
		if sec.hist == nil {
			figs := s.sigFigs
			if figs == 0 {
				figs = secondSigFigs
			}
			sec.hist = hdrhistogram.New(histMinMicros, histMaxMicros, int(figs))
		}
		_ = sec.hist.RecordValue(clampMicros(lat))
	default:
		sec.errors++
	}
	s.mu.Unlock()
}

// points returns the series for the report; call it after the workers
// stop. elapsed is the measured window, which usually ends inside the last
// interval. T is each interval's start in whole seconds.
func (s *series) points(elapsed time.Duration) []Second {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.step().Seconds()
	out := make([]Second, len(s.secs))
	for i, sec := range s.secs {
		span := min(max(elapsed.Seconds()-float64(i)*w, 0.001), w)
		p := Second{T: int(float64(i) * w), SpanSeconds: span, Requests: sec.requests, Acked: sec.acked, Updates: sec.updates, Errors: sec.errors}
		if sec.hist != nil {
			p.P50Micros = sec.hist.ValueAtQuantile(50)
			p.P99Micros = sec.hist.ValueAtQuantile(99)
			p.P999Micros = sec.hist.ValueAtQuantile(99.9)
			p.MaxMicros = sec.hist.Max()
		}
		out[i] = p
	}
	return out
}

// pointsOrNil is points for a series that may be nil (no windows kept).
func (s *series) pointsOrNil(elapsed time.Duration) []Second {
	if s == nil {
		return nil
	}
	return s.points(elapsed)
}

// latencyBetween merges the histograms of the intervals that start in
// [from, to) into one latency summary; call it after the workers stop.
func (s *series) latencyBetween(from, to time.Duration) Latency {
	s.mu.Lock()
	defer s.mu.Unlock()
	figs := s.sigFigs
	if figs == 0 {
		figs = secondSigFigs
	}
	h := hdrhistogram.New(histMinMicros, histMaxMicros, int(figs))
	for i, sec := range s.secs {
		at := time.Duration(i) * s.step()
		if at >= from && at < to && sec.hist != nil {
			h.Merge(sec.hist)
		}
	}
	return latencyOf(h)
}

// distributionPercentiles are the points of Latency.Distribution: enough for
// a percentile-spectrum chart on a log axis.
var distributionPercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	l := Latency{Count: h.TotalCount()}
	if l.Count == 0 {
		return l
	}
	l.MinMicros = h.Min()
	l.MeanMicros = h.Mean()
	l.P50Micros = h.ValueAtQuantile(50)
	l.P90Micros = h.ValueAtQuantile(90)
	l.P99Micros = h.ValueAtQuantile(99)
	l.P999Micros = h.ValueAtQuantile(99.9)
	l.MaxMicros = h.Max()
	vals := h.ValueAtPercentilesSlice(distributionPercentiles)
	l.Distribution = make([]Quantile, len(vals))
	for i, v := range vals {
		l.Distribution[i] = Quantile{Percentile: distributionPercentiles[i], Micros: v}
	}
	return l
}

// uniqueSorted sorts s and removes repeats, in place.
func uniqueSorted(s []uint64) []uint64 {
	slices.Sort(s)
	return slices.Compact(s)
}
