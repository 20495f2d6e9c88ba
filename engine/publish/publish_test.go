package publish

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/engine/internal/bytesutil"
	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTopic = "orders"

func quietLog() *slog.Logger {
	if os.Getenv("PUBLISH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startBroker(t testing.TB, partitions int32) *Embedded {
	t.Helper()
	e, err := StartEmbedded("127.0.0.1:0", testTopic, partitions, quietLog())
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// testConfig is fast enough for tests.
func testConfig(e *Embedded) Config {
	return Config{
		Brokers:         e.Addrs(),
		Linger:          time.Millisecond,
		DeliveryTimeout: 500 * time.Millisecond,
		SweepGrace:      time.Second,
		SweepInterval:   50 * time.Millisecond,
		DeleteInterval:  5 * time.Millisecond,
		MetadataMinAge:  100 * time.Millisecond,
	}
}

func startPublisher(t testing.TB, cfg Config, ob Outbox) (*Publisher, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	p, err := New(cfg, ob, m, quietLog())
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	p.Start()
	shutdownAtCleanup(t, p)
	return p, m
}

// shutdownAtCleanup shuts p down when the test ends.
func shutdownAtCleanup(t testing.TB, p *Publisher) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReady waits until the start-up hold is gone (the gauge loop saw an
// empty outbox), so that status changes take the fast path.
func waitReady(t testing.TB, p *Publisher) {
	t.Helper()
	waitFor(t, "start-up hold released", 5*time.Second, func() bool { return !p.gate.active.Load() })
}

// eventSet builds events whose strings and payloads are views into one
// buffer, like a batch arena's; scribble overwrites it, as reuse would.
type eventSet struct {
	buf []byte // fixed capacity: views stay put
	evs []order.Event
}

// put copies b into s.buf and returns the view.
func (s *eventSet) put(b []byte) []byte {
	if s.buf == nil {
		s.buf = make([]byte, 0, 1<<20)
	}
	if len(s.buf)+len(b) > cap(s.buf) {
		panic("eventSet buffer full")
	}
	s.buf = append(s.buf, b...)
	return s.buf[len(s.buf)-len(b) : len(s.buf) : len(s.buf)]
}

// nextSeq numbers the test events in the order they are made, as the
// store's outbox_seq does at commit.
var nextSeq atomic.Int64

func (s *eventSet) add(orderN int, version int32, at time.Time) {
	id := bytesutil.String(s.put(fmt.Appendf(nil, "ord_%05d", orderN)))
	typ, payload := order.EventCreated, fmt.Appendf(nil, `{"order":{"id":%q,"user_id":"u_%d","status":"created","currency":"EUR","total_cents":%d,"version":1,"items":[{"sku":"milk-1l","qty":2,"price_cents":129}]}}`, id, orderN%97, 258+orderN)
	if version > 1 {
		typ = order.EventStatusChanged
		payload = fmt.Appendf(nil, `{"order_id":%q,"status":"s%d","previous_status":"s%d","version":%d,"at":"%s"}`, id, version, version-1, version, at.UTC().Format(time.RFC3339Nano))
	}
	ev := order.Event{
		Seq:     nextSeq.Add(1),
		OrderID: id,
		Version: version,
		Type:    bytesutil.String(s.put([]byte(typ))),
		Time:    at,
		Payload: s.put(payload),
	}
	// Every third event has a trace context, every sixth a tracestate too.
	if orderN%3 == 0 {
		ev.TraceParent, _ = order.ParseTraceParent(fmt.Appendf(nil, "00-%032x-%016x-01", orderN+1, int(version)))
		if orderN%6 == 0 {
			ev.TraceState = bytesutil.String(s.put(fmt.Appendf(nil, "rojo=%d,congo=t61rcWkgMzE", orderN)))
		}
	}
	s.evs = append(s.evs, ev)
}

// snapshot returns deep copies, for checking after scribble.
func (s *eventSet) snapshot() []order.Event {
	out := make([]order.Event, len(s.evs))
	for i, ev := range s.evs {
		ev.OrderID, ev.Type, ev.Payload = strings.Clone(ev.OrderID), strings.Clone(ev.Type), slices.Clone(ev.Payload)
		ev.TraceState = strings.Clone(ev.TraceState)
		out[i] = ev
	}
	return out
}

// scribble overwrites every byte the events point into.
func (s *eventSet) scribble() {
	for i := range s.buf {
		s.buf[i] = 'X'
	}
}

// val reads a counter or gauge from m's registry; labels are name, value
// pairs. A series that does not exist yet reads 0.
func val(m *metrics.Metrics, name string, labels ...string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, mt := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			return mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
		}
	}
	return 0
}

func ceID(ev order.Event) string { return ev.OrderID + "/" + strconv.Itoa(int(ev.Version)) }

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// consumeUntil reads the topic from the start until every ce_id in want has
// been seen, and returns everything read (in per-partition offset order).
func consumeUntil(t testing.TB, e *Embedded, want []order.Event, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.Addrs()...),
		kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	missing := make(map[string]bool, len(want))
	for _, ev := range want {
		missing[ceID(ev)] = true
	}
	var recs []*kgo.Record
	deadline := time.Now().Add(timeout)
	for len(missing) > 0 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			id, _ := header(r, "ce_id")
			delete(missing, id)
		})
	}
	if len(missing) > 0 {
		some := make([]string, 0, 5)
		for id := range missing {
			if len(some) == 5 {
				break
			}
			some = append(some, id)
		}
		t.Fatalf("after %v, %d of %d events not on the topic, e.g. %v (read %d records)", timeout, len(missing), len(want), some, len(recs))
	}
	return recs
}

// checkRecords checks every record against its event (api/asyncapi.yaml,
// docs/api.md "Events") and the ordering promise: per order, one partition, and a consumer
// that dedupes on ce_id and ignores versions it has passed sees versions
// 1, 2, ... with no gap.
func checkRecords(t testing.TB, recs []*kgo.Record, want []order.Event) {
	t.Helper()
	checkRecordsOrder(t, recs, want, true)
}

// checkRecordsOrder is checkRecords with the version-order check optional.
func checkRecordsOrder(t testing.TB, recs []*kgo.Record, want []order.Event, ordered bool) {
	t.Helper()
	byID := make(map[string]order.Event, len(want))
	last := make(map[string]int32)
	for _, ev := range want {
		byID[ceID(ev)] = ev
		last[ev.OrderID] = max(last[ev.OrderID], ev.Version)
	}
	part := make(map[string]int32)
	seen := make(map[string]int32)
	for _, r := range recs {
		id, _ := header(r, "ce_id")
		ev, ok := byID[id]
		if !ok {
			t.Fatalf("record with unexpected ce_id %q", id)
		}
		if r.Topic != testTopic || string(r.Key) != ev.OrderID || string(r.Value) != string(ev.Payload) {
			t.Fatalf("record %s: topic %q key %q value %q; want %q, %q, %q", id, r.Topic, r.Key, r.Value, testTopic, ev.OrderID, ev.Payload)
		}
		if !r.Timestamp.Equal(ev.Time.Truncate(time.Millisecond)) {
			t.Fatalf("record %s: timestamp %v; want %v", id, r.Timestamp, ev.Time.Truncate(time.Millisecond))
		}
		wantHdr := map[string]string{
			"ce_specversion": "1.0",
			"ce_type":        ev.Type,
			"ce_source":      "orderflow",
			"ce_id":          id,
			"ce_time":        ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
			"content-type":   "application/json",
		}
		if ev.TraceParent.Valid() {
			wantHdr["traceparent"] = ev.TraceParent.String()
		}
		if ev.TraceState != "" {
			wantHdr["tracestate"] = ev.TraceState
		}
		if len(r.Headers) != len(wantHdr) {
			t.Fatalf("record %s: %d headers %v; want %v", id, len(r.Headers), r.Headers, wantHdr)
		}
		for k, v := range wantHdr {
			if got, _ := header(r, k); got != v {
				t.Fatalf("record %s: header %s = %q; want %q", id, k, got, v)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, wantHdr["ce_time"]); err != nil {
			t.Fatalf("ce_time %q is not RFC 3339: %v", wantHdr["ce_time"], err)
		}
		if p, ok := part[ev.OrderID]; ok && p != r.Partition {
			t.Fatalf("order %s in partitions %d and %d", ev.OrderID, p, r.Partition)
		}
		part[ev.OrderID] = r.Partition
		switch s := seen[ev.OrderID]; {
		case !ordered:
			seen[ev.OrderID] = max(s, ev.Version)
		case ev.Version <= s: // a repeat: the consumer ignores it
		case ev.Version == s+1:
			seen[ev.OrderID] = ev.Version
		default:
			t.Fatalf("order %s: version %d arrived after %d (versions out of order)", ev.OrderID, ev.Version, s)
		}
	}
	for o, v := range last {
		if seen[o] != v {
			t.Fatalf("order %s: consumer saw versions up to %d; want %d", o, seen[o], v)
		}
	}
}

func TestPublishRoundTrip(t *testing.T) {
	e := startBroker(t, 3)
	ob := newFakeOutbox()
	p, m := startPublisher(t, testConfig(e), ob)
	waitReady(t, p)

	base := time.Now().Truncate(time.Microsecond)
	var all []order.Event
	for v := int32(1); v <= 3; v++ {
		var s eventSet
		for o := range 50 {
			s.add(o, v, base.Add(time.Duration(int(v)*1000+o)*time.Microsecond))
		}
		evs := s.snapshot()
		ob.insert(time.Now(), evs...)
		for i := 0; i < len(s.evs); i += 10 { // as several group commits
			p.Publish(s.evs[i : i+10])
		}
		s.scribble()
		all = append(all, evs...)
	}

	recs := consumeUntil(t, e, all, 10*time.Second)
	if len(recs) != len(all) {
		t.Errorf("read %d records; want %d (no repeats without faults)", len(recs), len(all))
	}
	checkRecords(t, recs, all)
	waitFor(t, "outbox rows deleted", 5*time.Second, func() bool { return ob.len() == 0 })
	if got := val(m, "orderflow_events_published_total", "path", "fast", "result", "ok"); got != float64(len(all)) {
		t.Errorf("published fast ok = %v; want %d", got, len(all))
	}
	if got := val(m, "orderflow_events_published_total", "path", "sweep", "result", "ok"); got != 0 {
		t.Errorf("published sweep ok = %v; want 0", got)
	}
	if got := val(m, "orderflow_outbox_deleted_total"); got != float64(len(all)) {
		t.Errorf("outbox deleted = %v; want %d", got, len(all))
	}
	if got := val(m, "orderflow_publish_fastpath_skipped_total"); got != 0 {
		t.Errorf("publish dropped = %v; want 0", got)
	}
}

// TestKafkaAway fails every produce for a while: Publish keeps returning at
// once, the records fail after DeliveryTimeout, the sweeper fails too until
// the broker is back, and then republishes everything.
func TestKafkaAway(t *testing.T) {
	e := startBroker(t, 3)
	ob := newFakeOutbox()
	p, m := startPublisher(t, testConfig(e), ob)
	waitReady(t, p)

	fault := e.Cluster().Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: testTopic,
		Err:   kerr.NotEnoughReplicas, // retriable: the client keeps trying until DeliveryTimeout
		Count: -1,
	})
	base := time.Now().Truncate(time.Microsecond)
	var all []order.Event
	var slowest time.Duration
	for v := int32(1); v <= 2; v++ {
		var s eventSet
		for o := range 40 {
			s.add(o, v, base.Add(time.Duration(int(v)*1000+o)*time.Microsecond))
		}
		evs := s.snapshot()
		ob.insert(time.Now(), evs...)
		for i := 0; i < len(s.evs); i += 8 {
			t0 := time.Now()
			p.Publish(s.evs[i : i+8])
			slowest = max(slowest, time.Since(t0))
		}
		s.scribble()
		all = append(all, evs...)
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("Publish took %v while Kafka was away; it must not block", slowest)
	}
	// Let a sweep give up against the fault (DeliveryTimeout + 5s) before
	// clearing it: its records then stay in flight behind the fast path's.
	waitFor(t, "a sweep to give up", 15*time.Second, func() bool {
		return val(m, "orderflow_outbox_sweeps_total", "result", "error") > 0
	})
	// Nothing is failed on a deadline: a failed v1 with a delivered v2 would
	// put the order out of order on the topic. (Failing fast-path records at
	// a deadline, as an earlier version did, made this test's version-order
	// check fail once the fault cleared.)
	if got := val(m, "orderflow_events_published_total", "path", "fast", "result", "error"); got != 0 {
		t.Errorf("fast path errors = %v; want 0 (records wait in the client, they are not failed)", got)
	}
	if p.inflight.Load() == 0 {
		t.Errorf("no record in flight while Kafka is away; want the fast path's to wait in the client")
	}
	if n := ob.len(); n == 0 {
		t.Fatalf("outbox empty while Kafka was away")
	}
	fault.Remove()

	recs := consumeUntil(t, e, all, 20*time.Second)
	checkRecords(t, recs, all)
	waitFor(t, "outbox drained", 10*time.Second, func() bool { return ob.len() == 0 })
	waitFor(t, "the abandoned sweep's records delivered too", 10*time.Second, func() bool {
		return val(m, "orderflow_events_published_total", "path", "sweep", "result", "ok") > 0
	})
	if p.sweepInflight.Load() != 0 {
		t.Errorf("swept records still in flight after the drain: %d", p.sweepInflight.Load())
	}
}

// TestBufferFull fills the client's buffer: Publish skips the rest at once
// and counts them, later events of those orders are held back so they do not
// overtake, and the sweeper publishes all of it in version order.
func TestBufferFull(t *testing.T) {
	e := startBroker(t, 3)
	ob := newFakeOutbox()
	cfg := testConfig(e)
	cfg.MaxBufferedRecords = 10
	cfg.Linger = 300 * time.Millisecond   // keeps the first 10 buffered while the rest arrive
	cfg.DeliveryTimeout = 2 * time.Second // well past the linger, on a busy box
	cfg.SweepGrace = 3 * time.Second
	p, m := startPublisher(t, cfg, ob)
	waitReady(t, p)

	base := time.Now().Truncate(time.Microsecond)
	var v1, v2 eventSet
	for o := range 20 {
		v1.add(o, 1, base.Add(time.Duration(o)*time.Microsecond))
		v2.add(o, 2, base.Add(time.Duration(1000+o)*time.Microsecond))
	}
	all := append(v1.snapshot(), v2.snapshot()...)
	ob.insert(time.Now(), v1.evs...)
	t0 := time.Now()
	p.Publish(v1.evs)
	if d := time.Since(t0); d > 50*time.Millisecond {
		t.Errorf("Publish with a full buffer took %v; want it to fail fast", d)
	}
	if got := val(m, "orderflow_publish_fastpath_skipped_total"); got != 10 {
		t.Fatalf("dropped = %v; want 10 (buffer of 10, 20 events)", got)
	}
	waitFor(t, "first 10 acknowledged", 5*time.Second, func() bool { return p.inflight.Load() == 0 })
	if got := val(m, "orderflow_events_published_total", "path", "fast", "result", "ok"); got != 10 {
		t.Fatalf("fast ok = %v (errors %v); want 10", got, val(m, "orderflow_events_published_total", "path", "fast", "result", "error"))
	}

	// The buffer has room again. Orders 0-9 were published, so their v2
	// takes the fast path; orders 10-19 still have v1 in the outbox, so
	// their v2 must wait for the sweeper rather than overtake it.
	ob.insert(time.Now(), v2.evs...)
	p.Publish(v2.evs)
	if got := val(m, "orderflow_publish_fastpath_skipped_total"); got != 20 {
		t.Errorf("dropped = %v; want 20 (v2 of orders 10-19 held)", got)
	}
	if got := p.gate.held(); got != 10 {
		t.Errorf("held orders = %d; want 10", got)
	}

	recs := consumeUntil(t, e, all, 15*time.Second)
	checkRecords(t, recs, all)
	waitFor(t, "outbox drained", 10*time.Second, func() bool { return ob.len() == 0 })
	if got := val(m, "orderflow_events_published_total", "path", "sweep", "result", "ok"); got != 20 {
		t.Errorf("sweep ok = %v; want 20", got)
	}
	waitFor(t, "holds released", 5*time.Second, func() bool { return p.gate.held() == 0 })
}

// TestShutdownFlushes shuts down while records wait in the client (long
// linger): Shutdown must flush them and delete their rows.
func TestShutdownFlushes(t *testing.T) {
	e := startBroker(t, 3)
	ob := newFakeOutbox()
	cfg := testConfig(e)
	cfg.Linger = 500 * time.Millisecond
	m := metrics.New()
	p, err := New(cfg, ob, m, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	waitReady(t, p)

	var s eventSet
	for o := range 200 {
		s.add(o, 1, time.Now().Truncate(time.Microsecond))
	}
	all := s.snapshot()
	ob.insert(time.Now(), all...)
	p.Publish(s.evs)
	s.scribble()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("Shutdown took %v", time.Since(t0))
	if n := ob.len(); n != 0 {
		t.Errorf("%d outbox rows left after Shutdown; want 0", n)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v; want nil", err)
	}
	recs := consumeUntil(t, e, all, 5*time.Second)
	if len(recs) != len(all) {
		t.Errorf("read %d records; want %d", len(recs), len(all))
	}
	checkRecords(t, recs, all)
}

// TestConcurrentSweepers runs two publishers over one outbox full of
// abandoned rows. With row locks only (the SweepEvents query as specified),
// SKIP LOCKED hands each row to one sweep, so nothing is published twice, but
// two sweeps may split one order's rows at a page boundary and publish its
// later versions first: version order is checked only with one sweep at a
// time (the store serialising sweeps with an advisory lock).
func TestConcurrentSweepers(t *testing.T) {
	for _, oneSweep := range []bool{false, true} {
		t.Run(fmt.Sprintf("one_sweep=%v", oneSweep), func(t *testing.T) {
			e := startBroker(t, 3)
			ob := newFakeOutbox()
			ob.oneSweep = oneSweep
			var s eventSet
			for o := range 300 {
				for v := int32(1); v <= 3; v++ {
					s.add(o, v, time.Now().Truncate(time.Microsecond))
				}
			}
			all := s.snapshot()
			ob.insert(time.Now().Add(-time.Hour), all...) // a crashed instance's leftovers
			cfg := testConfig(e)
			cfg.SweepLimit = 100
			var ms []*metrics.Metrics
			for range 2 {
				_, m := startPublisher(t, cfg, ob)
				ms = append(ms, m)
			}
			waitFor(t, "outbox drained", 20*time.Second, func() bool { return ob.len() == 0 })
			recs := consumeUntil(t, e, all, 10*time.Second)
			if len(recs) != len(all) {
				t.Errorf("read %d records; want %d (no row in two sweeps)", len(recs), len(all))
			}
			checkRecordsOrder(t, recs, all, oneSweep)
			for i, m := range ms {
				t.Logf("publisher %d swept %v events in %v runs", i,
					val(m, "orderflow_events_published_total", "path", "sweep", "result", "ok"), val(m, "orderflow_outbox_sweeps_total", "result", "ok"))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Brokers: []string{"127.0.0.1:9092"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v): %v", ok, err)
	}
	if d := DefaultConfig(); d.Topic != "orders" || d.MaxBufferedBytes != 256<<20 || d.Linger != 5*time.Millisecond || d.SweepGrace != 30*time.Second {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	tests := []struct {
		name string
		edit func(*Config)
		flag string
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, "-kafka.brokers"},
		{"negative bytes", func(c *Config) { c.MaxBufferedBytes = -1 }, "-kafka.max-buffered-bytes"},
		{"tiny bytes", func(c *Config) { c.MaxBufferedBytes = 1000 }, "-kafka.max-buffered-bytes"},
		{"negative records", func(c *Config) { c.MaxBufferedRecords = -5 }, "-kafka.max-buffered-records"},
		{"short delivery", func(c *Config) { c.DeliveryTimeout = 50 * time.Millisecond }, "-kafka.delivery-timeout"},
		{"grace below delivery", func(c *Config) { c.DeliveryTimeout = 20 * time.Second; c.SweepGrace = 20 * time.Second }, "-kafka.sweep-grace"},
		{"grace default below delivery", func(c *Config) { c.DeliveryTimeout = time.Minute }, "-kafka.sweep-grace"},
		{"negative linger", func(c *Config) { c.Linger = -time.Millisecond }, "-kafka.linger"},
		{"bad compression", func(c *Config) { c.Compression = "zstd" }, "-kafka.compression"},
		{"negative limit", func(c *Config) { c.SweepLimit = -1 }, "-kafka.sweep-limit"},
		{"negative batch", func(c *Config) { c.DeleteBatch = -1 }, "-kafka.delete-batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Fatalf("Validate(%+v) = %v; want an error naming %s", c, err, tt.flag)
			}
		})
	}
}

// TestEmbedded starts the embedded broker on a free port, checks the topic
// exists with its partitions, round-trips a record and checks Close frees the
// port.
func TestEmbedded(t *testing.T) {
	e, err := StartEmbedded("127.0.0.1:0", "embedded-t", 4, quietLog())
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	addr := e.Addrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("embedded-t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("embedded-t")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != 4 {
		t.Fatalf("metadata for embedded-t: %+v; want the topic with 4 partitions", resp.Topics)
	}

	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "embedded-t", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got *kgo.Record
	for got == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = r })
	}
	if got == nil || string(got.Key) != "k" || string(got.Value) != "v" {
		t.Fatalf("consumed %+v; want key k value v", got)
	}
	cl.Close()
	e.Close()
	e.Close() // idempotent

	var wg sync.WaitGroup
	wg.Go(func() {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen on %s after Close: %v; want the port free", addr, err)
			return
		}
		ln.Close()
	})
	wg.Wait()

	if _, err := StartEmbedded("256.0.0.1:1", "x", 1, quietLog()); err == nil {
		t.Errorf("StartEmbedded on a bad address: no error")
	}
}

// eventSize, the fast path's bound check before a record exists, is never
// below what the filled record counts (trace context headers included),
// and never far above it.
func TestEventSizeBoundsRecord(t *testing.T) {
	var s eventSet
	for o := range 12 {
		s.add(o, int32(1+o%3), time.Now())
	}
	p := &Publisher{source: []byte("orderflow")}
	traced := 0
	for i := range s.evs {
		ev := &s.evs[i]
		r := getRecord()
		p.fill(r, ev)
		if est := eventSize(ev, len(p.source)); est < r.size || est > r.size+16 {
			t.Errorf("event %s (trace %q %q): eventSize %d, record counts %d", ceID(*ev), ev.TraceParent.String(), ev.TraceState, est, r.size)
		}
		if len(r.rec.Headers) > 6 {
			traced++
		}
		putRecord(r)
	}
	if traced == 0 {
		t.Fatal("no event with a trace context")
	}
}
