package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/enginetest"
)

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// orderBody is a valid order under the demo catalog: two items, total 487.
func orderBody(id string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"user_id":"u_chaos","currency":"EUR","created_at":"2026-11-25T10:00:00Z","items":[{"sku":"milk-1l","qty":2},{"sku":"bread-rye","qty":1,"price_cents":249}]}`, id)
}

// orderItems is how many order_items rows orderBody makes.
const orderItems = 2

// statusChain is the path the loader walks each order along.
var statusChain = []string{"created", "paid", "assembling", "delivering", "delivered"}

// answer is one HTTP exchange; err is set when no response arrived
// (refused, reset, timeout): the outcome is then unknown.
type answer struct {
	code int
	body []byte
	hdr  http.Header
	err  error
	took time.Duration
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body))
}

func (a answer) ok() bool { return a.err == nil && a.code >= 200 && a.code < 300 }

// is4xx: a definite refusal. For a valid order or status change that only
// its own worker touches, it is always a bug.
func (a answer) is4xx() bool { return a.err == nil && a.code >= 400 && a.code < 500 }

func send(hc *http.Client, method, url string, body []byte, hdr ...string) answer {
	start := time.Now()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: fmt.Errorf("read body after %d: %w", resp.StatusCode, err), took: time.Since(start)}
	}
	return answer{code: resp.StatusCode, body: b, hdr: resp.Header, took: time.Since(start)}
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 25 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		},
	}
}

// postOrder posts orderBody(id); keyed orders carry Idempotency-Key k-<id>.
func postOrder(hc *http.Client, base, id string, keyed bool) answer {
	if keyed {
		return send(hc, http.MethodPost, base+"/v1/orders", orderBody(id), "Idempotency-Key", "k-"+id)
	}
	return send(hc, http.MethodPost, base+"/v1/orders", orderBody(id))
}

func postStatus(hc *http.Client, base, id, status string) answer {
	return send(hc, http.MethodPost, base+"/v1/orders/"+id+"/status", []byte(`{"status":"`+status+`"}`))
}

// loader posts orders and walks acknowledged ones along statusChain from a
// few goroutines, each owning its orders, and records every answer. A
// request whose outcome is unknown (5xx, 429, no response) is retried later
// with the same id, key and target status, so every id ends acknowledged:
// that is how the tests check that ambiguous outcomes converge.
type loader struct {
	base    func() string
	prefix  string
	workers int
	// statusShare is the fraction of requests that are status changes.
	statusShare float64
	hc          *http.Client

	acks     atomic.Int64 // 2xx answers so far
	requests atomic.Int64
	unknown  atomic.Int64 // answers with unknown outcome (5xx, 429, no response)
	// slow503 is the slowest 503 answer, in ns: "503 fast".
	slow503 atomic.Int64

	mu        sync.Mutex
	acked     map[string]int32 // id → highest acknowledged version
	bad       []string         // 4xx answers to valid requests, with what was sent
	codes     map[int]int
	workersSt []*worker

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type liveOrder struct {
	id     string
	keyed  bool
	step   int    // index into statusChain of the acknowledged status
	target string // status being set ("" = none in flight)
}

type worker struct {
	n       int
	seq     int
	pending []liveOrder // creates with unknown outcome
	live    []*liveOrder
}

func newLoader(base func() string, prefix string, workers int, statusShare float64) *loader {
	return &loader{base: base, prefix: prefix, workers: workers, statusShare: statusShare,
		hc: newHTTPClient(workers), acked: map[string]int32{}, codes: map[int]int{}}
}

func (l *loader) start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for i := range l.workers {
		w := &worker{n: i}
		l.workersSt = append(l.workersSt, w)
		l.wg.Go(func() { l.run(ctx, w) })
	}
}

// stop stops the workers after their request in flight.
func (l *loader) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *loader) run(ctx context.Context, w *worker) {
	rng := rand.New(rand.NewPCG(uint64(w.n), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		var a answer
		switch r := rng.Float64(); {
		case len(w.pending) > 0 && r < 0.3:
			a = l.create(w, w.pending[0].id, w.pending[0].keyed, true)
		case len(w.live) > 0 && r < 0.3+l.statusShare:
			a = l.advance(w, w.live[rng.IntN(len(w.live))], rng)
		default:
			w.seq++
			a = l.create(w, fmt.Sprintf("%s%02d_%07d", l.prefix, w.n, w.seq), w.seq%2 == 0, false)
		}
		if !a.ok() {
			// The server is down or refusing: do not spin.
			time.Sleep(time.Duration(10+rng.IntN(30)) * time.Millisecond)
		}
	}
}

func (l *loader) record(a answer, what string) {
	l.requests.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.err != nil {
		l.codes[0]++
	} else {
		l.codes[a.code]++
	}
	if a.err == nil && a.code == http.StatusServiceUnavailable && int64(a.took) > l.slow503.Load() {
		l.slow503.Store(int64(a.took))
	}
	switch {
	case a.ok():
		l.acks.Add(1)
	case a.is4xx() && a.code != http.StatusTooManyRequests:
		l.bad = append(l.bad, what+": "+a.String())
	default:
		l.unknown.Add(1)
	}
}

func (l *loader) create(w *worker, id string, keyed, retry bool) answer {
	a := postOrder(l.hc, l.base(), id, keyed)
	l.record(a, "POST order "+id)
	switch {
	case a.ok():
		l.mu.Lock()
		if l.acked[id] < 1 {
			l.acked[id] = 1
		}
		l.mu.Unlock()
		if retry {
			w.pending = w.pending[1:]
		}
		w.live = append(w.live, &liveOrder{id: id, keyed: keyed})
	case a.is4xx() && a.code != http.StatusTooManyRequests:
		if retry {
			w.pending = w.pending[1:]
		}
	default:
		if !retry {
			w.pending = append(w.pending, liveOrder{id: id, keyed: keyed})
		}
	}
	return a
}

func (l *loader) advance(w *worker, o *liveOrder, rng *rand.Rand) answer {
	if o.target == "" {
		o.target = statusChain[o.step+1]
		if rng.IntN(20) == 0 {
			o.target = "cancelled"
		}
	}
	a := postStatus(l.hc, l.base(), o.id, o.target)
	l.record(a, "POST status "+o.id+" → "+o.target)
	if !a.ok() {
		if a.is4xx() && a.code != http.StatusTooManyRequests {
			w.drop(o)
		}
		return a
	}
	var r struct {
		Version int32 `json:"version"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil || r.Version < 2 {
		l.mu.Lock()
		l.bad = append(l.bad, fmt.Sprintf("POST status %s → %s: 200 with body %s", o.id, o.target, a.body))
		l.mu.Unlock()
	}
	l.mu.Lock()
	if l.acked[o.id] < r.Version {
		l.acked[o.id] = r.Version
	}
	l.mu.Unlock()
	if o.target == "cancelled" || o.target == "delivered" {
		w.drop(o)
		return a
	}
	o.step++
	o.target = ""
	return a
}

func (w *worker) drop(o *liveOrder) {
	w.live = slices.DeleteFunc(w.live, func(x *liveOrder) bool { return x == o })
}

// resolve retries, with the same ids, keys and targets, every request whose
// outcome was unknown until each is answered 2xx, or fails the test after
// within. Call it after stop, with a server up.
func (l *loader) resolve(t *testing.T, within time.Duration) (retried int) {
	t.Helper()
	deadline := time.Now().Add(within)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, w := range l.workersSt {
		for len(w.pending) > 0 {
			p := w.pending[0]
			if a := l.create(w, p.id, p.keyed, true); !a.ok() && !a.is4xx() {
				if time.Now().After(deadline) {
					t.Fatalf("order %s: retry still answered %s after %v", p.id, a, within)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			retried++
		}
		for _, o := range slices.Clone(w.live) {
			for o.target != "" {
				a := l.advance(w, o, rng)
				if a.ok() || a.is4xx() {
					retried++
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status %s → %s: retry still answered %s after %v", o.id, o.target, a, within)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return retried
}

// ackedCopy returns id → highest acknowledged version.
func (l *loader) ackedCopy() map[string]int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps(l.acked)
}

func maps(m map[string]int32) map[string]int32 {
	out := make(map[string]int32, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkNoBad fails the test if any valid request was refused with a 4xx.
func (l *loader) checkNoBad(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		t.Errorf("%d valid requests were refused with a 4xx (an unknown outcome must be answered 503 and converge on retry); first: %s",
			len(l.bad), strings.Join(l.bad[:min(len(l.bad), 10)], "; "))
	}
}

func (l *loader) codesString() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]int, 0, len(l.codes))
	for k := range l.codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "no-response"
		}
		fmt.Fprintf(&b, "%s:%d ", name, l.codes[k])
	}
	return strings.TrimSpace(b.String())
}

// tally is a reconciliation of acknowledgements, PostgreSQL and the topic.
type tally struct {
	Acked         int // ids acknowledged (2xx) at least once
	AckedVersions int // acknowledged versions (orders + status changes)
	Stored        int // orders rows under the prefix
	StoredEvents  int // committed versions: Σ orders.version
	Lost          int // acknowledged ids with no row
	VersionLost   int // acknowledged status versions the row does not have
	Duplicated    int // ids with more than one row, or with items doubled/missing
	Unpublished   int // committed versions (ce_id id/v) not on the topic
	OutOfOrder    int // a consumer deduping on ce_id would skip a version
	TopicRecords  int // records under the prefix read from the topic
	Outbox        int64
	examples      []string
}

func (r tally) String() string {
	return fmt.Sprintf("acked ids %d (versions %d), stored %d (versions %d), lost %d, versions lost %d, duplicated %d, unpublished %d, out of order %d, topic records %d, outbox %d",
		r.Acked, r.AckedVersions, r.Stored, r.StoredEvents, r.Lost, r.VersionLost, r.Duplicated, r.Unpublished, r.OutOfOrder, r.TopicRecords, r.Outbox)
}

func (r *tally) example(format string, args ...any) {
	if len(r.examples) < 10 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// reconcile checks acked (id → highest acknowledged version) against the
// orders under prefix in PostgreSQL and the topic: every acknowledged id
// stored once with its items, every acknowledged version stored, and every
// committed version (1 … orders.version, of every row, acknowledged or not)
// on the topic, read from the start until all are seen or within passes.
// checkOrder also checks that a consumer deduping on ce_id and ignoring
// versions it has passed sees each order's versions without a gap.
func reconcile(t *testing.T, dbURL string, brokers []string, prefix string, acked map[string]int32, within time.Duration, checkOrder bool) tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within+30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("reconcile: connect: %v", err)
	}
	defer conn.Close(context.Background())
	type row struct {
		version int32
		items   int64
		n       int64
	}
	stored := map[string]row{}
	rows, _ := conn.Query(ctx, `SELECT o.id, max(o.version), count(*),
  (SELECT count(*) FROM order_items i WHERE i.order_id = o.id)
FROM orders o WHERE o.id LIKE $1 || '%' GROUP BY o.id`, prefix)
	var (
		id       string
		v        int32
		n, items int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &v, &n, &items}, func() error {
		stored[id] = row{version: v, items: items, n: n}
		return nil
	}); err != nil {
		t.Fatalf("reconcile: read orders: %v", err)
	}
	var res tally
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&res.Outbox); err != nil {
		t.Fatalf("reconcile: count outbox: %v", err)
	}
	res.Acked, res.Stored = len(acked), len(stored)
	for id, v := range acked {
		res.AckedVersions += int(v)
		s, ok := stored[id]
		switch {
		case !ok:
			res.Lost++
			res.example("acknowledged %s is not in orders", id)
		case s.version < v:
			res.VersionLost += int(v - s.version)
			res.example("%s: version %d acknowledged, %d stored", id, v, s.version)
		}
	}
	want := map[string]struct{}{}
	for id, s := range stored {
		res.StoredEvents += int(s.version)
		if s.n != 1 || s.items != orderItems {
			res.Duplicated++
			res.example("%s: %d rows, %d items (want 1 row, %d items)", id, s.n, s.items, orderItems)
		}
		for v := int32(1); v <= s.version; v++ {
			want[id+"/"+strconv.Itoa(int(v))] = struct{}{}
		}
	}
	seq := readTopic(t, brokers, prefix, want, within)
	res.Unpublished = len(want)
	for k := range want {
		res.example("committed %s never reached the topic", k)
		if len(res.examples) >= 10 {
			break
		}
	}
	for id, vs := range seq {
		res.TopicRecords += len(vs)
		if !checkOrder {
			continue
		}
		var max int32
		for _, v := range vs {
			if v > max {
				if v != max+1 {
					res.OutOfOrder++
					res.example("%s: topic order %v: a deduping consumer skips from %d to %d", id, vs, max, v)
				}
				max = v
			}
		}
	}
	return res
}

// readTopic is enginetest.ReadVersions.
func readTopic(t *testing.T, brokers []string, prefix string, want map[string]struct{}, within time.Duration) map[string][]int32 {
	t.Helper()
	return enginetest.ReadVersions(t, brokers, prefix, want, within)
}

// scrape reads the admin listener's /metrics and returns the sum of every
// series of each metric name.
func scrape(hc *http.Client, admin string) (map[string]float64, error) {
	resp, err := hc.Get(admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		f, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[name] += f
	}
	return out, sc.Err()
}

// series returns the value of one exact series line (name with labels).
func series(hc *http.Client, admin, nameWithLabels string) (float64, bool) {
	resp, err := hc.Get(admin + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), nameWithLabels+" "); ok {
			f, err := strconv.ParseFloat(rest, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// outboxCount counts the outbox rows on a fresh connection (0, false when
// the database does not answer).
func outboxCount(dbURL string) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, false
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, false
	}
	return n, true
}

// waitFor polls cond every 20ms until it holds or within passes, and
// reports how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("timed out after %v waiting for: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// ready polls /readyz once.
func ready(hc *http.Client, admin string) bool {
	a := send(hc, http.MethodGet, admin+"/readyz", nil)
	return a.err == nil && a.code == http.StatusOK
}

// appendResult adds one row to the results file (-chaos.results), creating
// it with a header when new.
func appendResult(t *testing.T, test, numbers string) {
	t.Helper()
	t.Logf("RESULT %s: %s", test, numbers)
	if *resultsFile == "" {
		return
	}
	f, err := os.OpenFile(*resultsFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("results file: %v", err)
		return
	}
	defer f.Close()
	form := "short"
	if long() {
		form = "long"
	}
	fmt.Fprintf(f, "| %s | %s | %s | %s |\n", time.Now().UTC().Format("2006-01-02 15:04"), test, form, numbers)
}
