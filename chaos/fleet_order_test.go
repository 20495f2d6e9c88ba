package chaos

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// TestFleetKafkaFaultOnOneInstance runs two engines on one database and
// one broker while the loader creates orders and walks them along the
// status chain, every request sent to either instance at random, so that
// consecutive versions of an order are committed by different instances.
// Midway the broker is gone for instance A alone (its produce connections
// are closed; B keeps publishing) and A's client buffer is small enough to
// overflow: A's events wait in its client or are left to the sweeper while
// B commits later versions of the same orders. Once A's broker is back and
// the load has stopped, the outbox must drain and reconciliation must find
// 0 lost, duplicated, unpublished and out of order (a consumer deduping on
// ce_id sees every order's versions in order).
//
// Seen failing with the fast path ignoring order.After (publish.route
// publishing every event it is handed: the hold in process memory only,
// the README's old "known gap"): out of order 534 and 559 orders in two
// short runs.
func TestFleetKafkaFaultOnOneInstance(t *testing.T) {
	const maxBuffered = 50
	cluster := enginetest.NewBroker(t)
	dbURL := enginetest.NewDatabase(t)
	a := enginetest.Start(t, enginetest.WithDatabase(dbURL), enginetest.WithBroker(cluster),
		enginetest.WithConfig(func(c *engine.Config) { c.Publish.MaxBufferedRecords = maxBuffered }))
	b := enginetest.Start(t, enginetest.WithDatabase(dbURL), enginetest.WithBroker(cluster))
	cutA := enginetest.KafkaSwitchFor(t, cluster, a)

	bases := []string{a.URL, b.URL}
	ld := newLoader(func() string { return bases[rand.IntN(len(bases))] }, "fo_", 8, 0.6)
	ld.start()
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()
	waitFor(t, 20*time.Second, "first acknowledgements", func() bool { return ld.acks.Load() >= 50 })
	before, outage, after := pick(2*time.Second, 10*time.Second), pick(5*time.Second, 40*time.Second), pick(2*time.Second, 10*time.Second)
	time.Sleep(before)
	acksBefore := ld.acks.Load()
	cutA.Store(true)
	time.Sleep(outage)
	cutA.Store(false)
	acksDuring := ld.acks.Load() - acksBefore
	time.Sleep(after)
	ld.stop()
	stopped = true

	retried := ld.resolve(t, 30*time.Second)
	drain := waitFor(t, 90*time.Second, "outbox empty after A's broker came back", func() bool {
		n, ok := outboxCount(dbURL)
		return ok && n == 0
	})
	res := reconcile(t, dbURL, cluster.ListenAddrs(), "fo_", ld.ackedCopy(), 60*time.Second, true)
	ld.checkNoBad(t)
	hc := newHTTPClient(2)
	metric := func(admin, name string) float64 { v, _ := series(hc, admin, name); return v }
	waited := metric(a.AdminURL, `orderflow_publish_order_waits_total{result="published"}`) +
		metric(b.AdminURL, `orderflow_publish_order_waits_total{result="published"}`)
	held := metric(a.AdminURL, `orderflow_publish_order_waits_total{result="held"}`) +
		metric(b.AdminURL, `orderflow_publish_order_waits_total{result="held"}`)
	skippedA := metric(a.AdminURL, `orderflow_publish_fastpath_skipped_total`)
	swept := metric(a.AdminURL, `orderflow_events_published_total{path="sweep",result="ok"}`) +
		metric(b.AdminURL, `orderflow_events_published_total{path="sweep",result="ok"}`)
	appendResult(t, "TestFleetKafkaFaultOnOneInstance", fmt.Sprintf(
		"2 instances, requests to either at random; broker gone for A only for %v (A's buffer %d records), %d acknowledged meanwhile; requests %d (%s), retried %d; "+
			"waits for the other instance: %v published, %v left to the sweeper; A skipped %v; swept %v; drained %v after the load stopped; %s",
		outage, maxBuffered, acksDuring, ld.requests.Load(), ld.codesString(), retried, waited, held, skippedA, swept, drain.Round(10*time.Millisecond), res))
	if res.Lost != 0 || res.VersionLost != 0 || res.Duplicated != 0 || res.Unpublished != 0 || res.OutOfOrder != 0 || res.Outbox != 0 {
		t.Errorf("reconciliation failed: %s; examples: %q", res, res.examples)
	}
	if acksDuring < 50 || waited == 0 || held == 0 || skippedA == 0 {
		t.Errorf("the case is not exercised: %d acknowledged during A's outage, %v waits published, %v held, A skipped %v; want all > 0",
			acksDuring, waited, held, skippedA)
	}
}
