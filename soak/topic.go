package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderflow/orderflow/loadtest"
)

// trimEvery is how often the consumer deletes what it has read from the
// broker.
const trimEvery = 10 * time.Second

// topicCounter consumes the topic from the start while the soak runs and
// remembers, per run id, which versions of which order numbers it has seen
// (ce_id lt_<run>_<n>/<v>, versions 1–8 in one byte per order). It counts
// every record, and every record whose ce_id was seen before (a repeat).
// Safe for concurrent use.
type topicCounter struct {
	cl    *kgo.Client
	topic string

	mu       sync.Mutex
	seen     map[string][]uint8 // run id → order number → bit v-1 per version seen
	records  int64
	repeats  int64
	repeated []string // first ce_ids repeated, for the report
	foreign  int64    // records without a ce_id of a run this soak knows
	next     map[int32]int64
	end      map[int32]int64
	err      string          // last fetch error
	trimmed  map[int32]int64 // per partition: the log start offset the broker last reported after a trim
}

// maxRepeatExamples bounds topicCounter.repeated.
const maxRepeatExamples = 20

func newTopicCounter(brokers []string, topic string, runs ...string) (*topicCounter, error) {
	cl, err := loadtest.NewTopicReader(brokers, topic)
	if err != nil {
		return nil, fmt.Errorf("topic consumer: %w", err)
	}
	t := &topicCounter{cl: cl, topic: topic, seen: map[string][]uint8{}, next: map[int32]int64{}, end: map[int32]int64{},
		trimmed: map[int32]int64{}}
	for _, r := range runs {
		t.seen[r] = nil
	}
	return t, nil
}

// run consumes until ctx is done, trimming the broker every trimEvery.
func (t *topicCounter) run(ctx context.Context) {
	lastTrim := time.Now()
	for ctx.Err() == nil {
		fetches := t.cl.PollFetches(ctx)
		t.mu.Lock()
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.err = err.Error()
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			t.end[p.Partition] = max(t.end[p.Partition], p.HighWatermark)
			for _, r := range p.Records {
				t.next[p.Partition] = max(t.next[p.Partition], r.Offset+1)
				t.count(r)
			}
		})
		t.mu.Unlock()
		if time.Since(lastTrim) >= trimEvery {
			t.trim(ctx)
			lastTrim = time.Now()
		}
	}
}

// count records one event. Callers hold t.mu.
func (t *topicCounter) count(r *kgo.Record) {
	t.records++
	var id []byte
	for _, h := range r.Headers {
		if h.Key == "ce_id" {
			id = h.Value
		}
	}
	run, n, v, ok := parseCEID(id)
	bits, known := t.seen[run]
	if !ok || !known || v < 1 || v > 8 {
		t.foreign++
		return
	}
	if uint64(len(bits)) <= n {
		grown := make([]uint8, max(n+1, uint64(2*len(bits))))
		copy(grown, bits)
		bits = grown
		t.seen[run] = bits
	}
	bit := uint8(1) << (v - 1)
	if bits[n]&bit != 0 {
		t.repeats++
		if len(t.repeated) < maxRepeatExamples {
			t.repeated = append(t.repeated, string(id))
		}
		return
	}
	bits[n] |= bit
}

// parseCEID splits lt_<run>_<n>/<v>.
func parseCEID(id []byte) (run string, n uint64, v int, ok bool) {
	slash := bytes.LastIndexByte(id, '/')
	if slash < 0 || !bytes.HasPrefix(id, []byte("lt_")) {
		return "", 0, 0, false
	}
	order := id[3:slash]
	us := bytes.LastIndexByte(order, '_')
	if us < 0 {
		return "", 0, 0, false
	}
	n, err := strconv.ParseUint(string(order[us+1:]), 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	v, err = strconv.Atoi(string(id[slash+1:]))
	if err != nil {
		return "", 0, 0, false
	}
	return string(order[:us]), n, v, true
}

// trim deletes the records read so far from the broker, so that it does
// not hold a whole soak's events in memory. A failure is left for the
// next round.
func (t *topicCounter) trim(ctx context.Context) {
	t.mu.Lock()
	topic := kmsg.NewDeleteRecordsRequestTopic()
	topic.Topic = t.topic
	for p, off := range t.next {
		pp := kmsg.NewDeleteRecordsRequestTopicPartition()
		pp.Partition, pp.Offset = p, off
		topic.Partitions = append(topic.Partitions, pp)
	}
	t.mu.Unlock()
	if len(topic.Partitions) == 0 {
		return
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 5000
	req.Topics = append(req.Topics, topic)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, t.cl)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode == 0 {
				t.trimmed[p.Partition] = max(t.trimmed[p.Partition], p.LowWatermark)
			}
		}
	}
}

// topicCounts is a snapshot of what the consumer has read.
type topicCounts struct {
	Records int64 `json:"records"`
	Repeats int64 `json:"repeats"`
	Foreign int64 `json:"foreign,omitempty"`
	// Trimmed is how many records the broker has deleted at the
	// consumer's request (the sum of the partitions' log start offsets).
	Trimmed int64 `json:"trimmed"`
	// CaughtUp is true when every partition read is read up to the end
	// offset its last fetch reported.
	CaughtUp bool `json:"-"`
}

func (t *topicCounter) counts() topicCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := topicCounts{Records: t.records, Repeats: t.repeats, Foreign: t.foreign, CaughtUp: true}
	for _, off := range t.trimmed {
		c.Trimmed += off
	}
	for p, e := range t.end {
		if t.next[p] < e {
			c.CaughtUp = false
		}
	}
	return c
}

// missing returns the acknowledged order numbers of run whose version 1
// (order.created) has not been read.
func (t *topicCounter) missing(run string, acked []uint64) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	bits := t.seen[run]
	var out []uint64
	for _, n := range acked {
		if n >= uint64(len(bits)) || bits[n]&1 == 0 {
			out = append(out, n)
		}
	}
	return out
}

func (t *topicCounter) close() { t.cl.Close() }
