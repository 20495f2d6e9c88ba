package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrReconcile is returned (wrapped) by [ReconcileResult.Err] when a run's
// acknowledgements and the stored or published orders disagree.
var ErrReconcile = errors.New("reconciliation failed")

// ReconcileExamples is how many ids of each kind of failure a
// ReconcileResult lists; the counts are always complete.
const ReconcileExamples = 100

// reconcileChunk is how many ids go into one `= ANY($1)` query: large
// enough that a million-order run takes a few round trips, small enough that
// one parameter stays a few MiB.
const reconcileChunk = 100_000

// ReconcileResult compares what the generator was told with what
// PostgreSQL and the topic hold.
type ReconcileResult struct {
	// Acked and Refused are the distinct ids checked.
	Acked   int `json:"acked"`
	Refused int `json:"refused"`
	// LostCount ids were acknowledged but are not in orders.
	LostCount int `json:"lost_count"`
	// DuplicatedCount ids are in orders more than once.
	DuplicatedCount int `json:"duplicated_count"`
	// PhantomCount ids are in orders but were only ever refused.
	PhantomCount int `json:"phantom_count"`
	// UnpublishedCount events were acknowledged but did not reach the
	// topic within the timeout: order.created (ce_id <id>/1) of every
	// acked order, and <id>/<v> of every acknowledged status change.
	UnpublishedCount int `json:"unpublished_count"`
	// StateChecked orders had status updates (ScenarioMix); WrongStateCount
	// of them are not in the status and version their last acknowledged
	// update answered (or a later one, when a later update's outcome is
	// unknown).
	StateChecked    int `json:"state_checked,omitempty"`
	WrongStateCount int `json:"wrong_state_count,omitempty"`
	// Lost, Duplicated, Phantom and Unpublished list up to
	// ReconcileExamples ids of each kind, sorted.
	Lost       []string `json:"lost,omitempty"`
	Duplicated []string `json:"duplicated,omitempty"`
	Phantom    []string `json:"phantom,omitempty"`
	// Unpublished lists order ids whose order.created event is missing,
	// and <id>/<v> for a missing status change event.
	Unpublished []string `json:"unpublished,omitempty"`
	// WrongState lists "<id>: want <status>/<version>, got <status>/<version>".
	WrongState []string `json:"wrong_state,omitempty"`
	// RepeatedCount is how many records on the topic repeat an event
	// already read (same ce_id) among the events checked: delivery is at
	// least once, so repeats are not a failure, but every one is a record
	// downstream consumers read and drop. Repeated lists up to
	// ReconcileExamples of their ce_ids (an id repeated twice is listed
	// twice).
	RepeatedCount int      `json:"repeated_count"`
	Repeated      []string `json:"repeated,omitempty"`
	// TopicRecords is how many records were read from the topic.
	TopicRecords int64 `json:"topic_records"`
	// TopicError is the last fetch error seen while events were missing.
	TopicError string `json:"topic_error,omitempty"`
	// Seconds is how long reconciliation took.
	Seconds float64 `json:"seconds"`
}

// OK reports whether nothing was lost, duplicated, phantom or unpublished.
func (r *ReconcileResult) OK() bool {
	return r.LostCount == 0 && r.DuplicatedCount == 0 && r.PhantomCount == 0 && r.UnpublishedCount == 0 &&
		r.WrongStateCount == 0
}

// Err returns nil when OK, else an error wrapping [ErrReconcile] that
// gives the counts.
func (r *ReconcileResult) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: lost %d, duplicated %d, phantom %d, unpublished %d, wrong state %d",
		ErrReconcile, r.LostCount, r.DuplicatedCount, r.PhantomCount, r.UnpublishedCount, r.WrongStateCount)
}

// StateCheck is the state an order must be in after a run with status
// updates.
type StateCheck struct {
	ID string
	// Status and Version are those of the last acknowledged change
	// (creation: "created", 1).
	Status  string
	Version int32
	// AtLeast is set when a change after it had an unknown outcome: a
	// later version is then fine too.
	AtLeast bool
}

// Backend is where a target stores and publishes: what [ReconcileRun]
// checks against.
type Backend struct {
	DatabaseURL string
	Brokers     []string
	Topic       string
	// Timeout bounds the wait for events on the topic.
	Timeout time.Duration
}

// ReconcileRun checks a finished run against b: [Reconcile] over its acked
// and refused ids, plus, for ScenarioMix, every order's final status and
// version and the <id>/<v> event of every acknowledged status change.
func ReconcileRun(ctx context.Context, b Backend, res *Result) (*ReconcileResult, error) {
	return reconcile(ctx, b, res.AckedIDs(), res.RefusedIDs(), res.StateChecks())
}

// ReconcileStore checks a finished run against PostgreSQL only: lost,
// duplicated and phantom orders and, for ScenarioMix and ScenarioStatus,
// final states. The topic fields stay zero, for a caller that reads the
// topic itself (a soak consumes it while it runs).
func ReconcileStore(ctx context.Context, databaseURL string, res *Result) (*ReconcileResult, error) {
	acked, refused := map[string]struct{}{}, map[string]struct{}{}
	for _, id := range res.AckedIDs() {
		acked[id] = struct{}{}
	}
	for _, id := range res.RefusedIDs() {
		if _, ok := acked[id]; !ok {
			refused[id] = struct{}{}
		}
	}
	states := res.StateChecks()
	out := &ReconcileResult{Acked: len(acked), Refused: len(res.refused), StateChecked: len(states)}
	if err := reconcileDB(ctx, databaseURL, sortedKeys(acked), sortedKeys(refused), states, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Reconcile checks a finished run against PostgreSQL and the topic:
//   - every acked id is in orders exactly once;
//   - no id that was refused (4xx, 429, 503) and never acknowledged is in
//     orders (an id refused and then acknowledged on a resend is fine);
//   - every acked id has an order.created event (header ce_id "<id>/1") on
//     topic, reading the whole topic from the start until all are seen or
//     timeout has passed.
//
// It returns an error only when a check could not be made (database or
// broker unreachable); disagreements are in the result, see
// [ReconcileResult.Err]. It blocks for at most timeout plus the database
// queries, or until ctx is done.
func Reconcile(ctx context.Context, databaseURL string, brokers []string, topic string, acked, refused []string, timeout time.Duration) (*ReconcileResult, error) {
	return reconcile(ctx, Backend{DatabaseURL: databaseURL, Brokers: brokers, Topic: topic, Timeout: timeout}, acked, refused, nil)
}

func reconcile(ctx context.Context, b Backend, acked, refused []string, states []StateCheck) (*ReconcileResult, error) {
	start := time.Now()
	ackedSet := make(map[string]struct{}, len(acked))
	for _, id := range acked {
		ackedSet[id] = struct{}{}
	}
	ackedIDs := sortedKeys(ackedSet)
	refusedOnly := map[string]struct{}{}
	refusedAll := 0
	seen := map[string]struct{}{}
	for _, id := range refused {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		refusedAll++
		if _, ok := ackedSet[id]; !ok {
			refusedOnly[id] = struct{}{}
		}
	}
	res := &ReconcileResult{Acked: len(ackedIDs), Refused: refusedAll, StateChecked: len(states)}

	if err := reconcileDB(ctx, b.DatabaseURL, ackedIDs, sortedKeys(refusedOnly), states, res); err != nil {
		return nil, err
	}
	want := make(map[string]struct{}, len(ackedIDs)+2*len(states))
	for _, id := range ackedIDs {
		want[id+"/1"] = struct{}{}
	}
	for _, sc := range states {
		for v := int32(2); v <= sc.Version; v++ {
			want[sc.ID+"/"+strconv.Itoa(int(v))] = struct{}{}
		}
	}
	if err := reconcileTopic(ctx, b.Brokers, b.Topic, want, b.Timeout, res); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// reconcileDB fills in lost, duplicated and phantom ids.
func reconcileDB(ctx context.Context, databaseURL string, acked, refusedOnly []string, states []StateCheck, res *ReconcileResult) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("reconcile: connect to database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var lost, duplicated, phantom []string
	for ids := range slices.Chunk(acked, reconcileChunk) {
		found := make(map[string]int64, len(ids))
		rows, _ := conn.Query(ctx, `SELECT id, count(*) FROM orders WHERE id = ANY($1) GROUP BY id`, ids)
		var id string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
			found[id] = n
			return nil
		}); err != nil {
			return fmt.Errorf("reconcile: query %d acked ids: %w", len(ids), err)
		}
		for _, id := range ids {
			switch n := found[id]; {
			case n == 0:
				lost = append(lost, id)
			case n > 1:
				duplicated = append(duplicated, id)
			}
		}
	}
	for ids := range slices.Chunk(refusedOnly, reconcileChunk) {
		rows, _ := conn.Query(ctx, `SELECT id FROM orders WHERE id = ANY($1)`, ids)
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			phantom = append(phantom, id)
			return nil
		}); err != nil {
			return fmt.Errorf("reconcile: query %d refused ids: %w", len(ids), err)
		}
	}
	var wrong []string
	for chunk := range slices.Chunk(states, reconcileChunk) {
		ids := make([]string, len(chunk))
		for i, sc := range chunk {
			ids[i] = sc.ID
		}
		type got struct {
			status  string
			version int32
		}
		found := make(map[string]got, len(chunk))
		rows, _ := conn.Query(ctx, `SELECT id, status, version FROM orders WHERE id = ANY($1)`, ids)
		var id, status string
		var version int32
		if _, err := pgx.ForEachRow(rows, []any{&id, &status, &version}, func() error {
			found[id] = got{status, version}
			return nil
		}); err != nil {
			return fmt.Errorf("reconcile: query %d updated ids: %w", len(ids), err)
		}
		for _, sc := range chunk {
			g, ok := found[sc.ID]
			if !ok {
				continue // lost: counted above
			}
			exact := g.version == sc.Version && g.status == sc.Status
			if exact || sc.AtLeast && g.version > sc.Version {
				continue
			}
			wrong = append(wrong, fmt.Sprintf("%s: want %s/%d, got %s/%d", sc.ID, sc.Status, sc.Version, g.status, g.version))
		}
	}
	res.WrongStateCount, res.WrongState = len(wrong), examples(wrong)
	res.LostCount, res.Lost = len(lost), examples(lost)
	res.DuplicatedCount, res.Duplicated = len(duplicated), examples(duplicated)
	res.PhantomCount, res.Phantom = len(phantom), examples(phantom)
	return nil
}

// reconcileTopic fills in unpublished and repeated events: the ce_ids in
// want that are not on the topic within timeout, and the records beyond the
// first of each ce_id in want. It reads from the start until every wanted
// event is seen and every partition it read is read up to the end offset
// its last fetch reported, so repeats published before that are counted.
// It deletes what it finds from want.
func reconcileTopic(ctx context.Context, brokers []string, topic string, want map[string]struct{}, timeout time.Duration, res *ReconcileResult) error {
	if len(want) == 0 {
		return nil
	}
	if len(brokers) == 0 || topic == "" {
		return fmt.Errorf("reconcile: no kafka brokers or topic given")
	}
	cl, err := NewTopicReader(brokers, topic)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	defer cl.Close()

	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return fmt.Errorf("reconcile: reach kafka brokers %v: %w", brokers, err)
	}
	seen := make(map[string]struct{}, len(want))
	var repeated []string
	next, end := map[int32]int64{}, map[int32]int64{} // per partition: next offset to read, end offset
	caughtUp := func() bool {
		for p, e := range end {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	for (len(want) > 0 || !caughtUp()) && pctx.Err() == nil {
		fetches := cl.PollFetches(pctx)
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				res.TopicError = err.Error()
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			end[p.Partition] = max(end[p.Partition], p.HighWatermark)
			for _, r := range p.Records {
				next[p.Partition] = max(next[p.Partition], r.Offset+1)
				res.TopicRecords++
				id := ceID(r)
				if _, ok := want[id]; ok {
					delete(want, id)
					seen[id] = struct{}{}
				} else if _, ok := seen[id]; ok {
					res.RepeatedCount++
					if len(repeated) < ReconcileExamples {
						repeated = append(repeated, id)
					}
				}
			}
		})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reconcile: read topic %s: %w", topic, err)
	}
	res.Repeated = examples(repeated)
	unpublished := make([]string, 0, len(want))
	for k := range want {
		unpublished = append(unpublished, strings.TrimSuffix(k, "/1"))
	}
	slices.Sort(unpublished)
	res.UnpublishedCount, res.Unpublished = len(unpublished), examples(unpublished)
	if len(want) == 0 {
		res.TopicError = ""
	}
	return nil
}

// NewTopicReader returns a Kafka client that consumes topic from its first
// offset, without a consumer group, as reconciliation reads it.
func NewTopicReader(brokers []string, topic string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// ceID returns a record's ce_id header, "" when it has none.
func ceID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "ce_id" {
			return string(h.Value)
		}
	}
	return ""
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// examples returns the first ReconcileExamples of sorted ids.
func examples(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return slices.Clip(ids[:min(len(ids), ReconcileExamples)])
}
