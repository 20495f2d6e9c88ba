package enginetest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/internal/apitest"
)

// Topic is the topic the in-process broker is created with and the engine
// publishes to (the engine's default).
const Topic = "orders"

// NewBroker starts an in-process Kafka-protocol broker (kfake: one broker,
// Topic with 4 partitions) on a free loopback port, with opts appended to
// those (e.g. kfake.EnableSASL, kfake.TLS). It is closed in t.Cleanup, so it
// outlives every engine the test starts after it and can be read after they
// stopped.
func NewBroker(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	base := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, Topic), kfake.Ports(0)}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		t.Fatalf("enginetest: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// KafkaSwitch makes c refuse every produce request (closing the connection,
// as a dead broker would) while the returned flag is set; it starts unset.
// Other requests (metadata, fetch) are answered as usual.
func KafkaSwitch(c *kfake.Cluster) *atomic.Bool {
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !down.Load() {
			return nil, nil, false // not handled: the broker answers normally
		}
		c.KeepControl()
		return nil, errors.New("broker down (test)"), true
	})
	return &down
}

// KafkaSwitchFor is KafkaSwitch for one engine of a fleet that shares c: c
// refuses the produce requests of in's Kafka client only (recognised by its
// idempotent producer id, which a closed connection does not change), so
// that the broker is gone for that instance and up for the others.
func KafkaSwitchFor(t testing.TB, c *kfake.Cluster, in *Instance) *atomic.Bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, _, err := in.Engine.Publisher().Client().ProducerID(ctx)
	if err != nil {
		t.Fatalf("enginetest: producer id of %s: %v", in.URL, err)
	}
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !down.Load() || !producedBy(req.(*kmsg.ProduceRequest), pid) {
			return nil, nil, false
		}
		c.KeepControl()
		return nil, errors.New("broker down for this producer (test)"), true
	})
	return &down
}

// producedBy reports whether a produce request carries a record batch of
// producer pid.
func producedBy(req *kmsg.ProduceRequest, pid int64) bool {
	for _, tp := range req.Topics {
		for _, pp := range tp.Partitions {
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(pp.Records); err == nil && rb.ProducerID == pid {
				return true
			}
		}
	}
	return false
}

// NewConsumer returns a client that reads Topic from its first offset,
// with a short metadata age and fetch wait so that polls with short
// deadlines see new records soon; opts are appended. The caller closes it.
func NewConsumer(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("enginetest: consumer: %v", err)
	}
	return cl
}

// Consume reads Topic from the start until want records whose key starts
// with keyPrefix were seen or within passes, and returns those records in
// the order read: fewer than want when time ran out, and possibly more,
// since every matching record of the last poll is kept (so asking for one
// more than expected shows extras). Each returned record is checked
// against api/asyncapi.yaml and its event schema (apitest.CheckRecord).
// opts are passed to NewConsumer (TLS, SASL for a broker that requires
// them).
func Consume(t testing.TB, brokers []string, keyPrefix string, want int, within time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	return consume(t, brokers, keyPrefix, want, within, true, opts...)
}

// ConsumeRaw is Consume without the contract check, for records that are
// not orderflow's events (another server's, or a test's own).
func ConsumeRaw(t testing.TB, brokers []string, keyPrefix string, want int, within time.Duration) []*kgo.Record {
	t.Helper()
	return consume(t, brokers, keyPrefix, want, within, false)
}

func consume(t testing.TB, brokers []string, keyPrefix string, want int, within time.Duration, check bool, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := NewConsumer(t, brokers, opts...)
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(within)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Key), keyPrefix) {
				if check {
					apitest.CheckRecord(t, r)
				}
				out = append(out, r)
			}
		})
	}
	return out
}

// ConsumeAll reads Topic from the start to its end as it is when called
// (every partition's high watermark) and returns the records whose key
// starts with keyPrefix, in the order read, each checked against the
// contract like Consume's. Unlike Consume it needs no guess of how many
// records to wait for, nor a short window to show extras: call it once
// everything expected is on the topic (for an engine: the outbox empty)
// and the records it returns are all there are. within only bounds the
// read; the test fails if the end is not reached by then. opts are passed
// to NewConsumer.
func ConsumeAll(t testing.TB, brokers []string, keyPrefix string, within time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	return consumeAll(t, brokers, keyPrefix, within, true, opts...)
}

func consumeAll(t testing.TB, brokers []string, keyPrefix string, within time.Duration, check bool, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := NewConsumer(t, brokers, opts...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	ends, err := endOffsets(ctx, cl)
	if err != nil {
		t.Fatalf("enginetest: end offsets of %s: %v", Topic, err)
	}
	next := map[int32]int64{}
	reached := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	var out []*kgo.Record
	for !reached() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("enginetest: %s not read to its end %v within %v: read up to %v", Topic, ends, within, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if strings.HasPrefix(string(r.Key), keyPrefix) {
				if check {
					apitest.CheckRecord(t, r)
				}
				out = append(out, r)
			}
		})
	}
	return out
}

// endOffsets returns every partition's high watermark of Topic.
func endOffsets(ctx context.Context, cl *kgo.Client) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(Topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(mresp.Topics) != 1 {
		return nil, errors.New("no metadata for the topic")
	}
	if err := kerr.ErrorForCode(mresp.Topics[0].ErrorCode); err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = Topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, err
			}
			ends[p.Partition] = p.Offset
		}
	}
	if len(ends) == 0 {
		return nil, errors.New("no partitions")
	}
	return ends, nil
}

// ReadVersions consumes Topic from the start, removing every ce_id it sees
// from want, until want is empty and the topic is drained (two empty polls),
// or within passes. It returns, per order id under keyPrefix, the versions
// in topic order, repeats included (what a consumer deduping on ce_id must
// see in order). Each record is checked against api/asyncapi.yaml
// (apitest.CheckRecord).
func ReadVersions(t testing.TB, brokers []string, keyPrefix string, want map[string]struct{}, within time.Duration) map[string][]int32 {
	t.Helper()
	cl := NewConsumer(t, brokers)
	defer cl.Close()
	seq := map[string][]int32{}
	deadline := time.Now().Add(within)
	idle := 0
	for time.Now().Before(deadline) && (len(want) > 0 || idle < 2) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if !strings.HasPrefix(string(r.Key), keyPrefix) {
				return
			}
			apitest.CheckRecord(t, r)
			ce := Header(r, "ce_id")
			delete(want, ce)
			i := strings.LastIndexByte(ce, '/')
			v, _ := strconv.Atoi(ce[i+1:])
			seq[ce[:i]] = append(seq[ce[:i]], int32(v))
		})
		if got == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return seq
}

// Header returns the value of r's first header named key ("" if none).
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// SetTopicConfig sets one configuration entry of Topic on the broker at
// brokers (IncrementalAlterConfigs), e.g. max.message.bytes: kfake refuses
// a produce batch above it with MESSAGE_TOO_LARGE, which the client does
// not retry.
func SetTopicConfig(t testing.TB, brokers []string, name, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("enginetest: kafka client: %v", err)
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rt := kmsg.NewIncrementalAlterConfigsRequestResource()
	rt.ResourceType = kmsg.ConfigResourceTypeTopic
	rt.ResourceName = Topic
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value = name, kmsg.StringPtr(value)
	rt.Configs = append(rt.Configs, c)
	req.Resources = append(req.Resources, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		for _, r := range resp.Resources {
			if err == nil {
				err = kerr.ErrorForCode(r.ErrorCode)
			}
		}
	}
	if err != nil {
		t.Fatalf("enginetest: set topic %s=%s: %v", name, value, err)
	}
}
