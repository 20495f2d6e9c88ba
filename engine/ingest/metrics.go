package ingest

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/orderflow/orderflow/engine/metrics"
)

// result labels orderflow_orders_total.
type result uint8

const (
	resCreated result = iota
	resDuplicate
	resConflict
	resInvalid
	resUnprocessable
	resRejected
	resOverloaded
	resFailed
	resTimeout
	numResults
)

var resultNames = [numResults]string{"created", "duplicate", "conflict", "invalid", "unprocessable", "rejected", "overloaded", "failed", "timeout"}

// updateResult labels orderflow_status_updates_total.
type updateResult uint8

const (
	updApplied updateResult = iota
	updNoop
	updNotFound
	updInvalidTransition
	updInvalid
	updOverloaded
	updFailed
	updTimeout
	numUpdateResults
)

var updateResultNames = [numUpdateResults]string{"applied", "noop", "not_found", "invalid_transition", "invalid", "overloaded", "failed", "timeout"}

// orderRefused is the orders_total label of an order refused before it was
// submitted or by the pipeline: a (statusFor, refusalAnswer) answer.
func orderRefused(a answer) result {
	switch a.status {
	case fasthttp.StatusUnprocessableEntity:
		return resUnprocessable
	case fasthttp.StatusServiceUnavailable:
		return resOverloaded
	}
	return resInvalid
}

// updateRefused is the status_updates_total label of a status change
// refused before it was submitted or by the pipeline.
func updateRefused(a answer) updateResult {
	if a.status == fasthttp.StatusServiceUnavailable {
		return updOverloaded
	}
	return updInvalid
}

// routeMetrics holds a route's per-code collectors, resolved once so the
// hot path does no label lookups.
type routeMetrics struct {
	name     string
	m        *metrics.Metrics
	counters map[int]prometheus.Counter
	hists    map[int]prometheus.Observer
}

var knownCodes = []int{200, 201, 400, 401, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500, 503}

func (r *routeMetrics) init(m *metrics.Metrics, name string) {
	r.name, r.m = name, m
	r.counters = make(map[int]prometheus.Counter, len(knownCodes))
	r.hists = make(map[int]prometheus.Observer, len(knownCodes))
	for _, c := range knownCodes {
		code := strconv.Itoa(c)
		r.counters[c] = m.HTTPRequests.WithLabelValues(name, code)
		r.hists[c] = m.HTTPDuration.WithLabelValues(name, code)
	}
}

func (r *routeMetrics) observe(code int, d time.Duration) {
	c, ok := r.counters[code]
	if !ok { // a code outside the known set: slow path, still counted
		code := strconv.Itoa(code)
		r.m.HTTPRequests.WithLabelValues(r.name, code).Inc()
		r.m.HTTPDuration.WithLabelValues(r.name, code).Observe(d.Seconds())
		return
	}
	c.Inc()
	r.hists[code].Observe(d.Seconds())
}
