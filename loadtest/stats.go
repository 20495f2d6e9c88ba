package loadtest

import (
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
	hist    *hdrhistogram.Histogram // latency of measured 2xx answers, µs
	status  [statusCodeSize]int64   // measured answers by status code
	other   int64                   // measured answers with a code outside [0, 600)
	errs    int64                   // measured transport errors and timeouts (no status)
	warmup  int64                   // requests sent during warmup
	acked   []uint64                // order numbers acknowledged, warmup included
	refused []uint64                // order numbers refused, warmup included
	dup     DuplicateCounts         // measured resends
}

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)}
}

// observe records one finished request. status is 0 for a transport error.
func (r *recorder) observe(n uint64, status int, dup, measured bool, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch classify(status) {
	case outcomeAcked:
		if !dup { // a resend is of an order already recorded as acked
			r.acked = append(r.acked, n)
		}
	case outcomeRefused:
		r.refused = append(r.refused, n)
	}
	if !measured {
		r.warmup++
		return
	}
	switch {
	case status == 0:
		r.errs++
	case status > 0 && status < statusCodeSize:
		r.status[status]++
	default:
		r.other++
	}
	if status >= 200 && status < 300 {
		_ = r.hist.RecordValue(clampMicros(lat)) // clamped, so it cannot be out of range
	}
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

// merge adds o into r once the workers have stopped. o must not be used
// afterwards.
func (r *recorder) merge(o *recorder) {
	r.hist.Merge(o.hist)
	for i, c := range o.status {
		r.status[i] += c
	}
	r.other += o.other
	r.errs += o.errs
	r.warmup += o.warmup
	r.acked = append(r.acked, o.acked...)
	r.refused = append(r.refused, o.refused...)
	r.dup.Sent += o.dup.Sent
	r.dup.Got200 += o.dup.Got200
	r.dup.Got201 += o.dup.Got201
	r.dup.GotOther += o.dup.GotOther
}

// counts summarizes the merged recorder.
func (r *recorder) counts() Counts {
	c := Counts{ByStatus: map[string]int64{}, TransportErrors: r.errs, WarmupRequests: r.warmup, Duplicates: r.dup}
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

func clampMicros(d time.Duration) int64 {
	us := d.Microseconds()
	return min(max(us, histMinMicros), histMaxMicros)
}

// series is the per-second time series of the measured window, indexed by
// the second (since measuring started) in which each answer arrived. Safe
// for concurrent use: one mutex, held for a histogram update (~50 ns); at
// the 10⁴–10⁵ answers/s one box reaches, that costs well under 1% of a core.
type series struct {
	mu   sync.Mutex
	secs []*second
}

type second struct {
	requests, acked, errors int64
	hist                    *hdrhistogram.Histogram // 2xx latency, µs
}

// observe records an answer that arrived at offset at (since measuring
// started) with the given status (0 = transport error) and latency.
func (s *series) observe(at time.Duration, status int, lat time.Duration) {
	i := int(max(at, 0) / time.Second)
	s.mu.Lock()
	for len(s.secs) <= i {
		s.secs = append(s.secs, &second{})
	}
	sec := s.secs[i]
	sec.requests++
	switch {
	case status >= 200 && status < 300:
		if classify(status) == outcomeAcked {
			sec.acked++
		}
		if sec.hist == nil {
			sec.hist = hdrhistogram.New(histMinMicros, histMaxMicros, secondSigFigs)
		}
		_ = sec.hist.RecordValue(clampMicros(lat))
	default:
		sec.errors++
	}
	s.mu.Unlock()
}

// points returns the series for the report; call it after the workers
// stop. elapsed is the measured window, which usually ends inside the last
// second.
func (s *series) points(elapsed time.Duration) []Second {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Second, len(s.secs))
	for i, sec := range s.secs {
		span := min(max(elapsed.Seconds()-float64(i), 0.001), 1)
		p := Second{T: i, SpanSeconds: span, Requests: sec.requests, Acked: sec.acked, Errors: sec.errors}
		if sec.hist != nil {
			p.P50Micros = sec.hist.ValueAtQuantile(50)
			p.P99Micros = sec.hist.ValueAtQuantile(99)
			p.MaxMicros = sec.hist.Max()
		}
		out[i] = p
	}
	return out
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
