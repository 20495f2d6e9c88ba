package publish

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/engine/metrics"
	"github.com/orderflow/orderflow/engine/order"
)

// nopOutbox is an empty outbox: the benchmark measures the fast path and the
// acker's bookkeeping, not a database.
type nopOutbox struct{}

func (nopOutbox) AckEvents(context.Context, []int64) error { return nil }
func (nopOutbox) SweepEvents(context.Context, time.Duration, int, func([]order.Event) error) (int, time.Time, error) {
	return 0, time.Now(), nil
}
func (nopOutbox) OutboxStats(context.Context) (int64, time.Duration, error) { return 0, 0, nil }
func (nopOutbox) ReclaimOutbox(context.Context) (int, error)                { return 0, nil }

// BenchmarkPublish measures the fast path end to end through kfake over TCP
// (one broker, 3 partitions, BlackholeProduce so the broker stores nothing):
// one op is a Publish of 100 order.created events of ~300 bytes, as one group
// commit hands them over; the loop waits while the client's buffer is nearly
// full so nothing is dropped, and ends with a Flush, so events/s is sustained
// acknowledged throughput. wire-B/event is the record-batch bytes the broker
// received (after compression).
//
//	go test -run '^$' -bench Publish -benchtime 2s ./engine/publish/
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		compression string
		linger      time.Duration
	}{
		{"snappy", 0},
		{"snappy", 5 * time.Millisecond},
		{"snappy", 10 * time.Millisecond},
		{"none", 5 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("compression=%s/linger=%v", bc.compression, bc.linger), func(b *testing.B) {
			benchPublish(b, bc.compression, bc.linger)
		})
	}
}

func benchPublish(b *testing.B, compression string, linger time.Duration) {
	const batch = 100
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, testTopic), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var wire atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, t := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range t.Partitions {
				wire.Add(int64(len(p.Records)))
			}
		}
		return nil, nil, false // observe only
	})

	cfg := Config{
		Brokers:     c.ListenAddrs(),
		Linger:      linger,
		Compression: compression,
	}
	p, err := New(cfg, nopOutbox{}, metrics.New(), quietLog())
	if err != nil {
		b.Fatal(err)
	}
	p.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			b.Error(err)
		}
	}()
	for p.gate.active.Load() { // start-up hold: released by the first (empty) backlog count
		time.Sleep(time.Millisecond)
	}

	// 10,000 distinct orders, cycled: keys spread over the partitions.
	var sets []*eventSet
	for i := 0; i < 10_000; i += batch {
		s := new(eventSet)
		for o := i; o < i+batch; o++ {
			s.add(o, 1, time.Now().Truncate(time.Microsecond))
		}
		sets = append(sets, s)
	}
	payload := 0
	for _, ev := range sets[0].evs {
		payload += len(ev.Payload)
	}
	b.SetBytes(int64(payload)) // value bytes per op
	// Keep at most ~10k records in flight (300k events/s × ~30ms): enough
	// to batch well, and what the record pool can cover between GCs. With
	// the client's whole 100k buffer in flight, pool churn (records
	// dropped by GC and rebuilt) dominates the allocations.
	const high = 10_000 - batch

	// Warm the pool, the connection and the client's batch buffers.
	for i := range 200 {
		p.Publish(sets[i%len(sets)].evs)
	}
	if err := p.cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	wire.Store(0)

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if p.inflight.Load() > high {
			for p.inflight.Load() > high/2 { // hysteresis: sleep rarely
				time.Sleep(100 * time.Microsecond)
			}
		}
		p.Publish(sets[n%len(sets)].evs)
		n++
	}
	if err := p.cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	events := float64(n * batch)
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(wire.Load())/events, "wire-B/event")
	if d := val(p.m, "orderflow_publish_fastpath_skipped_total"); d > 0 {
		b.ReportMetric(d, "dropped")
	}
}
