package loadtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/enginetest"
)

func mustRun(t *testing.T, cfg Config) (*Result, time.Duration) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	start := time.Now()
	res, err := g.Run(context.Background())
	if err != nil {
		t.Fatalf("Run(%+v): %v", cfg, err)
	}
	return res, time.Since(start)
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestClosedLoopCountsAndStops(t *testing.T) {
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.Fail503Every = 10 })
	cfg := Config{Target: srv.URL, Mode: ModeClosed, Conns: 4, Duration: 400 * time.Millisecond}
	res, took := mustRun(t, cfg)
	rep := res.Report

	if took < cfg.Duration || took > cfg.Duration+2*time.Second {
		t.Fatalf("run took %v; want it to stop by itself just after %v", took, cfg.Duration)
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
		l.P99Micros <= l.P999Micros && l.P999Micros <= l.MaxMicros && l.MaxMicros < int64(time.Second/time.Microsecond)) {
		t.Fatalf("latency percentiles out of order or implausible: %+v", l)
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
	srv := enginetest.StartFake(t, nil)
	cfg := Config{Target: srv.URL, Conns: 2, Warmup: 200 * time.Millisecond, Duration: 200 * time.Millisecond}
	res, _ := mustRun(t, cfg)
	c := res.Report.Counts
	if c.WarmupRequests == 0 || c.Requests == 0 {
		t.Fatalf("warmup requests %d, measured %d; want both > 0", c.WarmupRequests, c.Requests)
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
			cfg := Config{Target: srv.URL, Mode: mode, Conns: 3, Rate: 2000, MaxRequests: 50, Duration: 10 * time.Second}
			res, took := mustRun(t, cfg)
			if got := srv.Requests(); got != 50 || res.Report.Counts.Requests != 50 {
				t.Fatalf("server saw %d requests, report %d; want 50", got, res.Report.Counts.Requests)
			}
			if took > 5*time.Second {
				t.Fatalf("run took %v; want it to stop after 50 requests", took)
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
	cfg := Config{Target: srv.URL, Mode: ModeOpen, Rate: 200, MaxInFlight: 64, Duration: time.Second}
	res, took := mustRun(t, cfg)
	rep := res.Report
	c := rep.Counts
	if took > cfg.Duration+2*time.Second {
		t.Fatalf("run took %v; want it to stop by itself after %v", took, cfg.Duration)
	}
	if c.Requests < 190 || c.Requests > 200 || c.DroppedByGenerator != 0 {
		t.Fatalf("sent %d requests, dropped %d; want ~200 (rate 200/s for 1s) and none dropped", c.Requests, c.DroppedByGenerator)
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
	// connection waits out the stall, so only one request is slow.
	const stall = 50 * time.Millisecond
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) {
		f.Serialize, f.StallOn, f.Stall, f.Delay = true, 40, stall, 5*time.Millisecond
	})
	res, _ := mustRun(t, Config{Target: srv.URL, Conns: 1, Duration: time.Second})
	l := res.Report.Latency
	if l.MaxMicros < stall.Microseconds() {
		t.Fatalf("max %dµs; want the stall (%v) seen once", l.MaxMicros, stall)
	}
	if l.P90Micros >= 25_000 {
		t.Fatalf("closed loop p90 %dµs; want the stall to be one slow request only", l.P90Micros)
	}
}

func TestOpenLoopDropsWhenInFlightBoundIsReached(t *testing.T) {
	srv := enginetest.StartFake(t, func(f *enginetest.FakeServer) { f.Delay = 20 * time.Millisecond })
	cfg := Config{Target: srv.URL, Mode: ModeOpen, Rate: 500, MaxInFlight: 1, Duration: 300 * time.Millisecond}
	res, _ := mustRun(t, cfg)
	c := res.Report.Counts
	if c.DroppedByGenerator == 0 {
		t.Fatalf("dropped %d; want drops: 150 requests scheduled, 1 in flight, 20ms each", c.DroppedByGenerator)
	}
	if sent := srv.Requests(); sent > 20 || c.Requests != sent {
		t.Fatalf("server saw %d, report %d; want at most ~300ms/20ms = 15 sent", sent, c.Requests)
	}
	if c.Requests+c.DroppedByGenerator != 150 {
		t.Fatalf("sent %d + dropped %d; want the 150 scheduled", c.Requests, c.DroppedByGenerator)
	}
}

func TestDuplicatesScenario(t *testing.T) {
	srv := enginetest.StartFake(t, nil)
	cfg := Config{Target: srv.URL, Conns: 4, Scenario: ScenarioDuplicates, MaxRequests: 3000, Duration: 20 * time.Second}
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
	res, _ := mustRun(t, Config{Target: "http://127.0.0.1:1", Conns: 2, Duration: 200 * time.Millisecond, RequestTimeout: 100 * time.Millisecond})
	c := res.Report.Counts
	if c.TransportErrors == 0 || c.Unknown != c.TransportErrors || c.Acked != 0 || len(res.AckedIDs())+len(res.RefusedIDs()) != 0 {
		t.Fatalf("counts %+v; want only transport errors, no ids acked or refused", c)
	}
}

func TestAdminMetricsScraped(t *testing.T) {
	srv := enginetest.StartFake(t, nil)
	res, _ := mustRun(t, Config{Target: srv.URL, Admin: srv.URL, Conns: 2, MaxRequests: 500, Duration: 5 * time.Second})
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

	res, _ = mustRun(t, Config{Target: srv.URL, Admin: "http://127.0.0.1:1", Conns: 1, MaxRequests: 5, Duration: 5 * time.Second})
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
