package ingest

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Admission control: a request's body bytes are charged against
// MaxInflightBodyBytes (503 at once when they would pass it), then it takes
// one of MaxInflight slots (try, wait at most MaxQueueWait, then 503).
// Refusals are counted in orderflow_admission_rejected_total by reason.

// reason labels orderflow_admission_rejected_total. reasonNames holds every
// reason this package emits; the metric's help lists exactly these
// (TestAdmissionReasonsMatchHelp).
type reason uint8

const (
	reasonLimit        reason = iota // no in-flight slot within MaxQueueWait: 503
	reasonBodyBytes                  // body bytes in flight at MaxInflightBodyBytes: 503
	reasonQueueFull                  // a pipeline queue refused the batch (pipeline.ErrOverloaded): 503
	reasonUnauthorized               // no valid API key: 401
	reasonRateLimitIP                // the client IP's token bucket is empty: 429
	reasonRateLimitKey               // the API key's token bucket is empty: 429
	numReasons
)

var reasonNames = [numReasons]string{"limit", "body_bytes", "queue_full", "unauthorized", "rate_limit_ip", "rate_limit_key"}

// admit charges a request's body bytes (cost, see bodyCost) against
// MaxInflightBodyBytes, then takes an admission slot. It fails fast on the
// bytes (503 at once: waiting would hold the body longer) and waits at most
// MaxQueueWait for a slot. It reports false when the request must be
// answered 503 (refusedOverloaded); on true, follow with release(cost).
func (s *Server) admit(cost int64) bool {
	if !s.acquireBytes(cost) {
		return false
	}
	if !s.acquire() {
		s.bodyBytes.Add(-cost)
		return false
	}
	return true
}

// release gives back what admit took.
func (s *Server) release(cost int64) {
	s.bodyBytes.Add(-cost)
	<-s.sem
	s.m.InFlightRequests.Dec()
}

// acquireBytes adds n to the body bytes in flight unless that would pass
// the cap; a request is always let in when no body is held, so a body
// larger than the cap is not refused forever.
func (s *Server) acquireBytes(n int64) bool {
	if n == 0 {
		return true
	}
	for {
		cur := s.bodyBytes.Load()
		if cur > 0 && cur+n > s.cfg.MaxInflightBodyBytes {
			s.rejected[reasonBodyBytes].Inc()
			return false
		}
		if s.bodyBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// bodyCost is what a request's body holds in memory: the raw body plus,
// when it was gunzipped, the decompressed copy.
func bodyCost(ctx *fasthttp.RequestCtx, body []byte) int64 {
	n := int64(len(ctx.Request.Body()))
	if len(body) > 0 && len(ctx.Request.Header.ContentEncoding()) > 0 && !bytes.EqualFold(ctx.Request.Header.ContentEncoding(), encIdentity) {
		n += int64(len(body))
	}
	return n
}

// acquire takes an admission slot: a non-blocking try first, then a wait of
// at most MaxQueueWait. It reports false when no slot came in time.
func (s *Server) acquire() bool {
	select {
	case s.sem <- struct{}{}:
		s.m.InFlightRequests.Inc()
		return true
	default:
	}
	t := getTimer(s.cfg.MaxQueueWait)
	defer putTimer(t)
	select {
	case s.sem <- struct{}{}:
		s.m.InFlightRequests.Inc()
		return true
	case <-t.C:
		s.rejected[reasonLimit].Inc()
		return false
	}
}
