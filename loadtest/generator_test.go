package loadtest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// mustRun runs cfg and returns the result and how long Run took. Run must
// stop by itself: it fails the test if Run has not returned a minute after
// its warmup, duration and one request timeout, a bound on the wait only
// (the tests check when a run stops on counts and events, never on how long
// it took, which depends on the machine's load).
func mustRun(t *testing.T, cfg Config) (*Result, time.Duration) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	c := g.Config()
	within := c.Warmup + c.Duration + c.RequestTimeout + time.Minute
	type outcome struct {
		res  *Result
		err  error
		took time.Duration
	}
	done := make(chan outcome, 1) // Run's goroutine never blocks on it, even after a timeout
	go func() {
		start := time.Now()
		res, err := g.Run(context.Background())
		done <- outcome{res, err, time.Since(start)}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("Run(%+v): %v", cfg, o.err)
		}
		return o.res, o.took
	case <-time.After(within):
		t.Fatalf("Run(%+v) still running after %v; want it to stop by itself", cfg, within)
		return nil, 0
	}
}

// untilMax is the Duration of the runs MaxRequests ends: far beyond what
// their requests take even on a busy machine, so the count ends them, not
// the clock.
const untilMax = 2 * time.Minute

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestClosedLoopCountsAndStops(t *testing.T) {
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.Fail503Every = 10 })
	cfg := Config{Target: srv.URL, Mode: ModeClosed, Conns: 4, Duration: 400 * time.Millisecond}
	res, took := mustRun(t, cfg) // fails if the run does not stop by itself
	rep := res.Report

	if took < cfg.Duration {
		t.Fatalf("run took %v; want it to last its %v", took, cfg.Duration)
	}
	c := rep.Counts
	sent := srv.Requests()
	if c.Requests != sent || c.Requests == 0 {
		t.Fatalf("counted %d requests; the server saw %d", c.Requests, sent)
	}
	if got, want := c.ByStatus["201"]+c.ByStatus["503"], c.Requests; got != want || len(c.ByStatus) != 2 {
		t.Fatalf("by status %v; want only 201 and 503 summing to %d", c.ByStatus, want)
	}
	if got, want := c.ByStatus["503"], sent/10; got != want {
		t.Fatalf("503s: got %d; want %d (every 10th of %d)", got, want, sent)
	}
	if c.Acked != c.ByStatus["201"] || c.Created != c.Acked || c.Refused != c.ByStatus["503"] || c.Unknown != 0 {
		t.Fatalf("counts %+v: acked/created/refused/unknown disagree with by_status", c)
	}
	if rep.Latency.Count != c.Acked {
		t.Fatalf("histogram holds %d latencies; want one per 2xx answer (%d)", rep.Latency.Count, c.Acked)
	}
	l := rep.Latency
	if !(l.MinMicros >= 1 && l.MinMicros <= l.P50Micros && l.P50Micros <= l.P90Micros && l.P90Micros <= l.P99Micros &&
		l.P99Micros <= l.P999Micros && l.P999Micros <= l.MaxMicros && l.MaxMicros <= took.Microseconds()) {
		t.Fatalf("latency percentiles out of order or implausible (above the run's %v): %+v", took, l)
	}
	var seriesAcked, seriesReq int64
	for i, s := range rep.Series {
		seriesAcked += s.Acked
		seriesReq += s.Requests
		if s.T != i || s.SpanSeconds <= 0 || s.SpanSeconds > 1 || s.SpanSeconds < 1 && i != len(rep.Series)-1 {
			t.Fatalf("series point %d = %+v; want t=%d and a full second unless it is the last", i, s, i)
		}
	}
	if seriesAcked != c.Acked || seriesReq != c.Requests {
		t.Fatalf("series sums acked %d requests %d; want %d and %d", seriesAcked, seriesReq, c.Acked, c.Requests)
	}
	if rep.Rates.AckedPerSecond <= 0 || rep.ElapsedSeconds < cfg.Duration.Seconds() {
		t.Fatalf("rates %+v over %.3fs; want a positive rate over at least %v", rep.Rates, rep.ElapsedSeconds, cfg.Duration)
	}

	wantAcked, wantRefused := srv.Snapshot()
	if got := sortedCopy(res.AckedIDs()); !slices.Equal(got, wantAcked) {
		t.Fatalf("acked ids: got %d, server acked %d (first %v vs %v)", len(got), len(wantAcked), got[:min(3, len(got))], wantAcked[:min(3, len(wantAcked))])
	}
	if got := sortedCopy(res.RefusedIDs()); !slices.Equal(got, wantRefused) {
		t.Fatalf("refused ids: got %d, server refused %d", len(got), len(wantRefused))
	}
	if c.AckedIDs != len(wantAcked) || c.RefusedIDs != len(wantRefused) {
		t.Fatalf("id counts %d/%d; want %d/%d", c.AckedIDs, c.RefusedIDs, len(wantAcked), len(wantRefused))
	}
	for _, id := range wantAcked {
		if !strings.HasPrefix(id, "lt_"+rep.RunID+"_") {
			t.Fatalf("order id %q: want prefix lt_%s_", id, rep.RunID)
		}
	}
	if srv.Stats().WithoutKey != sent || srv.Stats().BadRequests != 0 || srv.Stats().ContentTypes["application/json"] != sent {
		t.Fatalf("orders scenario: %d of %d requests without Idempotency-Key (want all), %d bad bodies, content types %v",
			srv.Stats().WithoutKey, sent, srv.Stats().BadRequests, srv.Stats().ContentTypes)
	}
}

func TestWarmupIsSentButNotMeasured(t *testing.T) {
	// One connection. The server holds the first request, sent at once,
	// until the generator's usage probe scrapes /metrics, which it does when
	// the warmup ends; the next request is sent after that. So the warmup
	// holds exactly one request and the other 19 are measured, whatever the
	// machine's load (a window of a fixed length could hold none).
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.StallOn, f.StallGate = 1, gate })
	t.Cleanup(release) // before the server's own cleanup waits for its handlers
	cfg := Config{Target: srv.URL, Admin: srv.URL, Conns: 1, Warmup: 200 * time.Millisecond, Duration: untilMax, MaxRequests: 20}
	go func() {
		deadline := time.Now().Add(time.Minute)
		for srv.Scrapes() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		release()
	}()
	res, _ := mustRun(t, cfg)
	c := res.Report.Counts
	if c.WarmupRequests != 1 || c.Requests != 19 {
		t.Fatalf("warmup requests %d, measured %d; want 1 (held until the warmup ended) and 19", c.WarmupRequests, c.Requests)
	}
	if got, want := c.WarmupRequests+c.Requests, srv.Requests(); got != want {
		t.Fatalf("warmup %d + measured %d = %d; the server saw %d", c.WarmupRequests, c.Requests, got, want)
	}
	if c.AckedIDs != int(srv.Stats().Created) {
		t.Fatalf("acked ids %d; want every order acknowledged in warmup and after (%d)", c.AckedIDs, srv.Stats().Created)
	}
	if res.Report.Latency.Count != c.Acked {
		t.Fatalf("histogram has %d values; want only the %d measured ones", res.Report.Latency.Count, c.Acked)
	}
}

func TestMaxRequestsBoundsTheRun(t *testing.T) {
	for _, mode := range []string{ModeClosed, ModeOpen} {
		t.Run("mode="+mode, func(t *testing.T) {
			srv := enginetest.StartFake(t, nil)
			cfg := Config{Target: srv.URL, Mode: mode, Conns: 3, Rate: 2000, MaxRequests: 50, Duration: untilMax}
			res, took := mustRun(t, cfg)
			if got := srv.Requests(); got != 50 || res.Report.Counts.Requests != 50 {
				t.Fatalf("server saw %d requests, report %d; want 50", got, res.Report.Counts.Requests)
			}
			if took >= cfg.Duration {
				t.Fatalf("run took %v, its whole duration; want it to stop after 50 requests", took)
			}
		})
	}
}

func TestOpenLoopMeasuresFromSchedule(t *testing.T) {
	// A server that handles one request at a time and stalls 50ms on the
	// 40th: requests scheduled during the stall must show the queueing.
	const stall = 50 * time.Millisecond
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) {
		f.Serialize, f.StallOn, f.Stall = true, 40, stall
	})
	// MaxInFlight above the 200 requests scheduled: none can be dropped,
	// however far behind a busy machine puts the server.
	cfg := Config{Target: srv.URL, Mode: ModeOpen, Rate: 200, MaxInFlight: 256, Duration: time.Second}
	res, _ := mustRun(t, cfg) // fails if the run does not stop by itself
	rep := res.Report
	c := rep.Counts
	if c.Requests != 200 || c.DroppedByGenerator != 0 {
		t.Fatalf("sent %d requests, dropped %d; want the 200 scheduled (rate 200/s for 1s) and none dropped", c.Requests, c.DroppedByGenerator)
	}
	if rep.Latency.MaxMicros < stall.Microseconds() {
		t.Fatalf("max latency %dµs; want at least the %v stall", rep.Latency.MaxMicros, stall)
	}
	// Requests scheduled every 5ms during the stall wait 45, 40, 35, 30,
	// 25ms… for it; measured from their send time they would look fast.
	// That is ≥5 of ~200 latencies at ≥25ms, so p99 is ≥25ms.
	if rep.Latency.P99Micros < 25_000 {
		t.Fatalf("p99 %dµs; want ≥25ms: latencies must include the queueing behind the stall", rep.Latency.P99Micros)
	}
	if rate := rep.Rates.ScheduledPerSecond; rate != 200 {
		t.Fatalf("scheduled rate %v; want 200", rate)
	}
}

func TestClosedLoopHidesTheStall(t *testing.T) {
	// The contrast to TestOpenLoopMeasuresFromSchedule: one closed-loop
	// connection waits out the stall, so only one request is slow. The
	// stall is held by the test: the server holds the 40th request until
	// released, and the test releases it once the stall has lasted `stall`
	// and no other request arrived meanwhile (a closed loop sends nothing
	// while it waits). The stall is long next to a request to a local
	// server, so "slow" means "took as long as the stall".
	const stall = time.Second
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) {
		f.Serialize, f.StallOn, f.StallGate = true, 40, gate
	})
	t.Cleanup(release) // before the server's own cleanup waits for its handlers
	cfg := Config{Target: srv.URL, Conns: 1, MaxRequests: 100, Duration: untilMax}
	arrived := make(chan int64, 1) // requests that had arrived when the stall ended
	go func() {
		deadline := time.Now().Add(time.Minute)
		for srv.Requests() < 40 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(stall)
		n := srv.Requests()
		release()
		arrived <- n
	}()
	res, _ := mustRun(t, cfg)
	if n := <-arrived; n != 40 {
		t.Fatalf("%d requests had arrived when the 40th had been held %v; want 40: a closed loop sends nothing while it waits", n, stall)
	}
	l := res.Report.Latency
	if l.Count != 100 {
		t.Fatalf("%d latencies; want one per request (100)", l.Count)
	}
	if l.MaxMicros < stall.Microseconds() {
		t.Fatalf("max %dµs; want the stall (%v) seen once", l.MaxMicros, stall)
	}
	// Of 100 values, P99 is the 99th: below the stall unless another
	// request was as slow.
	if l.P99Micros >= stall.Microseconds() {
		t.Fatalf("closed loop p99 %dµs; want the stall (%v) to be one slow request only: %+v", l.P99Micros, stall, l)
	}
}

func TestOpenLoopDropsWhenInFlightBoundIsReached(t *testing.T) {
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.Delay = 20 * time.Millisecond })
	cfg := Config{Target: srv.URL, Mode: ModeOpen, Rate: 500, MaxInFlight: 1, Duration: 300 * time.Millisecond}
	res, took := mustRun(t, cfg)
	c := res.Report.Counts
	if c.DroppedByGenerator == 0 {
		t.Fatalf("dropped %d; want drops: 150 requests scheduled, 1 in flight, 20ms each", c.DroppedByGenerator)
	}
	// One at a time, each held 20ms by the server: however late a busy
	// machine makes the run, no more than one per 20ms of it were sent.
	if sent, most := srv.Requests(), int64(took/(20*time.Millisecond))+1; sent > most || c.Requests != sent {
		t.Fatalf("server saw %d, report %d; want at most %d (%v / 20ms, one in flight)", sent, c.Requests, most, took)
	}
	if c.Requests+c.DroppedByGenerator != 150 {
		t.Fatalf("sent %d + dropped %d; want the 150 scheduled", c.Requests, c.DroppedByGenerator)
	}
}

func TestDuplicatesScenario(t *testing.T) {
	srv := enginetest.StartFake(t, nil)
	cfg := Config{Target: srv.URL, Conns: 4, Scenario: ScenarioDuplicates, MaxRequests: 3000, Duration: untilMax}
	res, _ := mustRun(t, cfg)
	c := res.Report.Counts
	d := c.Duplicates
	if c.Requests != 3000 {
		t.Fatalf("requests %d; want 3000", c.Requests)
	}
	// 5% of 3000 = 150, σ ≈ 12.
	if d.Sent < 100 || d.Sent > 200 {
		t.Fatalf("duplicates sent %d of %d; want ~5%%", d.Sent, c.Requests)
	}
	if d.Got200 != d.Sent || d.Got201 != 0 || d.GotOther != 0 {
		t.Fatalf("duplicate answers %+v; want all 200", d)
	}
	if srv.Stats().KeyMismatch != 0 || srv.Stats().WithoutKey != 0 || srv.Stats().Resent != d.Sent {
		t.Fatalf("server: %d resends with a different key or body, %d requests without a key, %d resends seen; want 0, 0, %d",
			srv.Stats().KeyMismatch, srv.Stats().WithoutKey, srv.Stats().Resent, d.Sent)
	}
	if c.ByStatus["200"] != d.Sent || c.ByStatus["201"] != 3000-d.Sent || c.Acked != 3000 {
		t.Fatalf("by status %v; want 200 for the %d resends and 201 for the rest", c.ByStatus, d.Sent)
	}
	if got, want := len(res.AckedIDs()), int(3000-d.Sent); got != want {
		t.Fatalf("distinct acked ids %d; want %d (resends are the same ids)", got, want)
	}
}

func TestUnreachableServerCountsTransportErrors(t *testing.T) {
	// Port 1 on loopback: nothing listens, every connect is refused.
	res, _ := mustRun(t, Config{Target: "http://127.0.0.1:1", Conns: 2, MaxRequests: 10, Duration: untilMax, RequestTimeout: 100 * time.Millisecond})
	c := res.Report.Counts
	if c.TransportErrors == 0 || c.Unknown != c.TransportErrors || c.Acked != 0 || len(res.AckedIDs())+len(res.RefusedIDs()) != 0 {
		t.Fatalf("counts %+v; want only transport errors, no ids acked or refused", c)
	}
}

func TestAdminMetricsScraped(t *testing.T) {
	srv := enginetest.StartFake(t, nil)
	res, _ := mustRun(t, Config{Target: srv.URL, Admin: srv.URL, Conns: 2, MaxRequests: 500, Duration: untilMax})
	rep := res.Report
	s := rep.Server
	if s == nil {
		t.Fatalf("no server usage; server error %q", rep.ServerError)
	}
	// The fake server's counters: 0.1ms CPU, 2048 B and 1µs GC per request.
	if len(s.Missing) != 0 || s.CPUSecondsPer1000Acked < 0.099 || s.CPUSecondsPer1000Acked > 0.101 ||
		s.AllocBytesPerAcked != 2048 || s.GCPauseFraction <= 0 || s.Counters[`orderflow_http_requests_total{code="201"}`] != 500 {
		t.Fatalf("server usage %+v; want 0.1 CPU s/1000, 2048 B/order, GC > 0, 500 requests counted", s)
	}
	if rep.Generator.CPUSeconds <= 0 {
		t.Fatalf("generator usage %+v; want CPU > 0", rep.Generator)
	}

	res, _ = mustRun(t, Config{Target: srv.URL, Admin: "http://127.0.0.1:1", Conns: 1, MaxRequests: 5, Duration: untilMax})
	if res.Report.Server != nil || res.Report.ServerError == "" || res.Report.Counts.Acked != 5 {
		t.Fatalf("unreachable admin: server %+v, error %q, acked %d; want no usage, an error, and the run done anyway",
			res.Report.Server, res.Report.ServerError, res.Report.Counts.Acked)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(cfg Config, wantErr string) {
		t.Helper()
		_, err := New(cfg)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("New(%+v): got %v; want error containing %q", cfg, err, wantErr)
		}
	}
	f(Config{}, "")
	f(Config{Target: "http://localhost:8080"}, "")
	f(Config{Target: "http://[::1]:8080"}, "")
	f(Config{Target: "http://10.0.0.1:8080"}, "not a loopback")
	f(Config{Target: "http://10.0.0.1:8080", AllowRemote: true}, "")
	f(Config{Target: "ftp://127.0.0.1"}, "want http")
	f(Config{Mode: "burst"}, "mode")
	f(Config{Mode: ModeOpen}, "rate")
	f(Config{Scenario: "x"}, "scenario")
	f(Config{Items: 101}, "items")
	f(Config{SKUs: []string{"milk 1l"}}, "sku")
	f(Config{RunID: "a/b"}, "run id")
	f(Config{Duration: -time.Second}, "duration")
}
