package chaos

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// gauges samples an admin listener's outbox backlog and producer buffer
// every 50ms until stopped.
type gauges struct {
	maxBacklog, maxBuffered atomic.Int64
	overallBuffered         atomic.Int64
	backlog                 atomic.Int64
	samples                 atomic.Int64
	stop                    chan struct{}
	wg                      sync.WaitGroup
}

func watchGauges(admin string) *gauges {
	g := &gauges{stop: make(chan struct{})}
	hc := newHTTPClient(1)
	hc.Timeout = 30 * time.Second // a starved machine can take seconds to serve /metrics
	g.wg.Go(func() {
		for {
			if m, err := scrape(hc, admin); err == nil {
				b, p := int64(m["orderflow_outbox_backlog"]), int64(m["orderflow_producer_buffered_records"])
				g.backlog.Store(b)
				g.maxBacklog.Store(max(g.maxBacklog.Load(), b))
				g.maxBuffered.Store(max(g.maxBuffered.Load(), p))
				g.overallBuffered.Store(max(g.overallBuffered.Load(), p))
				g.samples.Add(1)
			}
			select {
			case <-g.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return g
}

func (g *gauges) close() { close(g.stop); g.wg.Wait() }

// resetMax starts a new phase: the maxima restart from the current value.
func (g *gauges) resetMax() { g.maxBacklog.Store(g.backlog.Load()); g.maxBuffered.Store(0) }

// TestKafkaFaultsBacklogDrains loads an engine (orders and status changes)
// while Kafka fails: first every produce request is answered
// NOT_ENOUGH_REPLICAS (kfake fault injection, retriable), then the broker
// closes the connection on every produce (as if it were gone). It checks
// that ingestion goes on (no 5xx, no 4xx: Kafka is not on the
// acknowledgement path), that orderflow_outbox_backlog grows during each
// outage, that orderflow_producer_buffered_records never exceeds
// -kafka.max-buffered-records, and that once Kafka is back the backlog drains
// to 0 and every committed version is on the topic.
//
// The per-order event order subtest found two bugs (fixed in d1c980f and
// the gate commit after it): fast-path records failed on a deadline while a
// later version of their order got through, and the publisher's per-order
// hold was lost when the caller's memory was reused.
//
// To see it fail: disable the sweeper (sweepLoop returning at once) and the
// backlog never drains; drop the bound check in Publisher.Publish and the
// buffered-records check trips. (Not run as mutations yet; the failing
// per-order subtest is the server's own, see above.) Capping the backlog
// gauge at 10 (run once) kept each outage going to its deadline, then
// failed the backlog check for both.
//
// Each outage ends on what it must show, not after a fixed time (see run).
func TestKafkaFaultsBacklogDrains(t *testing.T) {
	const maxBuffered = 200
	in := enginetest.Start(t, enginetest.WithConfig(func(c *engine.Config) {
		c.Publish.MaxBufferedRecords = maxBuffered
		c.Publish.DeliveryTimeout = 500 * time.Millisecond
		c.Publish.SweepGrace = 2 * time.Second
		c.Publish.SweepInterval = 100 * time.Millisecond
	}))
	cluster, dbURL, base, admin := in.Broker, in.DatabaseURL, in.URL, in.AdminURL

	g := watchGauges(admin)
	defer g.close()
	ld := newLoader(func() string { return base }, "kf_", 6, 0.3)
	ld.start()
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()
	waitFor(t, 3*time.Minute, "first acknowledgements", func() bool { return ld.acks.Load() >= 50 })

	// Each outage lasts at least outage, and then until what it must show
	// has happened: 50 changes acknowledged during it and the backlog gauge
	// grown by half as many (on a busy machine a fixed outage held fewer
	// acknowledgements). The deadline (minutes: a starved machine is slow)
	// only bounds the wait; past it the checks below fail with the counts
	// reached.
	outage := pick(2500*time.Millisecond, 15*time.Second)
	const minAcks = 50
	type phase struct {
		name                 string
		took                 time.Duration
		acks, unknown        int64
		maxBacklog, buffered int64
	}
	var phases []phase
	run := func(name string, begin, end func()) {
		t.Helper()
		g.resetMax()
		acks, unknown := ld.acks.Load(), ld.unknown.Load()
		begin()
		start := time.Now()
		deadline := start.Add(outage + 3*time.Minute)
		var p phase
		for {
			p = phase{name: name, took: time.Since(start), acks: ld.acks.Load() - acks, unknown: ld.unknown.Load() - unknown,
				maxBacklog: g.maxBacklog.Load(), buffered: g.maxBuffered.Load()}
			if p.took >= outage && p.acks >= minAcks && p.maxBacklog >= p.acks/2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		end()
		phases = append(phases, p)
		t.Logf("%s for %v: %d acknowledged, %d unknown outcomes, backlog up to %d, producer buffer up to %d",
			name, p.took.Round(time.Millisecond), p.acks, p.unknown, p.maxBacklog, p.buffered)
		if p.unknown != 0 {
			t.Errorf("%s: %d requests got 5xx or no answer while only Kafka was failing; ingestion must go on", name, p.unknown)
		}
		if p.acks < minAcks {
			t.Errorf("%s: only %d requests acknowledged in %v while Kafka was failing; ingestion must go on", name, p.acks, p.took)
		}
		if p.maxBacklog < p.acks/2 {
			t.Errorf("%s: orderflow_outbox_backlog reached only %d while %d changes were committed and Kafka refused them", name, p.maxBacklog, p.acks)
		}
		// Let the backlog drain between the phases.
		waitFor(t, 3*time.Minute, "orderflow_outbox_backlog back near 0 after "+name, func() bool { return g.backlog.Load() < 100 })
	}
	var fault *kfake.FaultHandle
	run("produce answered NOT_ENOUGH_REPLICAS", func() {
		fault = cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	}, func() { fault.Remove() })
	down := enginetest.KafkaSwitch(cluster)
	run("broker closing every produce connection", func() { down.Store(true) }, func() { down.Store(false) })
	ld.stop()
	stopped = true
	for _, name := range []string{
		`orderflow_events_published_total{path="fast",result="error"}`,
		`orderflow_events_published_total{path="fast",result="ok"}`,
		`orderflow_events_published_total{path="sweep",result="ok"}`,
		`orderflow_events_published_total{path="sweep",result="error"}`,
		`orderflow_publish_fastpath_skipped_total`,
	} {
		v, _ := series(&http.Client{Timeout: 5 * time.Second}, admin, name)
		t.Logf("%s = %v", name, v)
	}

	retried := ld.resolve(t, 3*time.Minute)
	drain := waitFor(t, 3*time.Minute, "orderflow_outbox_backlog 0 and the outbox empty after Kafka came back", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0 && g.backlog.Load() == 0
	})
	res := reconcile(t, dbURL, cluster.ListenAddrs(), "kf_", ld.ackedCopy(), 3*time.Minute, true)
	ld.checkNoBad(t)
	var summary string
	for _, p := range phases {
		summary += fmt.Sprintf("%s for %v: %d acknowledged, %d unknown, backlog up to %d, producer buffer up to %d (cap %d); ",
			p.name, p.took.Round(time.Millisecond), p.acks, p.unknown, p.maxBacklog, p.buffered, maxBuffered)
	}
	appendResult(t, "TestKafkaFaultsBacklogDrains", fmt.Sprintf("%srequests %d (%s), retried %d; %s; drained %v after the load stopped; producer buffer max %d over %d samples",
		summary, ld.requests.Load(), ld.codesString(), retried, res, drain.Round(10*time.Millisecond), g.overallBuffered.Load(), g.samples.Load()))
	// kgo's BufferedProduceRecords counts the records in the client plus the
	// Produce calls blocked on a full buffer (producer.go: bufferedRecords +
	// blocked). Only the sweeper (one goroutine) may block there, holding one
	// record of its own: the client itself never holds more than the cap.
	if b := g.overallBuffered.Load(); b > maxBuffered+1 {
		t.Errorf("orderflow_producer_buffered_records reached %d; -kafka.max-buffered-records is %d (+1 blocked sweeper Produce)", b, maxBuffered)
	}
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.Outbox != 0 {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
	// docs/api.md "Events": within one order, events are published in version order,
	// and a consumer that dedupes on ce_id and ignores versions it has passed
	// sees every order's history.
	t.Run("per-order event order", func(t *testing.T) {
		if res.OutOfOrder != 0 {
			t.Errorf("%d of %d orders reached the topic out of version order (e.g. v3 before v1), so a consumer deduping on ce_id loses versions; examples: %q. "+
				"Cause: a later version is handed to the fast path while an earlier one of the same order is still in the Kafka client; the earlier one fails "+
				"(DeliveryTimeout) and goes to the sweeper, the later one succeeds once the broker is back. publish/doc.go lists a narrower form of this as not covered.",
				res.OutOfOrder, res.Stored, res.examples)
		}
	})
}
